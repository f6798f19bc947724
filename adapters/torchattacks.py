"""torchattacks: ``FGSM``, ``FFGSM`` (FGSM from a random start), ``PGD``, ``PGDL2``, ``BIM`` and ``MIFGSM``.

All constructor arguments are set. ``set_normalization_used`` is deliberately never called: it
expects *normalised* inputs and silently clamps out-of-range ones (normalisation is inside our model).
torchattacks switches the whole model to eval and back with ``model.train()``, which would undo a
BatchNorm the user froze in eval — the shared guard restores every submodule's flag. Being handed our
counting wrapper also keeps torchattacks from auto-enabling normalisation for a model named RobModel.

Loss: ``nn.CrossEntropyLoss()`` (mean), hard-coded. Passes: FGSM 1 forward + 1 backward per sample;
PGD ``steps`` of each.

Seeding: the PGD random start is ``torch.empty_like(x).uniform_(-eps, eps)`` on torch's global RNG
(``torchattacks/attacks/pgd.py``), then ``clamp(0, 1)``. We seed it with ``spec.seed`` inside
``torch.random.fork_rng`` so the caller's RNG state is restored; :func:`_start` makes the same draw,
which is how the harness knows the exact x_adv torchattacks must return.

L2 (``torchattacks/attacks/pgdl2.py``): the start is a Gaussian direction scaled to a *uniform radius*
(``delta = empty_like(x).normal_()``, ``r = zeros_like(n).uniform_(0, 1)``, ``delta *= r / n * eps``)
— not uniform in the ball, which favours points near the centre; judged from that start all the
same. Each step divides the gradient by ``‖g‖₂ + 1e-10`` (``eps_for_division``), steps, rescales the
perturbation by ``min(eps / ‖delta‖₂, 1)`` and then clamps to [0, 1] (:data:`_L2`). torchattacks has
no L2 FGM; its equivalent, ``PGDL2`` with one step of alpha = eps and no random start, is what the
FGM-L2 offer runs — a one-step PGD that projects its one step.

``FFGSM`` (``ffgsm.py``) starts at ``x + torch.randn_like(x).uniform_(-eps, eps)``: the Gaussian draw
is overwritten, but it advances the global RNG first, which :func:`_start` reproduces; then one step
of ``alpha`` (Wong et al.), ``clamp(delta, -eps, eps)``, ``clamp(0, 1)``. L∞ only.

``BIM`` (``bim.py``) projects with two masked selects instead of a clamp —
``b = (adv >= a)·adv + (adv < a)·a`` with ``a = clamp(x - eps, min=0)``, then the same against
``x + eps`` and ``clamp(max=1)`` — which keeps ``adv`` itself where the definition computes
``x + (adv - x)`` (:data:`_BIM`).

``MIFGSM`` (``mifgsm.py``) divides the gradient by its *mean* |g| (``torch.mean(torch.abs(grad),
dim=(1, 2, 3))``) where the paper divides by the L1 norm: the momentum is d times the paper's, so its
signs — all a step uses — are the same (no pixel has differed in the adapter tests, so no arithmetic
is declared); ``grad + momentum * decay``, then a sign step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchattacks
from torch import nn

from .attacks import apgd
from .attacks.definition import targeted_of
from .attacks.geometry import LINF, Geometry, per_sample
from .base import GuardedAdapter
from .declaration import AttackFn, Declaration, Offer
from .rng import seeded_global_rngs
from .spec import AttackSpec

# PGDL2's own constant (``self.eps_for_division``), set explicitly so a changed default is noticed.
_EPS_FOR_DIVISION = 1e-10


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    return torch.norm(t.view(t.shape[0], -1), p=2, dim=1)


def _l2_direction(grad: torch.Tensor) -> torch.Tensor:
    return grad / per_sample(_l2_norms(grad) + _EPS_FOR_DIVISION, grad)


def _l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    delta_norms = _l2_norms(delta)
    factor = torch.min(eps / delta_norms, torch.ones_like(delta_norms))
    return delta * factor.view(-1, 1, 1, 1)


_L2 = Geometry(
    "l2",
    direction=_l2_direction,
    project=_l2_project,
    projects_one_step=True,
    note="torchattacks divides the gradient by its L2 norm + 1e-10 (round-off only)",
)


def _bim_project_onto_box(x_step: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    a = torch.clamp(x - eps, min=0)
    b = (x_step >= a).float() * x_step + (x_step < a).float() * a
    c = (b > x + eps).float() * (x + eps) + (b <= x + eps).float() * b
    return torch.clamp(c, max=1)


def _bim_step(
    x: torch.Tensor, x_t: torch.Tensor, grad: torch.Tensor, alpha: float, eps: float
) -> torch.Tensor:
    return _bim_project_onto_box(x_t + alpha * grad.sign(), x, eps)


_BIM = LINF.with_step(_bim_step, note="torchattacks BIM projects with masked selects (round-off only)")


def _fgsm(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    if spec.norm == "l2":
        return _pgdl2(model, spec.eps, alpha=spec.eps, steps=1, random_start=False)
    if spec.random_start:
        return torchattacks.FFGSM(model, eps=spec.eps, alpha=spec.step_size)
    return torchattacks.FGSM(model, eps=spec.eps)


def _bim(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    return torchattacks.BIM(model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps)


def _mifgsm(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    return torchattacks.MIFGSM(model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, decay=spec.decay)


def _pgd(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    if spec.norm == "l2":
        return _pgdl2(model, spec.eps, spec.step_size, spec.steps, spec.random_start)
    return torchattacks.PGD(
        model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=spec.random_start
    )


def _pgdl2(
    model: nn.Module, eps: float, alpha: float, steps: int, random_start: bool
) -> torchattacks.attack.Attack:
    return torchattacks.PGDL2(
        model,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        eps_for_division=_EPS_FOR_DIVISION,
    )


def _run(build: Callable[[nn.Module, AttackSpec], torchattacks.attack.Attack]) -> AttackFn:
    def call(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        attack = build(model, spec)
        attack.set_model_training_mode(model_training=False, batchnorm_training=False, dropout_training=False)
        if targeted_of(spec.params):
            # y holds the targets: "targeted(label)" takes the labels given as the targets, and every
            # attack here then steps on -loss(outputs, target_labels).
            attack.set_mode_targeted_by_label(quiet=True)
        attack.set_device(x.device)
        with seeded_global_rngs(spec.seed, x.device):
            x_adv: torch.Tensor = attack(x, y)
        # APGD returns its points still requiring grad; the output is data.
        return x_adv.detach()

    return call


def _apgd(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    # A port of the original AutoAttack's APGD (attacks/apgd.py there): every argument set, its
    # steps above all, which torchattacks' own AutoAttack leaves at the class default of 10.
    common: dict[str, Any] = dict(
        norm=apgd.ORIGINAL_NORMS[spec.norm],
        eps=spec.eps,
        steps=spec.steps,
        n_restarts=spec.restarts,
        seed=spec.seed,
        eot_iter=1,
        rho=spec.rho,
        verbose=False,
    )
    if spec.targets is not None:
        # APGDT targets the top n_classes - 1 non-true classes (n_target_classes = n_classes - 1).
        return torchattacks.APGDT(model, n_classes=spec.targets + 1, **common)
    return torchattacks.APGD(model, loss=spec.loss, **common)


def _apgd_start(x: torch.Tensor, spec: AttackSpec) -> apgd.SubsetDraws:
    # perturb: torch.random.manual_seed(self.seed), then 2 * torch.rand(x_to_fool.shape) - 1 per restart,
    # for the samples still to fool: the original's draws, scaled in its own order (apgd.random_start).
    return apgd.SubsetDraws(spec.seed, order="torchattacks")


def _apgd_departure(spec: AttackSpec) -> str:
    if spec.targets is None or spec.norm != "l2":
        return ""
    return (
        "APGDT's L2 step scales every sample's normalised gradient by the first sample's step size, "
        "`x_adv_1 = x_adv + step_size[0] * grad / (...)` (attacks/apgdt.py; APGD and the original have "
        "`step_size * ...`, per sample): once a checkpoint halves the step of some samples and not of "
        "the first, they step by another size"
    )


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        if spec.norm == "l2":
            delta = torch.empty_like(x).normal_()
            n = delta.view(x.size(0), -1).norm(p=2, dim=1).view(x.size(0), 1, 1, 1)
            r = torch.zeros_like(n).uniform_(0, 1)
            delta *= r / n * spec.eps
        else:
            delta = torch.empty_like(x).uniform_(-spec.eps, spec.eps)
    return torch.clamp(x + delta, min=0, max=1)


def _ffgsm_start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        # The Gaussian draw is overwritten, but it advances the RNG before the uniform one.
        delta = torch.randn_like(x).uniform_(-spec.eps, spec.eps)
    return torch.clamp(x + delta, min=0, max=1)


def _arithmetic(spec: AttackSpec) -> Geometry | None:
    return _L2 if spec.norm == "l2" else None


# set_mode_targeted_by_label arrived in torchattacks 3.4.0: an older release is offered untargeted only.
_TARGETED: tuple[str, ...] = (
    ("targeted",) if hasattr(torchattacks.attack.Attack, "set_mode_targeted_by_label") else ()
)

ADAPTER = GuardedAdapter(
    name="torchattacks",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(
                call=_run(_fgsm),
                loss_reduction="mean",
                norms=("linf", "l2"),
                variants=("random_start", *_TARGETED),
                start=_ffgsm_start,
                refuses=lambda spec: (
                    "has no L2 FGM from a random start" if spec.norm == "l2" and spec.random_start else ""
                ),
                arithmetic=_arithmetic,
            ),
            "pgd": Offer(
                call=_run(_pgd),
                loss_reduction="mean",
                norms=("linf", "l2"),
                variants=_TARGETED,
                start=_start,
                arithmetic=_arithmetic,
            ),
            "bim": Offer(
                call=_run(_bim), loss_reduction="mean", variants=_TARGETED, arithmetic=lambda spec: _BIM
            ),
            "mifgsm": Offer(call=_run(_mifgsm), loss_reduction="mean", variants=_TARGETED),
            "apgd": Offer(
                call=_run(_apgd),
                loss_reduction="sum",
                norms=("linf", "l2"),
                variants=("restarts", "targets"),
                start=_apgd_start,
                departure=_apgd_departure,
                passes_follow_expectation=True,
            ),
        }
    ),
)
