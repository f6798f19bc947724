"""Invariants that need no reference (``adapters/invariants.py``): every library passes them on every
attack it offers (no false alarm), and a planted bug of each kind breaks them."""

from __future__ import annotations

import pytest
import torch
from advparity.adapters import AttackSpec, get, runnable
from advparity.adapters.expected import expectation
from advparity.adapters.invariants import (
    INDEPENDENT,
    REPEATABLE,
    ZERO_BUDGET,
    batch_independent,
    check_all,
    on_cell,
    repeatable,
    zero_budget,
)
from support.departures import BROKEN_AT_ZERO
from support.small_nets import synthetic_batch
from torch import nn

EPS = 4 / 255
SPECS = [
    AttackSpec("fgsm", EPS),
    AttackSpec("fgsm", 0.5, norm="l2"),
    AttackSpec("pgd", EPS, steps=3, random_start=False),
    AttackSpec("pgd", EPS, steps=3, random_start=True, seed=2),
    AttackSpec("pgd", 0.5, steps=3, random_start=False, norm="l2"),
    AttackSpec("bim", EPS, steps=3),
    AttackSpec("mifgsm", EPS, steps=3),
    AttackSpec("apgd", EPS, steps=5, seed=1),
]


@pytest.mark.parametrize("library", runnable())
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.label}-{s.norm}")
def test_every_library_keeps_the_invariants(library: str, spec: AttackSpec, small_net: nn.Module) -> None:
    """On 7 images (not a power of two: a mean-reduced loss rounds differently in each split)."""
    adapter = get(library)
    if not adapter.declaration.accepts(spec):
        pytest.skip(f"{library} {adapter.declaration.refusal(spec)}")
    x, y = synthetic_batch(7, seed=31)
    checks = check_all(adapter, small_net, x, y, spec)
    assert [c.name for c in checks] == [ZERO_BUDGET, REPEATABLE, INDEPENDENT]
    zero, *others = checks
    if (library, spec.attack, spec.norm) in BROKEN_AT_ZERO:
        assert zero.passed is False and "NaN" in zero.evidence, zero
    else:
        assert zero.passed is not False, zero
    for check in others:
        assert check.passed is not False, f"{check.name}: {check.evidence} (samples {check.samples})"
    # A library whose call cannot take eps = 0 says so in one line; a seeded spec's batch-independence
    # cannot run, and says why.
    assert zero.passed is not None or zero.evidence.startswith("not run: its call cannot take eps = 0")
    independent = checks[2]
    assert (independent.passed is None) == spec.seeded
    if spec.seeded:
        assert independent.evidence.startswith("not run: the random start is drawn for the whole batch")


def test_a_batch_level_selection_breaks_independence(
    small_net: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library that keeps its adversarial batch only where it fools most of the batch (a selection by
    the batch's success rate, as ART's restarts once were) makes a sample's x_adv depend on the others."""
    torchattacks = pytest.importorskip("torchattacks")
    released = torchattacks.FGSM.forward

    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        adv = released(self, images, labels)
        with torch.no_grad():
            rate = (self.get_logits(adv).argmax(1) != labels).float().mean()
        # MUTATION: added — the whole batch's x_adv kept only where it fools half the batch
        return adv if rate >= 0.5 else images

    x, y = synthetic_batch(7, seed=31)
    spec = AttackSpec("fgsm", 8 / 255)  # fools 3 of the 7, 2 of the first 4: the split changes the choice
    assert batch_independent(get("torchattacks"), small_net, x, y, spec).passed is True
    monkeypatch.setattr(torchattacks.FGSM, "forward", forward)
    check = batch_independent(get("torchattacks"), small_net, x, y, spec)
    assert check.passed is False and check.samples and "changed with the batch" in check.evidence


def test_an_unseeded_draw_breaks_repeatability(small_net: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """A random start drawn from a generator of its own, ignoring the seeded global RNG: two identical
    calls differ."""
    pytest.importorskip("torchattacks")
    released = torch.Tensor.uniform_

    calls = iter(range(1_000_000))

    def uniform_(self, a=0.0, b=1.0, generator=None):  # type: ignore[no-untyped-def]
        # MUTATION: was `generator=generator` (None: the global RNG the adapter seeds): another seed per call
        return released(self, a, b, generator=torch.Generator().manual_seed(next(calls)))

    x, y = synthetic_batch(7, seed=31)
    spec = AttackSpec("pgd", EPS, steps=3, random_start=True, seed=2)
    assert repeatable(get("torchattacks"), small_net, x, y, spec).passed is True
    with monkeypatch.context() as patched:
        patched.setattr(torch.Tensor, "uniform_", uniform_)
        check = repeatable(get("torchattacks"), small_net, x, y, spec)
    assert check.passed is False and len(check.samples) == len(x)


def test_a_step_at_zero_budget_breaks_it(small_net: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """FGSM that steps by a floor of 1/255 whatever eps (an eps = 0 that still steps)."""
    torchattacks = pytest.importorskip("torchattacks")
    released = torchattacks.FGSM.__init__

    def __init__(self, model, eps=8 / 255):  # type: ignore[no-untyped-def]
        # MUTATION: was `self.eps = eps`
        released(self, model, eps=max(eps, 1 / 255))

    x, y = synthetic_batch(7, seed=31)
    spec = AttackSpec("fgsm", EPS)
    assert zero_budget(get("torchattacks"), small_net, x, y, spec).passed is True
    monkeypatch.setattr(torchattacks.FGSM, "__init__", __init__)
    check = zero_budget(get("torchattacks"), small_net, x, y, spec)
    assert check.passed is False and "left the eps-ball" in check.evidence


@pytest.mark.parametrize("library", runnable())
@pytest.mark.parametrize("spec", SPECS[:4], ids=lambda s: f"{s.label}-{s.norm}")
def test_a_cells_checks_reuse_its_call(library: str, spec: AttackSpec, small_net: nn.Module) -> None:
    """``on_cell``, as every run cell calls it: 2 samples of a 7-image batch, the batch's own x_adv."""
    adapter = get(library)
    if not adapter.declaration.accepts(spec):
        pytest.skip(f"{library} {adapter.declaration.refusal(spec)}")
    x, y = synthetic_batch(7, seed=31)
    whole = adapter.generate(small_net, x, y, spec)
    floor = expectation(small_net, x, y, spec, adapter.declaration).grad_floor
    checks = on_cell(adapter, small_net, x[:2], y[:2], spec, whole[:2], floor[:2])
    assert [c.name for c in checks] == [ZERO_BUDGET, REPEATABLE, INDEPENDENT]
    zero, same, independent = checks
    assert (zero.passed is False) == ((library, spec.attack, spec.norm) in BROKEN_AT_ZERO), zero
    assert same.passed is True, same
    assert independent.passed is (None if spec.seeded else True), independent
    # Another batch's x_adv is not this one's: the comparison can fail.
    if not spec.seeded:
        other = adapter.generate(small_net, x[2:4], y[2:4], spec)
        broken = on_cell(adapter, small_net, x[:2], y[:2], spec, other, floor[:2])[2]
        assert broken.passed is False and broken.samples == (0, 1)
