"""secml-torch (``secmlt``): ``PGD`` with the native backend, and ``FGSM`` (whose only backends wrap
Foolbox or adv_lib).

PGD is ``secmlt.adv.evasion.pgd.PGD(backend="native")``, i.e. ``PGDNative``: a modular attack
(``ModularEvasionAttackFixedEps``) that runs SGD with ``lr=step_size`` on the perturbation delta, the
L∞ gradient processing ``sign``, the projection ``LInfConstraint`` and the box ``ClipConstraint(0, 1)``.
secml-torch has no native FGSM: ``secmlt.adv.evasion.fgsm.FGSM`` exists only with the Foolbox and
adv_lib backends, and the Foolbox one (``FGSMFoolbox``) is Foolbox's ``LinfProjectedGradientDescentAttack``
with ``abs_stepsize=eps, steps=1, random_start=False``. The native one-step form,
``PGD(backend="native", num_steps=1, step_size=eps, random_start=False)``, is not usable as FGSM: it
returns x unchanged (measured; see below).

Every argument is set, none left to secml-torch's defaults (``backend="foolbox"`` for both creators,
``random_start=False``): ``perturbation_model="linf"``, ``epsilon``, ``num_steps``, ``step_size``,
``random_start``, ``y_target=None`` (untargeted, true labels), ``lb=0.0``, ``ub=1.0``,
``trackers=None``; ``loss_function="ce"`` for FGSM (read by the adv_lib backend only). The model is
wrapped in ``BasePyTorchClassifier`` with no pre- or post-processing (normalisation is inside our
model); the batch goes in as one ``DataLoader`` batch, in order. ``BasePyTorchClassifier`` reads the
device from the model's first parameter, so a model without parameters fails inside secml-torch.
No targeted mode is offered: ``y_target`` is one ``int | None`` for the whole call (``pgd.py``,
``modular_attack_fixed_eps.py``), so the harness's per-sample targets cannot be handed to it.

Loss: cross-entropy per sample (``CrossEntropyLoss(reduction="none")``), summed over the batch after
negation (``ModularEvasionAttack._loss_and_grad``); Foolbox's FGSM sums too. Passes: FGSM 2 forwards
+ 1 backward per sample (Foolbox runs the model once more on its output to report success); PGD
``steps`` of each.

What the native PGD computes (``secmlt/adv/evasion/modular_attacks/modular_attack_fixed_eps.py``,
``_run_loop``, secml-torch 1.5), measured bit for bit against a plain-torch copy of that loop:

* it keeps, per sample, the iterate with the highest loss ("best adversarial"), and there is no
  argument that turns this off;
* the loss is evaluated at the iterate *before* each step, so the candidates are x_0 … x_{T-1}: the
  T-th step is computed and thrown away. With ``num_steps=1`` the output is the start point itself;
  with T steps and a loss that rises at every step it is the reference's x_{T-1} (up to float32
  round-off), not x_T — on the small test net, PGD-3's accuracy is exactly the reference PGD-2's;
* it steps on delta = x_t - x rather than on x_t (``x + clip(delta + alpha·sign)``), which rounds
  differently from the reference's ``x + clip((x_t + alpha·sign) - x)`` by an ulp here and there.

So its PGD cannot equal the reference's PGD-T (from any declared start, with either loss reduction):
no :class:`Declaration` should describe "best of the first T iterates" as PGD: the harness's cross-check
reports its PGD cells as disagreeing, and the reason quotes its offer's ``departure``.

Seeding: the random start is ``RandomPerturbLinf`` (``secmlt/optimization/random_perturb.py``) on
``LpUniformSampling.sample`` (``secmlt/data/lp_uniform_sampling.py``): u = ``2 · torch.rand((N,
C·H·W)) - 1`` on torch's global CPU generator, reshaped to x, and then ``x + eps · u`` — the
*perturbed sample*, not a perturbation — is projected onto [-eps, eps] and used as delta. Every pixel
with x ≥ 2·eps therefore starts at exactly x + eps (the corner of the ball), and only darker pixels
get a random offset: on the small test net, random-start PGD-3 at 16/255 leaves 64 % accuracy where
the reference's leaves 27–28 %. The draw is made on the CPU whatever x's device, and then added to x. The
``DataLoader`` draws a base seed from torch's global RNG when iterated; it is given a generator of its
own so that the random start is the first draw after ``spec.seed`` is set. We seed inside
``torch.random.fork_rng`` so the caller's RNG state is restored; :func:`_start` makes the same draw.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .base import GuardedAdapter
from .declaration import Declaration, Offer, extra_forwards
from .rng import seeded_global_rngs
from .spec import AttackSpec

# secml-torch's Foolbox backend imports Foolbox, which imports GitPython: it raises at import time on
# machines without a git executable unless told not to.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8 (as in adapters/foolbox.py).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    # secmlt imports adv_lib where installed, which warns about distutils' LooseVersion; nothing to act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*distutils.*")
    import foolbox  # noqa: F401  (imported here, under the filter, before FGSM imports it lazily)
    from secmlt.adv.backends import Backends
    from secmlt.adv.evasion.base_evasion_attack import BaseEvasionAttack
    from secmlt.adv.evasion.fgsm import FGSM
    from secmlt.adv.evasion.perturbation_models import LpPerturbationModels
    from secmlt.adv.evasion.pgd import PGD
    from secmlt.models.pytorch.base_pytorch_nn import BasePyTorchClassifier


def _fgsm(spec: AttackSpec) -> BaseEvasionAttack:
    return FGSM(
        perturbation_model=LpPerturbationModels.LINF,
        epsilon=spec.eps,
        loss_function="ce",
        y_target=None,
        lb=0.0,
        ub=1.0,
        backend=Backends.FOOLBOX,  # the only FGSM backend installed; there is no native one
        trackers=None,
    )


def _pgd(spec: AttackSpec) -> BaseEvasionAttack:
    return PGD(
        perturbation_model=LpPerturbationModels.LINF,
        epsilon=spec.eps,
        num_steps=spec.steps,
        step_size=spec.step_size,
        random_start=spec.random_start,
        y_target=None,
        lb=0.0,
        ub=1.0,
        backend=Backends.NATIVE,
        trackers=None,
    )


# secml-torch's attack object per attack, every argument set (the offers' and the bench's).
_BUILDERS = {"fgsm": _fgsm, "pgd": _pgd}


def make_attack(spec: AttackSpec) -> BaseEvasionAttack:
    """secml-torch's attack object for ``spec``, every argument set (the adapter's and the bench's)."""
    build = _BUILDERS.get(spec.attack)
    if build is None:
        raise ValueError(f"secml-torch offers no {spec.attack!r}; expected one of {list(_BUILDERS)}")
    return build(spec)


