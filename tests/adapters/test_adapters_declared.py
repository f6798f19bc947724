"""What each adapter declares about its library — loss reduction, random start, passes — is what the
library does: the expected x_adv built from the declaration equals the library's output bit for bit.

Batches of 13 (not a power of two, so a mean-reduced loss's 1/N is inexact and the declared reduction
matters) and 16 images; random-start PGD included, each library from its own start. Where a library is
known to compute another attack (``tests/support/departures.py``), its output must still differ from the
expectation in every sample, while its passes and state are held to the declaration as for any other.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import replace

import pytest
import torch
from advparity.adapters import AttackSpec
from advparity.adapters.base import GuardedAdapter
from advparity.adapters.declaration import Declaration, Offer
from advparity.adapters.expected import (
    NEAR_ZERO_GRADIENT,
    PIXEL_ROUND_OFF,
    Expectation,
    ExpectationCache,
    compare,
    expectation,
)
from advparity.adapters.reference import pgd_from, relative_magnitude, uniform_start
from support.adapter_checks import PGD_LIBRARIES, departs, runs_spec, synthetic_batch
from torch import nn

from advparity import adapters

SPECS = {
    "fgsm": AttackSpec("fgsm", 4 / 255),
    "pgd-random-start": AttackSpec("pgd", 4 / 255, steps=3, random_start=True, seed=5),
    "pgd-no-start": AttackSpec("pgd", 4 / 255, steps=3, random_start=False),
    # L2: each library's own normalisation, projection order and start draw (Offer.arithmetic, .start).
    "fgm-l2": AttackSpec("fgsm", 0.5, norm="l2"),
    "pgd-l2-random-start": AttackSpec("pgd", 0.5, steps=3, norm="l2", seed=5),
    "pgd-l2-no-start": AttackSpec("pgd", 0.5, steps=3, norm="l2", random_start=False),
    "fgsm-random-start": AttackSpec("fgsm", 4 / 255, random_start=True, seed=5),
    "fgm-l2-random-start": AttackSpec("fgsm", 0.5, norm="l2", random_start=True, seed=5),
    "bim": AttackSpec("bim", 4 / 255, steps=3),
    "mifgsm": AttackSpec("mifgsm", 4 / 255, steps=3, decay=1.0),
}
# Every adapter with every spec it computes (DeepRobust refuses no-start PGD: test_adapters_deeprobust.py).
CASES = [
    pytest.param(name, spec, id=f"{name}-{label}")
    for name in adapters.runnable()
    for label, spec in SPECS.items()
    if runs_spec(name, spec)
]


@pytest.mark.parametrize("n", [13, 16])
@pytest.mark.parametrize(("name", "spec"), CASES)
def test_library_output_equals_the_declared_expectation_bit_for_bit(
    name: str, spec: AttackSpec, n: int, small_net: nn.Module
) -> None:
    x, y = synthetic_batch(n, seed=21)
    adapter = adapters.get(name)
    result = adapter.run(small_net, x, y, spec)
    cache = ExpectationCache(small_net, x, y)
    expected = cache.get(spec, adapter.declaration, [spec.eps])
    assert expected.exact
    evidence = compare(result.x_adv, expected)
    if departs(name, spec.attack):
        assert (evidence.pixels_differ > 0).all(), (
            f"{name} {spec.attack} now matches: update tests/support/departures.py"
        )
    else:
        assert torch.equal(result.x_adv, expected.x_adv)
        assert evidence.pixels_differ.sum() == 0 and evidence.linf_to_expected.max() == 0
    assert (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample) == (
        adapter.declaration.passes(spec)
    )
    assert result.stats.state_changes == ()


@pytest.mark.parametrize("name", PGD_LIBRARIES)
def test_densenet_random_start_pgd_equals_its_expectation(
    name: str, densenet: nn.Module, densenet_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = densenet_batch
    x, y = x[:7], y[:7]  # an odd batch
    spec = AttackSpec("pgd", 2 / 255, steps=2, seed=3)
    adapter = adapters.get(name)
    x_adv = adapter.generate(densenet, x, y, spec)
    expected = expectation(densenet, x, y, spec, adapter.declaration)
    if departs(name, spec.attack):
        assert (compare(x_adv, expected).pixels_differ > 0).all()
    else:
        assert torch.equal(x_adv, expected.x_adv)


def test_the_starts_are_different_draws_so_equality_is_evidence(small_net: nn.Module) -> None:
    """Each library's start is its own: had the declarations been interchangeable, matching proves little."""
    x, _ = synthetic_batch(13, seed=21)
    spec = AttackSpec("pgd", 4 / 255, steps=3, seed=5)
    starts = {name: adapters.get(name).declaration.start(x, spec) for name in PGD_LIBRARIES}
    # Measured on CPU: adv-lib's uniform_(-1, 1)·eps on torch's global generator is, float for float,
    # torchattacks' uniform_(-eps, eps) — two recipes, one draw — and so is CleverHans's
    # zeros_like(x).uniform_(-eps, eps) in L∞. Every other pair differs.
    one_draw = {"torchattacks", "adv-lib", "cleverhans"}
    same_draw = {frozenset(pair) for pair in itertools.combinations(one_draw, 2)}
    for a, b in itertools.combinations(PGD_LIBRARIES, 2):
        assert torch.equal(starts[a], starts[b]) == (frozenset({a, b}) in same_draw), (a, b)
    # torchattacks draws exactly what the reference draws on its own generator.
    assert torch.equal(starts["torchattacks"], uniform_start(x, spec.eps, spec.seed))


