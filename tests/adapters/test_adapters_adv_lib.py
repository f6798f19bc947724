"""adv-lib: what its adapter declares holds, what its PGD returns instead of PGD's last iterate, and
where its APGD departs from the original's.

adv-lib is not in ``adapters.names()``: its ``pgd_linf`` returns, per sample, the last misclassified
point among the iterates it evaluated and the clean image where there was none, and never evaluates
its last step (adapters/adv_lib.py), which no Declaration can state. These tests hold the adapter to
what it does declare — loss reduction, passes, random start, the shared guards — and pin down that
output rule, so that a release that changes it (e.g. to return the last iterate) fails here.

Two models make single parts of the computation visible: a model whose prediction is wrong at every
point makes adv-lib return its last evaluated iterate (every iterate is "adversarial"), and a linear
model with shared weights on half the input has input gradients there that are 0 in exact arithmetic,
so that only a sum-reduced loss leaves them exactly 0 when N is not a power of two.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advparity.adapters import AttackSpec, run_attack
from advparity.adapters.declaration import LossReduction
from advparity.adapters.expected import ExpectationCache, compare
from advparity.adapters.reference import pgd_from
from support.adapter_checks import mismatch, require_runnable, synthetic_batch
from torch import nn

require_runnable("adv-lib")  # before importing its adapter
from advparity.adapters.adv_lib import ADAPTER  # noqa: E402

Batch = tuple[torch.Tensor, torch.Tensor]

# A margin larger than any input can move the other logits (|W_k x| <= 30 · 1/sqrt(60) < 4 for the
# linear model; the small net's logits lie within ±8 on these images, measured, also 16/255 away):
# the shifted class always wins.
MARGIN = 20.0


class _AlwaysWrong(nn.Module):
    """``model``'s logits with the last class raised by MARGIN: it predicts the last class everywhere,
    so labels drawn from the other classes are misclassified at every point an attack visits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        shift = torch.zeros(logits.shape[1], dtype=logits.dtype, device=logits.device)
        shift[-1] = MARGIN
        return logits + shift


