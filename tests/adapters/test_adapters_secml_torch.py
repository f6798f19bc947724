"""What secml-torch's native PGD computes instead of the reference's PGD, pinned down bit for bit.

``secmlt``'s ``ModularEvasionAttackFixedEps._run_loop`` (secml-torch 1.5) evaluates the loss at the
iterate *before* each step and keeps, per sample, the iterate with the highest loss; the iterate after
the last step is never evaluated, so PGD-T returns the best of x_0 … x_{T-1}. It steps on the
perturbation delta = x_t - x, and applies its manipulation (project delta onto the L∞ ball, add, clip
to [0, 1], re-derive delta) once in the loop and once more inside ``_loss_and_grad``.
:func:`_secml_pgd` writes that out in plain torch; the tests check the library against it, and the
consequences that make it depart from the reference (``tests/support/departures.py``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from advparity.adapters import AttackSpec
from advparity.adapters.reference import pgd_from
from advparity.adapters.rng import seeded_global_rngs
from support.adapter_checks import mismatch, require_runnable, synthetic_batch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advparity import adapters

require_runnable("secml-torch")  # before importing its adapter
from advparity.adapters.secml_torch import make_attack  # noqa: E402

Batch = tuple[torch.Tensor, torch.Tensor]


def _manipulate(x: torch.Tensor, delta: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``AdditiveManipulation`` with ``LInfConstraint(eps)`` and ``ClipConstraint(0, 1)``."""
    radius = torch.tensor([eps], dtype=torch.float32)  # LpConstraint keeps its radius in float32
    outside = delta.flatten(1).abs().amax(dim=1) > radius
    projected = torch.where(outside.view(-1, 1, 1, 1), delta.clamp(-radius, radius), delta)
    x_adv = (x + projected).clamp(0.0, 1.0)
    return x_adv, x_adv - x


def _secml_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
) -> torch.Tensor:
    """secml-torch's native L∞ PGD from the start point ``start``."""
    _, delta = _manipulate(x, start - x, eps)
    best_loss = torch.full((len(x),), -torch.inf)
    best_delta = torch.zeros_like(x)
    for _ in range(steps):
        _, delta = _manipulate(x, delta, eps)
        candidate = delta  # the iterate this step's loss is evaluated at
        x_adv, delta = _manipulate(x, delta, eps)
        x_adv.requires_grad_(True)
        losses = F.cross_entropy(model(x_adv), y, reduction="none")
        (grad,) = torch.autograd.grad(losses.sum(), x_adv)
        better = losses.detach() > best_loss
        best_delta = torch.where(better.view(-1, 1, 1, 1), candidate, best_delta)
        best_loss = torch.where(better, losses.detach(), best_loss)
        delta = delta + alpha * grad.sign()  # the step, never evaluated after the last iteration
    return _manipulate(x, best_delta, eps)[0]


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    declared = adapters.get("secml-torch").declaration.start
    assert declared is not None
    return declared(x, spec) if spec.random_start else x


def test_pgd_is_the_best_of_its_first_steps_iterates(small_net: nn.Module) -> None:
    """The library equals the plain-torch statement of its loop, bit for bit, from the declared start."""
    for n in (13, 16):
        x, y = synthetic_batch(n, seed=21)
        for random_start in (False, True):
            for steps in (1, 3, 6):
                spec = AttackSpec("pgd", 4 / 255, steps=steps, random_start=random_start, seed=5)
                x_adv = adapters.get("secml-torch").generate(small_net, x, y, spec)
                expected = _secml_pgd(small_net, x, y, _start(x, spec), spec.eps, spec.step_size, steps)
                assert torch.equal(x_adv, expected), (n, spec)