def _attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    attack = make_attack(spec)
    classifier = BasePyTorchClassifier(model=model, preprocessing=None, postprocessing=None, trainer=None)
    # One batch, in order. The loader's own generator keeps its base-seed draw off the global RNG,
    # which the random start draws from next.
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=int(x.shape[0]),
        shuffle=False,
        generator=torch.Generator().manual_seed(spec.seed),
    )
    with seeded_global_rngs(spec.seed, x.device):
        adversarial = attack(classifier, loader)
    x_adv: torch.Tensor = adversarial.dataset.tensors[0]
    return x_adv.detach().to(device=x.device, dtype=x.dtype)


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    n, d = int(x.shape[0]), int(x[0].numel())
    with seeded_global_rngs(spec.seed, x.device):
        ball = 2 * torch.rand(size=(n, d)) - 1  # CPU, whatever x's device (LpUniformSampling.sample)
    radius = torch.tensor([spec.eps], dtype=torch.float32, device=x.device).view(1, 1, 1, 1)
    # RandomPerturbLinf.get_perturb returns the perturbed sample; the initializer projects it as a delta.
    delta = (x + ball.reshape(x.shape).to(x.device) * spec.eps).clamp(min=-radius, max=radius)
    return (x + delta).clamp(0.0, 1.0)


ADAPTER = GuardedAdapter(
    name="secml-torch",
    attack_fn=None,
    declaration=Declaration(
        offers={
            # +1 forward: Foolbox (the FGSM backend) runs the model on its output to report success.
            "fgsm": Offer(call=_attack, loss_reduction="sum", passes=extra_forwards(1)),
            "pgd": Offer(
                call=_attack,
                loss_reduction="sum",
                start=_start,
                departure="secml-torch's native PGD returns, per sample, the highest-loss iterate among x_0 … "
                "x_{T-1} (the T-th step is computed and discarded), and its L∞ random start is x + eps for every "
                "pixel >= 2·eps (RandomPerturbLinf returns a sample, which is then clipped as if it were a "
                "perturbation)",
            ),
        }
    ),
)