def _roundoff_linear(classes: int = 5, shape: tuple[int, int, int] = (1, 6, 10)) -> nn.Module:
    """As test_adapters_parity.py's round-off model: the first half of the input has the same weight
    for every class, so ∂L/∂x_j = w_j · (Σ_k p_k - 1) there, 0 in exact arithmetic."""
    torch.manual_seed(0)
    d = shape[0] * shape[1] * shape[2]
    linear = nn.Linear(d, classes)
    with torch.no_grad():
        linear.weight[:, : d // 2] = torch.randn(1, d // 2)
    return nn.Sequential(nn.Flatten(), linear).eval()


def _wrong_labels(y: torch.Tensor, classes: int) -> torch.Tensor:
    return y % (classes - 1)  # never the last class, which _AlwaysWrong always predicts


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("eps", [1 / 255, 8 / 255], ids=["1/255", "8/255"])
@pytest.mark.parametrize("n", [13, 16])
def test_declared_start_is_the_librarys_start_bit_for_bit(
    n: int, eps: float, seed: int, small_net: nn.Module
) -> None:
    """With one iteration the only point adv-lib evaluates is its start, which it returns wherever the
    model is wrong — everywhere here."""
    x, y = synthetic_batch(n, seed=21)
    spec = AttackSpec("pgd", eps, steps=1, random_start=True, seed=seed)
    x_adv = ADAPTER.generate(_AlwaysWrong(small_net), x, _wrong_labels(y, 3), spec)
    assert ADAPTER.declaration.start is not None
    start = ADAPTER.declaration.start(x, spec)
    assert torch.equal(x_adv, start)
    assert not torch.equal(start, x)
    other = AttackSpec("pgd", eps, steps=1, random_start=True, seed=seed + 1)
    assert not torch.equal(ADAPTER.declaration.start(x, other), start)  # the seed reaches the draw


@pytest.mark.parametrize("n", [12, 13, 16])
def test_loss_reduction_is_the_declared_sum(n: int) -> None:
    """One step of eps from x (two iterations: the second evaluates it): bit-identical to the reference's
    step with a summed loss. With a mean and N = 12 or 13 the round-off components get a nonzero
    gradient and move; with N = 16 the 1/N scale is exact and the two agree."""
    model = _AlwaysWrong(_roundoff_linear())
    g = torch.Generator().manual_seed(n)
    x, y = torch.rand(n, 1, 6, 10, generator=g), torch.randint(0, 4, (n,), generator=g)
    spec = AttackSpec("pgd", 8 / 255, steps=2, alpha=8 / 255, random_start=False)
    x_adv = ADAPTER.generate(model, x, y, spec)
    declared = ADAPTER.declaration.loss_reduction(spec)
    other: LossReduction = "mean" if declared == "sum" else "sum"
    assert torch.equal(x_adv, pgd_from(model, x, y, x, spec.eps, spec.step_size, 1, declared)[0])
    assert torch.equal(x_adv, pgd_from(model, x, y, x, spec.eps, spec.step_size, 1, other)[0]) == (n == 16)
    half = 30
    assert torch.equal(x_adv.flatten(1)[:, :half], x.flatten(1)[:, :half])  # exact 0 gradients: unmoved


@pytest.mark.parametrize("random_start", [False, True])
def test_passes_per_sample_are_as_declared(
    random_start: bool, small_net: nn.Module, small_batch: Batch
) -> None:
    """Measured: one forward and one backward per iteration, nothing else."""
    spec = AttackSpec("pgd", 2 / 255, steps=3, random_start=random_start)
    stats = run_attack(ADAPTER, small_net, *small_batch, spec).stats
    passes = (stats.forward_passes_per_sample, stats.backward_passes_per_sample)
    assert passes == ADAPTER.declaration.passes(spec)
    assert passes == (3.0, 3.0)


def test_passes_are_counted_for_a_sequential_model(small_batch: Batch) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12 * 16, 3)).eval()
    stats = run_attack(ADAPTER, model, *small_batch, AttackSpec("pgd", 1 / 255, steps=4)).stats
    assert (stats.forward_passes_per_sample, stats.backward_passes_per_sample) == (4.0, 4.0)


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_returns_the_last_misclassified_iterate_else_the_clean_image(
    random_start: bool, small_net: nn.Module
) -> None:
    """adv-lib's PGD with T iterations, rebuilt from the reference's iterates x_0 … x_{T-1} (from the
    declared start): per sample the last one the model misclassifies, else the clean x. adv-lib keeps
    its iterates as δ and rounds x + δ once, so they equal the reference's up to float32 round-off."""
    x, y = synthetic_batch(64, seed=11)
    steps = 3
    spec = AttackSpec("pgd", 16 / 255, steps=steps, random_start=random_start, seed=0)
    x_adv = ADAPTER.generate(small_net, x, y, spec)

    assert ADAPTER.declaration.start is not None
    start = ADAPTER.declaration.start(x, spec) if random_start else x
    rebuilt = x.clone()
    for t in range(steps):  # x_t after t updates; the update after x_{T-1} is never evaluated
        iterate, _ = pgd_from(small_net, x, y, start, spec.eps, spec.step_size, t, "sum")
        with torch.no_grad():
            wrong = small_net(iterate).argmax(dim=1) != y
        rebuilt[wrong] = iterate[wrong]
    assert mismatch(x_adv, rebuilt).elements == 0

    returned_clean = (x_adv == x).flatten(1).all(dim=1)
    assert 0 < int(returned_clean.sum()) < len(x)  # both outcomes occur: the check covers both
    # The reference's T-step PGD fools the model on samples for which adv-lib returns the clean image.
    final, _ = pgd_from(small_net, x, y, start, spec.eps, spec.step_size, steps, "sum")
    with torch.no_grad():
        final_fools = small_net(final).argmax(dim=1) != y
    assert bool((final_fools & returned_clean).any())


def test_no_fgsm_is_offered(small_net: nn.Module, small_batch: Batch) -> None:
    """adv-lib has no FGSM: the adapter declares PGD and APGD, and the guard refuses FGSM before adv-lib runs."""
    assert ADAPTER.declaration.attacks == ("pgd", "apgd")
    with pytest.raises(ValueError, match=r"adv-lib offers no FGSM"):
        ADAPTER.generate(small_net, *small_batch, AttackSpec("fgsm", 8 / 255))


def test_one_step_pgd_returns_the_clean_image(
    small_net: nn.Module, small_batch: Batch, densenet: nn.Module, densenet_batch: Batch
) -> None:
    """Why its one-step form cannot stand in for FGSM: pgd_linf with one iteration evaluates only
    x_0 = x and returns x, on any model."""
    for model, (x, y) in ((small_net, small_batch), (densenet, densenet_batch)):
        result = ADAPTER.run(
            model, x, y, AttackSpec("pgd", 8 / 255, steps=1, alpha=8 / 255, random_start=False)
        )
        assert torch.equal(result.x_adv, x)
        assert (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample) == (1.0, 1.0)


@pytest.mark.parametrize("random_start", [False, True])
def test_output_is_not_the_expectation_its_declaration_gives(
    random_start: bool, small_net: nn.Module
) -> None:
    """What the cross-check sees (tests/support/departures.py): the exact PGD x_adv built from adv-lib's own start
    with its loss reduction is far from what adv-lib returns, beyond any round-off."""
    spec = AttackSpec("pgd", 4 / 255, steps=3, random_start=random_start)
    x, y = synthetic_batch(13, seed=21)
    x_adv = ADAPTER.generate(small_net, x, y, spec)
    expected = ExpectationCache(small_net, x, y).get(spec, ADAPTER.declaration, [spec.eps])
    assert expected.exact
    evidence = compare(x_adv, expected)
    # Every sample (measured, no start: 12 of the 13 come back clean, one as an earlier iterate).
    assert (evidence.pixels_differ > 0).all()
    assert float(evidence.linf_to_expected.min()) > spec.eps / 8


