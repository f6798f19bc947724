"""Random restarts (``attacks/restarts.py``) against their definition written out by hand, and ART's
two restart rules: PGD's per-sample rule reproduced bit for bit (and needed), FGM's whole-batch rule
pinned as the departure it is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advparity.adapters import AttackSpec
from advparity.adapters.attacks import restarts
from advparity.adapters.attacks.gradients import ball_start
from advparity.adapters.expected import compare, expectation
from advparity.harness.config import attack_grid
from support.adapter_checks import synthetic_batch
from torch import nn

from advparity import adapters

EPS = 16 / 255


def _pgd(k: int, norm: str = "linf", seed: int = 0) -> AttackSpec:
    eps = EPS if norm == "linf" else 0.5
    return AttackSpec("pgd", eps, seed=seed, steps=3, alpha=eps / 4, random_start=True, restarts=k, norm=norm)


def _single(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, start: torch.Tensor
) -> torch.Tensor:
    one = AttackSpec(spec.attack, spec.eps, spec.seed, {**_fields(spec), "restarts": 1})
    return one.definition.reference(net, x, y, one.eps, one.params, start, "sum")[0]


def _fields(spec: AttackSpec) -> dict[str, object]:
    import dataclasses

    return dataclasses.asdict(spec.params)


def test_k_starts_are_drawn_in_turn_and_the_first_is_the_single_start() -> None:
    x, _ = synthetic_batch(4, seed=1)
    for norm in ("linf", "l2"):
        stacked = ball_start(x, 0.1, norm, seed=5, restarts=3)
        assert stacked.shape == (3, *x.shape)
        assert torch.equal(stacked[0], ball_start(x, 0.1, norm, seed=5))
        assert not torch.equal(stacked[1], stacked[0]) and not torch.equal(stacked[2], stacked[1])


def test_each_sample_keeps_its_last_misclassified_restart(small_net: nn.Module) -> None:
    """The definition by hand: k single-start PGDs from the k starts; per sample the last restart the
    model misclassifies, restart 1 where none does."""
    x, y = synthetic_batch(16, seed=3)
    spec = _pgd(4)
    starts = spec.definition.default_start(x, spec.eps, spec.params, spec.seed)
    singles = [_single(small_net, x, y, spec, start) for start in starts]
    with torch.no_grad():
        wrong = torch.stack([small_net(s).argmax(1) != y for s in singles])  # [k, N]
    expected = singles[0].clone()
    for i in range(len(x)):
        last = [r for r in range(4) if wrong[r, i]]
        if last:
            expected[i] = singles[last[-1]][i]
    got = spec.definition.from_starts(small_net, x, y, spec.eps, spec.params, starts, "sum")[0]
    assert torch.equal(got, expected)
    # The batch shows the rule: some sample is won by a later restart, some by none.
    assert bool(wrong[1:].any(dim=0).any()) and bool((~wrong.any(dim=0)).any())


def test_restarts_cost_k_attacks_and_one_forward_per_later_restart(small_net: nn.Module) -> None:
    x, y = synthetic_batch(8, seed=2)
    for spec in (_pgd(3), AttackSpec("fgsm", EPS, seed=1, random_start=True, restarts=5)):
        result = adapters.get("reference").run(small_net, x, y, spec)
        assert (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample) == (
            spec.definition.passes(spec.params)
        )
    assert _pgd(3).definition.passes(_pgd(3).params) == (3 * 3 + 2, 3 * 3)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_art_pgd_restarts_equal_their_declared_selection(small_net: nn.Module, norm: str) -> None:
    x, y = synthetic_batch(16, seed=3)
    spec = _pgd(4, norm)
    art = adapters.get("art")
    result = art.run(small_net, x, y, spec)
    evidence = compare(result.x_adv, expectation(small_net, x, y, spec, art.declaration))
    assert int(evidence.pixels_differ.sum()) == 0
    assert (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample) == (
        art.declaration.passes(spec)
    )


def test_arts_selection_is_needed_where_the_clean_prediction_is_already_wrong(small_net: nn.Module) -> None:
    """ART counts a restart as a success where its prediction differs from the *clean* prediction:
    with labels the model already gets wrong, a restart that predicts anything else (the true class
    included) wins. The definition's rule (misclassified) keeps another restart there."""
    x, y = synthetic_batch(16, seed=3)
    with torch.no_grad():
        clean = small_net(x).argmax(1)
    y_wrong = (clean + 1) % 3  # every clean prediction is now wrong (3 classes)
    spec = _pgd(4)
    art = adapters.get("art")
    x_art = art.run(small_net, x, y_wrong, spec).x_adv
    declared = expectation(small_net, x, y_wrong, spec, art.declaration)
    assert int(compare(x_art, declared).pixels_differ.sum()) == 0
    start = art.declaration.start(x, spec)
    assert start is not None
    own_rule = spec.definition.from_starts(small_net, x, y_wrong, spec.eps, spec.params, start, "mean")[0]
    assert not torch.equal(own_rule, x_art)


