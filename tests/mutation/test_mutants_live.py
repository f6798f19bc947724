"""Every planted library bug is *live*: with it applied, the library's adapter call visibly changes.

A mutant is live on a small BatchNorm CNN when the mutated call (1) raises AttackOutputError (the
shared guard caught a bound), (2) returns an x_adv that differs from the unmutated one by more than
float32 round-off, or (3) changed the model's parameters or buffers during the attack (the guard
restores them and logs "changed the model's ..."). The unmutated calls are checked to be
deterministic, bit for bit, so "differs" means the bug and not noise.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections import Counter
from collections.abc import Iterator

import pytest
import torch
from advparity.adapters import AttackOutputError, AttackSpec, attacks
from advparity.adapters.base import EPS_TOLERANCE
from mutants import BUGS, COPIED_FROM, MUTANTS, Mutant, installed_differs, needs_copied_releases
from support.small_nets import (
    SMALL_CLASSES,
    SmallNet,
    attack_spec,
    one_thread,
    synthetic_batch,
    train_briefly,
)
from torch import nn

from advparity import adapters

EPS = 4 / 255
STEPS = 3
CLASSES = SMALL_CLASSES
FULL = 16  # the runner's fixed batch size in these tests
SMALL = 5  # the run's last, smaller batch
LIBRARIES = tuple(name for name in adapters.runnable() if name != "reference")

Batch = tuple[torch.Tensor, torch.Tensor]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def _images(n: int, seed: int) -> Batch:
    """The shared synthetic task, with a saturated top row (1) and bottom row (0)."""
    x, y = synthetic_batch(n, seed)
    x[:, :, 0, :] = 1.0  # clipping bugs show at exactly 1 ...
    x[:, :, -1, :] = 0.0  # ... and at exactly 0
    return x, y


@pytest.fixture(scope="module")
def net() -> nn.Module:
    """Briefly trained (BatchNorm running stats off their defaults), returned in eval mode."""
    torch.manual_seed(0)
    model = SmallNet()
    x, y = _images(256, seed=1)
    return train_briefly(model, x, y, steps=30, batch=32, seed=2)


@pytest.fixture(scope="module")
def batch() -> Batch:
    """16 images; 3 labels moved to the next class so that some predictions differ from the labels."""
    x, y = _images(FULL, seed=3)
    y = y.clone()
    y[[1, 6, 11]] = (y[[1, 6, 11]] + 1) % CLASSES
    return x, y


def _spec(attack: str) -> AttackSpec:
    return attack_spec(attack, EPS, steps=STEPS, random_start=True)


@pytest.fixture(scope="module")
def clean_runs() -> dict[tuple[str, str, int], torch.Tensor]:
    """Unmutated x_adv per (library, attack, batch size), filled on first use (before any mutant)."""
    return {}


def _clean(
    cache: dict[tuple[str, str, int], torch.Tensor],
    model: nn.Module,
    lib: str,
    attack: str,
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    key = (lib, attack, len(x))
    if key not in cache:
        adapter = adapters.get(lib)
        first = adapter.run(model, x, y, _spec(attack)).x_adv
        second = adapter.run(model, x, y, _spec(attack)).x_adv
        assert torch.equal(first, second), f"unmutated {lib} {attack} is not deterministic"
        cache[key] = first
    return cache[key]


def _model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@needs_copied_releases
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_live(
    mutant: Mutant,
    net: nn.Module,
    batch: Batch,
    clean_runs: dict[tuple[str, str, int], torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    x, y = batch
    lib, spec = mutant.library, _spec(mutant.attack)
    partial = mutant.bug == "last partial batch"
    baseline_full = _clean(clean_runs, net, lib, mutant.attack, x, y)
    x_run, y_run = (x[:SMALL], y[:SMALL]) if partial else (x, y)
    baseline = _clean(clean_runs, net, lib, mutant.attack, x_run, y_run)
    state_before = _model_state(net)
    caplog.clear()  # only the mutated calls' warnings count

    mutant.apply(monkeypatch)
    adapter = adapters.get(lib)
    raised: AttackOutputError | None = None
    x_adv: torch.Tensor | None = None
    with caplog.at_level(logging.WARNING, logger="advparity.adapters.state"):
        try:
            if partial:
                # The bug must leave full-size batches correct and hit only the smaller, last one.
                full = adapter.run(net, x, y, spec).x_adv
                assert torch.equal(full, baseline_full), f"{mutant.name} changes full-size batches too"
            x_adv = adapter.run(net, x_run, y_run, spec).x_adv
        except AttackOutputError as err:
            raised = err
    monkeypatch.undo()

    state_changed = any("changed the model's" in r.getMessage() for r in caplog.records)
    diff = None if x_adv is None else float((x_adv.double() - baseline.double()).abs().max())
    differs = diff is not None and diff > EPS_TOLERANCE
    assert raised is not None or differs or state_changed, (
        f"{mutant.name} is not live: same x_adv (max |diff| {diff}), no AttackOutputError, model state untouched"
    )
    if raised is not None:
        assert raised.library == lib
    after = _model_state(net)
    assert all(torch.equal(after[k], v) for k, v in state_before.items()), (
        "the guard did not restore the model"
    )


@needs_copied_releases
@pytest.mark.parametrize("lib", LIBRARIES)
def test_undo_leaves_libraries_unmutated(
    lib: str,
    net: nn.Module,
    batch: Batch,
    clean_runs: dict[tuple[str, str, int], torch.Tensor],
) -> None:
    """Applying and undoing every mutant of a library gives back the library's exact output."""
    x, y = batch
    offered = adapters.get(lib).declaration.attacks
    baselines = {attack: _clean(clean_runs, net, lib, attack, x, y) for attack in offered}
    for mutant in MUTANTS:
        if mutant.library == lib:
            with pytest.MonkeyPatch.context() as mp:
                mutant.apply(mp)
    for attack in offered:
        assert torch.equal(adapters.get(lib).generate(net, x, y, _spec(attack)), baselines[attack])


def test_registry_is_complete() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)), (
        f"duplicate names: {[n for n, c in Counter(names).items() if c > 1]}"
    )
    assert len(MUTANTS) >= 16
    for m in MUTANTS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", m.name), m.name
        assert m.name.startswith(f"{m.library}-{m.attack}-"), m.name
        assert m.library in LIBRARIES, m
        assert m.attack in attacks.names(), m
        assert m.bug in BUGS, m
        assert m.description.strip() and callable(m.apply), m
    assert {m.bug for m in MUTANTS} == set(BUGS), set(BUGS) - {m.bug for m in MUTANTS}
    for lib in LIBRARIES:
        mine = [m for m in MUTANTS if m.library == lib]
        assert len(mine) >= 4, lib
        assert {m.attack for m in mine} == set(adapters.get(lib).declaration.attacks), lib
    assert any(m.bug == "sign" and m.attack == "fgsm" for m in MUTANTS)


def test_copies_match_installed_libraries() -> None:
    """The mutants replace methods with copies of these releases; the check that skips the suite under
    other releases must see the installed ones."""
    installed = {dist: importlib.metadata.version(dist) for dist in COPIED_FROM}
    assert (installed == COPIED_FROM) == (installed_differs() == "")