def test_a_wrong_declaration_is_caught(small_net: nn.Module) -> None:
    """The comparison can fail: declare ART's start with another seed and its real x_adv no longer matches."""
    x, y = synthetic_batch(13, seed=21)
    spec = AttackSpec("pgd", 4 / 255, steps=3, seed=5)
    art = adapters.get("art")
    assert art.declaration.start is not None
    declared = art.declaration.offer("pgd")
    other_seed = Declaration(
        offers={"pgd": replace(declared, start=lambda x_, s: declared.start(x_, replace(s, seed=s.seed + 1)))}  # type: ignore[misc]
    )
    x_adv = art.generate(small_net, x, y, spec)
    evidence = compare(x_adv, expectation(small_net, x, y, spec, other_seed))
    assert (evidence.pixels_differ > 100).all()


def test_an_unreproducible_start_is_not_exact(small_net: nn.Module) -> None:
    x, y = synthetic_batch(13, seed=21)
    spec = AttackSpec("pgd", 4 / 255, steps=3, seed=5)
    unknown = Declaration(offers={"pgd": Offer(call=lambda *a: a[1], loss_reduction="mean", start=None)})
    found = expectation(small_net, x, y, spec, unknown)
    assert not found.exact
    # The statistical yardstick is the reference's own run for that seed.
    assert torch.equal(found.x_adv, adapters.get("reference").generate(small_net, x, y, spec))
    # Without random start every library is exact, whatever it declares about its start.
    assert expectation(
        small_net, x, y, AttackSpec("pgd", 4 / 255, steps=3, random_start=False), unknown
    ).exact


def test_compare_counts_pixels_beyond_round_off_and_near_zero_gradients() -> None:
    x_exp = torch.full((2, 1, 2, 2), 0.5)
    floor = torch.ones_like(x_exp)
    floor[0, 0, 0, 0] = NEAR_ZERO_GRADIENT  # at the threshold: near zero
    floor[0, 0, 0, 1] = 2 * NEAR_ZERO_GRADIENT
    x_adv = x_exp.clone()
    x_adv[1, 0, 1, 1] += PIXEL_ROUND_OFF / 2  # round-off: not counted
    x_adv[0, 0, 0, 0] += 1e-3
    x_adv[0, 0, 0, 1] -= 1e-3
    evidence = compare(x_adv, Expectation(x_exp, floor, exact=True))
    assert evidence.pixels_differ.tolist() == [2, 0]
    assert evidence.pixels_differ_near_zero.tolist() == [1, 0]
    assert evidence.pixels_total == 4
    assert evidence.linf_to_expected.tolist() == pytest.approx([1e-3, PIXEL_ROUND_OFF / 2], rel=1e-3)


def test_gradient_floor_is_the_smallest_relative_gradient_over_the_steps(small_net: nn.Module) -> None:
    x, y = synthetic_batch(5, seed=2)
    grad = torch.tensor([[[[3.0, -1.5], [0.0, 0.75]]]])
    assert relative_magnitude(grad).flatten().tolist() == [1.0, 0.5, 0.0, 0.25]
    assert relative_magnitude(torch.zeros(1, 1, 2, 2)).eq(0).all()
    start = uniform_start(x, 4 / 255, 0)
    _, one = pgd_from(small_net, x, y, start, 4 / 255, 1 / 255, 1)
    _, three = pgd_from(small_net, x, y, start, 4 / 255, 1 / 255, 3)
    assert (three <= one).all() and (one <= 1).all() and (three >= 0).all()
    assert one.flatten(1).amax(dim=1).eq(1).all()  # each sample's largest component is 1 by definition


def test_state_left_changed_by_a_library_is_recorded(
    small_net: nn.Module, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = synthetic_batch(8, seed=2)
    before = {k: v.clone() for k, v in small_net.state_dict().items()}

    def leaves_train_mode(
        model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, spec: AttackSpec, k: int
    ) -> torch.Tensor:
        model.train()
        model(xb)  # a train-mode forward: BatchNorm updates its running statistics
        return xb

    adapter = GuardedAdapter("leaky", leaves_train_mode, adapters.get("reference").declaration)
    with caplog.at_level(logging.WARNING):
        stats = adapter.run(small_net, x, y, AttackSpec("fgsm", 1 / 255)).stats
    assert any("module(s) left in train mode" in c for c in stats.state_changes)
    assert "buffers values changed" in stats.state_changes
    # ... and the guard put everything back.
    assert not small_net.training
    for key, value in small_net.state_dict().items():
        assert torch.equal(value, before[key]), key