def _awkward_copy(model: nn.Module) -> nn.Module:
    """Train mode with one BatchNorm frozen in eval, .grad set on every other parameter, one frozen."""
    import copy

    model = copy.deepcopy(model).train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    g = torch.Generator().manual_seed(0)
    for i, p in enumerate(model.parameters()):
        p.grad = torch.randn(p.shape, generator=g) if i % 2 == 0 else None
    list(model.parameters())[1].requires_grad_(False)
    return model


def test_model_inputs_and_global_rngs_are_left_as_they_were(small_net: nn.Module, small_batch: Batch) -> None:
    model = _awkward_copy(small_net)
    modes = [m.training for m in model.modules()]
    values = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [(p.grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()]
    flags = [p.requires_grad for p in model.parameters()]
    x, y = small_batch
    x_before, y_before = x.clone(), y.clone()
    torch_rng, numpy_rng = torch.get_rng_state(), np.random.get_state()
    with torch.no_grad():  # the guard enables gradients for the library
        x_adv = ADAPTER.generate(model, x, y, AttackSpec("pgd", 4 / 255, steps=2, seed=3))
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(v, values[k]) for k, v in model.state_dict().items())
    for p, (grad, saved) in zip(model.parameters(), grads, strict=True):
        assert p.grad is grad and (saved is None or torch.equal(p.grad, saved))
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(x, x_before) and torch.equal(y, y_before) and not x_adv.requires_grad
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert np.array_equal(np.random.get_state()[1], numpy_rng[1])


# --- APGD -----------------------------------------------------------------------------------------


def _apgd(norm: str = "linf", loss: str = "ce", **params: object) -> AttackSpec:
    eps = 8 / 255 if norm == "linf" else 0.5
    return AttackSpec("apgd", eps, seed=4, loss=loss, norm=norm, steps=params.pop("steps", 40), **params)


def test_apgd_from_its_own_start_equals_the_definition_where_its_departures_do_not_show(
    small_net: nn.Module,
) -> None:
    """L∞ CE on the small net, every sample classified correctly at x: adv-lib's halving rule happens
    to decide as the original's on these 24 samples, so x_adv is the definition's bit for bit from the
    declared start — which only holds if that start is adv-lib's draw, rounded as adv-lib rounds it."""
    x, y = synthetic_batch(24, seed=15)
    assert bool((small_net(x).argmax(1) == y).all())
    spec = _apgd()
    result = run_attack(ADAPTER, small_net, x, y, spec)
    expected = ExpectationCache(small_net, x, y).get(spec, ADAPTER.declaration, [spec.eps])
    assert expected.exact and torch.equal(result.x_adv, expected.x_adv)
    assert 0 < int((small_net(result.x_adv).argmax(1) != y).sum()) < len(y)
    passes = (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample)
    assert passes == ADAPTER.declaration.passes(spec) == (41.0, 41.0)  # no clean forward


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_attacks_the_samples_misclassified_at_x(norm: str, small_net: nn.Module) -> None:
    """The original returns x for a sample its model misclassifies at x; adv-lib attacks it and returns
    its last misclassified iterate (here: every iterate), a quoted departure."""
    x, y = synthetic_batch(13, seed=21)
    model, labels = _AlwaysWrong(small_net), _wrong_labels(y, 3)
    spec = _apgd(norm, steps=5)
    x_adv = ADAPTER.generate(model, x, labels, spec)
    expected = ExpectationCache(model, x, labels).get(spec, ADAPTER.declaration, [spec.eps])
    assert torch.equal(expected.x_adv, x)
    assert (compare(x_adv, expected).pixels_differ > 0).all()
    assert "misclassified at x" in ADAPTER.declaration.departure(spec)


def test_apgd_halves_the_step_by_an_aliased_best_loss() -> None:
    """The lines the departure quotes, pinned: a release that clones the best loss (the original's
    `loss_best_last_check = loss_best.clone()`) or starts from ones fails here, and the departure must
    be re-measured."""
    import inspect

    from adv_lib.attacks import auto_pgd

    source = inspect.getsource(auto_pgd._apgd)
    assert "loss_best_last_check = loss_best\n" in source
    assert "loss_best[ind] = loss_indiv[ind]" in source  # in place: both names see the update
    assert "reduced_last_check = torch.zeros_like(loss_best, dtype=torch.bool)" in source


@pytest.mark.parametrize("params", [{"restarts": 2}, {"loss": "dlr", "targets": 2}])
def test_apgd_is_offered_with_one_untargeted_restart(params: dict[str, object]) -> None:
    refusal = ADAPTER.declaration.refusal(_apgd(**params))
    assert refusal.startswith("offers APGD with one untargeted restart only")
    assert ADAPTER.declaration.accepts(_apgd("l2", "dlr"))