def test_art_fgm_restarts_keep_one_restart_for_the_whole_batch(small_net: nn.Module) -> None:
    """The departure as ART's source computes it: the restart with the highest success rate over the
    batch (strictly higher than the ones before), x itself when none changes a prediction."""
    x, y = synthetic_batch(16, seed=3)
    spec = AttackSpec("fgsm", EPS, seed=2, random_start=True, restarts=4)
    art = adapters.get("art")
    x_art = art.run(small_net, x, y, spec).x_adv
    starts = art.declaration.start(x, spec)
    assert starts is not None
    candidates = [_single(small_net, x, y, spec, start) for start in starts]
    # ART's mean loss at N = 16 rounds as the reference's sum (a power of two): the candidates are exact.
    with torch.no_grad():
        clean = small_net(x).argmax(1)
        rates = [float((small_net(c).argmax(1) != clean).float().mean()) for c in candidates]
    best, best_rate = x, 0.0
    for candidate, rate in zip(candidates, rates, strict=True):
        if rate > best_rate:
            best, best_rate = candidate, rate
    assert torch.equal(x_art, best)
    # And it departs: the per-sample rule keeps other pixels for some sample of this batch.
    per_sample = spec.definition.from_starts(small_net, x, y, spec.eps, spec.params, starts, "mean")[0]
    assert not torch.equal(per_sample, x_art)
    assert "whole batch" in art.declaration.departure(spec)
    assert art.declaration.departure(AttackSpec("fgsm", EPS, seed=2, random_start=True)) == ""


def test_a_library_without_restarts_refuses_them() -> None:
    for name in ("torchattacks", "foolbox", "cleverhans"):
        declaration = adapters.get(name).declaration
        if "pgd" in declaration.offers:
            assert "restarts" in declaration.refusal(_pgd(3))
            assert declaration.accepts(_pgd(1))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"attack": "pgd", "eps": ["1/255"], "restarts": 0}, "restarts to be an integer >= 1"),
        ({"attack": "pgd", "eps": ["1/255"], "restarts": 2.5}, "restarts to be an integer >= 1"),
        ({"attack": "pgd", "eps": ["1/255"], "restarts": 3, "random_start": False}, "without a random start"),
        ({"attack": "fgsm", "eps": ["1/255"], "restarts": 3}, "without a random start"),
        ({"attack": "bim", "eps": ["1/255"], "restarts": 3}, "restarts"),
    ],
)
def test_bad_restarts_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grid = attack_grid(table)
        grid.params(grid.eps[0])


def test_restarts_name_their_cells_and_keep_the_old_keys() -> None:
    assert _pgd(5).label == "PGD-3, 5 restarts"
    assert "restarts5" in _pgd(5).definition.cell_key(_pgd(5).params)
    assert "restarts" not in _pgd(1).definition.cell_key(_pgd(1).params)
    assert restarts.count(AttackSpec("bim", EPS).params) == 1
    assert np.isclose(restarts.passes(4, restarts.Selection(needs_clean=True)), 4.0)
