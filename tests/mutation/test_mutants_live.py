"""Every planted library bug is *live*: with it applied, the library's adapter call visibly changes.

A mutant is live on a small BatchNorm CNN when the mutated call (1) raises AttackOutputError (the
shared guard caught a bound), (2) returns an x_adv that differs from the unmutated one by more than
float32 round-off, or (3) changed the model's parameters or buffers during the attack (the guard
restores them and logs "changed the model's ..."), or wrote into the inputs it was given. A bug that
only the invariants can see is called where it shows: at eps = 0, or on the invariants' 2-sample batch. The unmutated calls are checked to be
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
from advparity.adapters.invariants import with_eps
from mutants import BUGS, COPIED_FROM, MUTANTS, Mutant, installed_differs, needs_copied_releases
from suite import OPTIONS
from support.departures import departs
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
EPS_L2 = 0.5  # the L2 variants' eps: over the 1·12·16 pixels, about 9/255 a pixel
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


Options = tuple[tuple[str, object], ...]


def _spec(attack: str, norm: str = "linf", options: Options = ()) -> AttackSpec:
    """PGD from a random start; FGSM from x (its one step, the FGSM every library offers); with
    ``options``, a mutant's option settings (suite.OPTIONS in ``Mutant.where``: restarts, targeted, when
    y holds the targets)."""
    eps = EPS if norm == "linf" else EPS_L2
    # APGD's checkpoint schedule needs more than 3 iterations to differ (suite.APGD_ATTACKS: 10).
    steps = 10 if attack == "apgd" else STEPS
    return attack_spec(attack, eps, steps=steps, random_start=attack == "pgd", norm=norm, **dict(options))


def _options(mutant: Mutant) -> Options:
    """The option settings of ``mutant.where``: a bug of an option lives only in calls with it."""
    return tuple((key, value) for key, value in mutant.where if key in OPTIONS)


Cache = dict[tuple[str, str, str, int, Options], torch.Tensor]


@pytest.fixture(scope="module")
def clean_runs() -> Cache:
    """Unmutated x_adv per (library, attack, norm, batch size), filled on first use (before any mutant)."""
    return {}


def _clean(
    cache: Cache,
    model: nn.Module,
    lib: str,
    attack: str,
    norm: str,
    x: torch.Tensor,
    y: torch.Tensor,
    options: Options = (),
) -> torch.Tensor:
    key = (lib, attack, norm, len(x), options)
    if key not in cache:
        adapter = adapters.get(lib)
        first = adapter.run(model, x, y, _spec(attack, norm, options)).x_adv
        second = adapter.run(model, x, y, _spec(attack, norm, options)).x_adv
        assert torch.equal(first, second), f"unmutated {lib} {attack} ({norm}) is not deterministic"
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
    clean_runs: Cache,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    x, y = batch
    options = _options(mutant)
    lib, spec = mutant.library, _spec(mutant.attack, mutant.norm, options)
    partial = mutant.bug == "last partial batch"
    baseline_full = _clean(clean_runs, net, lib, mutant.attack, mutant.norm, x, y, options)
    x_run, y_run = (x[:SMALL], y[:SMALL]) if partial else (x, y)
    if mutant.bug == "batch dependence":  # the invariants' batch: 2 samples (AttackConfig.invariant_samples)
        x_run, y_run = x[:2], y[:2]
    baseline = _clean(clean_runs, net, lib, mutant.attack, mutant.norm, x_run, y_run, options)
    if mutant.bug == "zero budget":  # at eps = 0, where the unmutated library returns x itself
        spec, baseline = with_eps(spec, 0.0), x_run
    state_before = _model_state(net)
    caplog.clear()  # only the mutated calls' warnings count

    mutant.apply(monkeypatch)
    adapter = adapters.get(lib)
    raised: AttackOutputError | None = None
    x_adv: torch.Tensor | None = None
    changes: list[str] = []
    with caplog.at_level(logging.WARNING, logger="advparity.adapters.state"):
        try:
            if partial:
                # The bug must leave full-size batches correct and hit only the smaller, last one.
                full = adapter.run(net, x, y, spec).x_adv
                assert torch.equal(full, baseline_full), f"{mutant.name} changes full-size batches too"
            result = adapter.run(net, x_run, y_run, spec)
            x_adv, changes = result.x_adv, result.stats.state_changes
        except AttackOutputError as err:
            raised = err
    monkeypatch.undo()

    state_changed = any("changed the model's" in r.getMessage() for r in caplog.records)
    state_changed |= any("wrote into its input" in change for change in changes)
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
    clean_runs: Cache,
) -> None:
    """Applying and undoing every mutant of a library gives back the library's exact output, in every
    variant it offers."""
    x, y = batch
    offered = _variants(lib)
    baselines = {(a, n): _clean(clean_runs, net, lib, a, n, x, y) for a, n in offered}
    for mutant in MUTANTS:
        if mutant.library == lib:
            with pytest.MonkeyPatch.context() as mp:
                mutant.apply(mp)
    for attack, norm in offered:
        x_adv = adapters.get(lib).generate(net, x, y, _spec(attack, norm))
        assert torch.equal(x_adv, baselines[attack, norm]), (attack, norm)


def _variants(lib: str) -> list[tuple[str, str]]:
    """(attack, norm) for every variant ``lib`` offers."""
    offers = adapters.get(lib).declaration.offers
    return [(attack, norm) for attack, offer in offers.items() for norm in offer.norms]


# The offered attacks deliberately without mutants: Foolbox's MI-FGSM is a declared departure (it
# accumulates the gradients' signs), so its cells disagree with the reference unmutated and a planted bug
# could not be shown caught (mutants_iterative.py). Each must stay a departure, or get its mutants.
WITHOUT_MUTANTS = frozenset({("foolbox", "mifgsm")})


def test_registry_is_complete() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)), (
        f"duplicate names: {[n for n, c in Counter(names).items() if c > 1]}"
    )
    assert len(MUTANTS) >= 16
    for m in MUTANTS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", m.name), m.name
        variant = m.attack if m.norm == "linf" else f"{m.attack}-{m.norm}"  # art-fgsm-l2-...
        assert m.name.startswith(f"{m.library}-{variant}-"), m.name
        assert m.library in LIBRARIES, m
        assert m.attack in attacks.names(), m
        assert (m.attack, m.norm) in _variants(m.library), m
        assert m.bug in BUGS, m
        assert m.description.strip() and callable(m.apply), m
    assert {m.bug for m in MUTANTS} == set(BUGS), set(BUGS) - {m.bug for m in MUTANTS}
    for lib in LIBRARIES:
        mine = [m for m in MUTANTS if m.library == lib]
        assert len(mine) >= 4, lib
        # Every attack the library offers has mutants, except those of WITHOUT_MUTANTS.
        offered = {a for a in adapters.get(lib).declaration.attacks if (lib, a) not in WITHOUT_MUTANTS}
        assert {m.attack for m in mine} == offered, lib
    assert all(departs(lib, attack) for lib, attack in WITHOUT_MUTANTS), WITHOUT_MUTANTS
    assert any(m.bug == "sign" and m.attack == "fgsm" for m in MUTANTS)
    # The L2 variants of the three core libraries: at least two planted bugs each.
    for lib in ("art", "torchattacks", "foolbox"):
        for attack in ("fgsm", "pgd"):
            mine = [m for m in MUTANTS if (m.library, m.attack, m.norm) == (lib, attack, "l2")]
            assert len(mine) >= 2, (lib, attack)
    # BIM and MI-FGSM of the three core libraries: at least two planted bugs each (but WITHOUT_MUTANTS).
    for lib in ("art", "torchattacks", "foolbox"):
        for attack in ("bim", "mifgsm"):
            if (lib, attack) not in WITHOUT_MUTANTS:
                mine = [m for m in MUTANTS if (m.library, m.attack) == (lib, attack)]
                assert len(mine) >= 2, (lib, attack)
    # PGD's options (mutants_options.py), each mutant judged on its option's entry (its where names it):
    # restarts (ART alone offers them) and targeted attacks (CleverHans's only where it runs).
    for lib, option, least in (
        ("art", "restarts", 2),
        ("art", "targeted", 2),
        ("torchattacks", "targeted", 2),
        ("foolbox", "targeted", 2),
        ("cleverhans", "targeted", 1),
    ):
        if lib in LIBRARIES:
            mine = [m for m in MUTANTS if (m.library, m.attack) == (lib, "pgd") and option in dict(m.where)]
            assert len(mine) >= least, (lib, option)
    # An option's mutants are PGD's (restarts, targeted) or APGD's (its loss); APGD: two at least per library.
    assert all(
        m.norm == "linf" and (m.attack == "pgd" or (m.attack == "apgd" and set(dict(m.where)) == {"loss"}))
        for m in MUTANTS
        if _options(m)
    ), "an option off PGD and APGD"
    for lib in LIBRARIES:
        if adapters.get(lib).declaration.accepts(AttackSpec("apgd", EPS)):
            assert len([m for m in MUTANTS if (m.library, m.attack) == (lib, "apgd")]) >= 2, lib


def test_copies_match_installed_libraries() -> None:
    """The mutants replace methods with copies of these releases; the check that skips the suite under
    other releases must see the installed ones."""
    installed = {dist: importlib.metadata.version(dist) for dist in COPIED_FROM}
    assert (installed == COPIED_FROM) == (installed_differs() == "")
