"""Foolbox 3: ``LinfFastGradientAttack`` (FGSM), ``LinfProjectedGradientDescentAttack`` (LinfPGD),
their L2 forms ``L2FastGradientAttack`` and ``L2ProjectedGradientDescentAttack``,
``LinfBasicIterativeAttack`` (BIM) and ``LinfMomentumIterativeFastGradientMethod`` (MI-FGSM).

LinfPGD's defaults are not the paper's (``rel_stepsize=1/30, steps=40``): step size, steps and random
start are set from the spec (``abs_stepsize`` takes precedence; ``rel_stepsize`` is set to the same
step so neither is a default). FGSM has only ``random_start`` (False): its step is eps by definition.
Foolbox never calls ``model.eval()`` and its eagerpy ``loss.backward()`` accumulates ``.grad`` on the
parameters; it checks the input range with ``assert`` (gone under ``python -O``) — the shared guard
covers all three. We return the perturbation-clipped output (the second value Foolbox returns).

Loss: cross-entropy summed over the batch, like the reference. Passes: FGSM 2 forwards + 1 backward
per sample, PGD ``steps + 1`` forwards + ``steps`` backwards (Foolbox runs the model once more on its
output to report success).

Seeding: the random start is eagerpy's ``uniform(x, shape, -eps, eps)``, i.e.
``torch.rand(shape, dtype, device) * (eps - (-eps)) + (-eps)`` on torch's global RNG, added to x and
clipped to the bounds (``foolbox/attacks/gradient_descent_base.py``, ``eagerpy/tensor/pytorch.py``).
We seed it with ``spec.seed`` inside ``torch.random.fork_rng`` so the caller's RNG state is restored;
:func:`_start` makes the same draw, which is how the harness knows the exact x_adv Foolbox must return.

L2 (``L2BaseGradientDescent`` in the same file): the start is uniform in the ball (Voelker et al.:
``torch.randn`` of shape ``(N, d + 2)``, divided by its norm, the first d coordinates, times eps).
Each step multiplies the gradient by ``1 / max(‖g‖₂, 1e-12)`` with the norm taken as
``sqrt(sum(g ** 2))`` (eagerpy's ``norms.l2``), steps, rescales the perturbation by
``min(1, eps / max(‖delta‖₂, 1e-12))`` and clips to the bounds; the result we return (Foolbox's
``clipped``, from ``LpDistance.clip_perturbation``) is rescaled the same way once more, without the
bounds (:data:`_L2`). ``L2FastGradientAttack`` is that PGD with one step of eps and no random start,
so it projects its one step too.

The fast-gradient attacks from a random start (``random_start=True``) are that one-step PGD from
PGD's start, with the step fixed at eps (``rel_stepsize=1.0``): a spec with another alpha is refused.
``LinfBasicIterativeAttack`` is ``LinfBaseGradientDescent`` without a random start, as PGD.

MI-FGSM departs from the paper. ``LinfMomentumIterativeFastGradientMethod`` runs the base loop, whose
``normalize`` for L∞ is ``gradients.sign()``, and only then its ``GDMOptimizer``:
``accumulation_grad = momentum * accumulation_grad + gradient`` of that *sign*, and steps
``stepsize * sign(accumulation_grad)``. The paper accumulates ∇/‖∇‖₁, so a pixel's momentum is
weighted by its gradient's size; Foolbox's counts each step's sign equally (:data:`_MIFGSM_DEPARTURE`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import nn

from .attacks.geometry import Geometry, per_sample
from .base import GuardedAdapter
from .declaration import AttackFn, Declaration, Offer, extra_forwards
from .rng import seeded_global_rngs
from .spec import AttackSpec

# Foolbox imports GitPython, which raises at import time on machines without a git executable.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8; nothing we can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    import foolbox


_FGM = {"linf": foolbox.attacks.LinfFastGradientAttack, "l2": foolbox.attacks.L2FastGradientAttack}
_PGD = {
    "linf": foolbox.attacks.LinfProjectedGradientDescentAttack,
    "l2": foolbox.attacks.L2ProjectedGradientDescentAttack,
}
# Foolbox's floor under every L2 norm it divides by (``normalize_lp_norms``, ``clip_lp_norms``).
_NORM_FLOOR = 1e-12


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    return (t.flatten(1) ** 2).sum(dim=-1).sqrt()


def _l2_direction(grad: torch.Tensor) -> torch.Tensor:
    return grad * per_sample(1 / torch.clamp(_l2_norms(grad), min=_NORM_FLOOR), grad)


def _l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    factor = torch.clamp(eps / torch.clamp(_l2_norms(delta), min=_NORM_FLOOR), max=1)
    return delta * per_sample(factor, delta)


_L2 = Geometry(
    "l2",
    direction=_l2_direction,
    project=_l2_project,
    projects_one_step=True,
    reprojects_output=True,
    note="Foolbox multiplies by 1/max(norm, 1e-12) and rescales its result once more (round-off only)",
)


_MIFGSM_DEPARTURE = (
    "LinfMomentumIterativeFastGradientMethod accumulates the sign of each gradient "
    "(LinfBaseGradientDescent.normalize is gradients.sign(), applied before GDMOptimizer), "
    "not the L1-normalised gradient of Dong et al."
)


def _fgsm(spec: AttackSpec) -> foolbox.attacks.base.FixedEpsilonAttack:
    return _FGM[spec.norm](random_start=spec.random_start)


def _fgsm_refuses(spec: AttackSpec) -> str:
    if spec.random_start and spec.step_size != spec.eps:
        return "steps eps itself from its random start (rel_stepsize=1.0), not another alpha"
    return ""


def _bim(spec: AttackSpec) -> foolbox.attacks.base.FixedEpsilonAttack:
    return foolbox.attacks.LinfBasicIterativeAttack(
        rel_stepsize=spec.step_size / spec.eps,
        abs_stepsize=spec.step_size,
        steps=spec.steps,
        random_start=False,
    )


def _mifgsm(spec: AttackSpec) -> foolbox.attacks.base.FixedEpsilonAttack:
    return foolbox.attacks.LinfMomentumIterativeFastGradientMethod(
        momentum=spec.decay,
        rel_stepsize=spec.step_size / spec.eps,
        abs_stepsize=spec.step_size,
        steps=spec.steps,
        random_start=False,
    )


def _pgd(spec: AttackSpec) -> foolbox.attacks.base.FixedEpsilonAttack:
    return _PGD[spec.norm](
        rel_stepsize=spec.step_size / spec.eps,
        abs_stepsize=spec.step_size,
        steps=spec.steps,
        random_start=spec.random_start,
    )


def _run(build: Callable[[AttackSpec], foolbox.attacks.base.FixedEpsilonAttack]) -> AttackFn:
    def call(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        attack = build(spec)
        fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device, preprocessing=None)
        # Untargeted: y the true labels. Targeted: y the targets, and Foolbox steps with
        # gradient_step_sign = -1 (gradient_descent_base.py: `x + gradient_step_sign * optimizer(...)`).
        criterion = (
            foolbox.criteria.TargetedMisclassification(y)
            if spec.targeted is not None
            else foolbox.criteria.Misclassification(y)
        )
        with seeded_global_rngs(spec.seed, x.device):
            _raw, clipped, _success = attack(fmodel, x, criterion, epsilons=spec.eps)
        return clipped

    return call


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        if spec.norm == "l2":
            n, d = x.shape[0], x[0].numel()
            z = torch.randn((n, d + 2), dtype=x.dtype, device=x.device) * 1.0 + 0.0  # eagerpy's normal()
            ball = (z / (z**2).sum(dim=-1, keepdim=True).sqrt())[:, :d].reshape(x.shape)
            noise = spec.eps * ball
        else:
            low, high = -spec.eps, spec.eps
            noise = torch.rand(x.shape, dtype=x.dtype, device=x.device) * (high - low) + low
    return torch.clamp(x + noise, 0.0, 1.0)


def _arithmetic(spec: AttackSpec) -> Geometry | None:
    return _L2 if spec.norm == "l2" else None


# +1 forward for every attack: Foolbox runs the model on its output to report success.
ADAPTER = GuardedAdapter(
    name="foolbox",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(
                call=_run(_fgsm),
                loss_reduction="sum",
                norms=("linf", "l2"),
                # Not targeted: FGM.run raises "unsupported criterion" for a criterion with
                # target_classes (fast_gradient_method.py).
                variants=("random_start",),
                passes=extra_forwards(1),
                start=_start,
                refuses=_fgsm_refuses,
                arithmetic=_arithmetic,
            ),
            "pgd": Offer(
                call=_run(_pgd),
                loss_reduction="sum",
                norms=("linf", "l2"),
                variants=("targeted",),
                passes=extra_forwards(1),
                start=_start,
                arithmetic=_arithmetic,
            ),
            "bim": Offer(
                call=_run(_bim), loss_reduction="sum", variants=("targeted",), passes=extra_forwards(1)
            ),
            # LinfMomentumIterativeFastGradientMethod arrived in Foolbox 3.3.4: not offered before.
            **(
                {
                    "mifgsm": Offer(
                        call=_run(_mifgsm),
                        loss_reduction="sum",
                        variants=("targeted",),
                        passes=extra_forwards(1),
                        departure=_MIFGSM_DEPARTURE,
                    )
                }
                if hasattr(foolbox.attacks, "LinfMomentumIterativeFastGradientMethod")
                else {}
            ),
        }
    ),
)