def test_one_step_pgd_returns_its_start(small_net: nn.Module, small_batch: Batch) -> None:
    """Its one-step form (a step of eps from x: FGSM) computes a step and returns x unchanged."""
    x, y = small_batch
    spec = AttackSpec("pgd", 4 / 255, steps=1, alpha=4 / 255, random_start=False)
    result = adapters.get("secml-torch").run(small_net, x, y, spec)
    assert torch.equal(result.x_adv, x)
    assert (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample) == (1, 1)
    fgsm = adapters.get("reference").generate(small_net, x, y, AttackSpec("fgsm", 4 / 255))
    assert mismatch(fgsm, x).samples == len(x)  # the step it threw away moves every sample


def test_pgd_steps_equal_the_references_one_fewer_while_the_loss_rises(
    small_net: nn.Module, small_batch: Batch
) -> None:
    """Measured on this batch, where every sample's loss rises at every step: secml-torch's PGD-T is the
    reference's PGD-(T-1) from the same start, up to float32 round-off, and not its PGD-T."""
    x, y = small_batch
    for random_start in (False, True):
        spec = AttackSpec("pgd", 4 / 255, steps=3, random_start=random_start, seed=5)
        start = _start(x, spec)
        x_adv = adapters.get("secml-torch").generate(small_net, x, y, spec)
        one_fewer = pgd_from(small_net, x, y, start, spec.eps, spec.step_size, spec.steps - 1)[0]
        as_declared = pgd_from(small_net, x, y, start, spec.eps, spec.step_size, spec.steps)[0]
        assert mismatch(x_adv, one_fewer).elements == 0
        assert mismatch(x_adv, as_declared).samples == len(x)


def test_random_start_is_the_corner_of_the_ball_for_all_but_dark_pixels(small_batch: Batch) -> None:
    """``RandomPerturbLinf`` projects the perturbed sample x + eps·u, not the perturbation eps·u: every
    pixel >= 2·eps starts at exactly x + eps. The declared start is the library's own draw."""
    from secmlt.optimization.initializer import RandomLpInitializer

    x, _ = small_batch
    spec = AttackSpec("pgd", 8 / 255, seed=5)
    with seeded_global_rngs(spec.seed, x.device):
        delta = RandomLpInitializer(radius=spec.eps, perturbation_model="linf")(x)
    start = _start(x, spec)
    assert torch.equal((x + delta).clamp(0.0, 1.0), start)
    bright = x >= 2 * spec.eps
    assert float(bright.float().mean()) > 0.99  # measured 99.7 % of this batch's pixels
    assert bool((delta[bright] == torch.tensor(spec.eps, dtype=torch.float32)).all())
    # A uniform draw in [-eps, eps] would put about half of the pixels below x.
    assert int((start < x).sum()) < 0.01 * x.numel()


def test_the_guard_is_transparent_to_a_raw_library_call(small_net: nn.Module, small_batch: Batch) -> None:
    """The same attack called on the bare model, outside the adapter's guards, gives the same x_adv."""
    from secmlt.models.pytorch.base_pytorch_nn import BasePyTorchClassifier

    x, y = small_batch
    bare = copy.deepcopy(small_net).eval()  # the library's backward() fills the parameters' .grad
    for spec in (AttackSpec("fgsm", 4 / 255), AttackSpec("pgd", 4 / 255, steps=3, seed=5)):
        loader = DataLoader(
            TensorDataset(x, y), batch_size=len(x), generator=torch.Generator().manual_seed(spec.seed)
        )
        with seeded_global_rngs(spec.seed, x.device):
            raw = make_attack(spec)(BasePyTorchClassifier(bare), loader).dataset.tensors[0]
        assert torch.equal(adapters.get("secml-torch").generate(small_net, x, y, spec), raw), spec


def test_fgsm_is_foolboxs(small_net: nn.Module) -> None:
    """secml-torch's FGSM has no native backend: it is Foolbox's one-step LinfPGD, bit for bit."""
    x, y = synthetic_batch(13, seed=21)
    spec = AttackSpec("fgsm", 4 / 255)
    assert torch.equal(
        adapters.get("secml-torch").generate(small_net, x, y, spec),
        adapters.get("foolbox").generate(small_net, x, y, spec),
    )
