"""adv-lib's planted bugs (mutants_adv_lib.py) are live, and undoing them gives its exact output back.

The criterion, net, batch and spec are test_mutants_live.py's: with the bug applied, the adapter call
raises AttackOutputError, returns an x_adv that differs from the unmutated one beyond float32
round-off, or changes the model's parameters or buffers. That test reaches the libraries through
``adapters.get``; adv-lib is not registered there (adapters/adv_lib.py says why), so its mutants run
here through its adapter directly; registered, they would join MUTANTS and COPIED_FROM in mutants.py.
"""

from __future__ import annotations

import importlib.metadata
import logging
import warnings
from collections.abc import Iterator

import pytest
import torch
from small_nets import SMALL_CLASSES, SmallNet, one_thread, synthetic_batch, train_briefly
from torch import nn

from adapters import AttackOutputError, AttackSpec
from adapters.base import ATTACKS, EPS_TOLERANCE

with warnings.catch_warnings():
    # adv-lib warns on import (distutils' LooseVersion), as adapters/adv_lib.py says; nothing to act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*distutils.*")
    pytest.importorskip("adv_lib", reason="adv-lib is not installed (see adapters/adv_lib.py)")

from mutants import BUGS, Mutant  # noqa: E402
from mutants_adv_lib import COPIED_FROM, MUTANTS  # noqa: E402

from adapters.adv_lib import ADAPTER  # noqa: E402

EPS = 4 / 255
STEPS = 3
FULL = 16

Batch = tuple[torch.Tensor, torch.Tensor]

# The copied function bodies belong to one release: under another one (tox's oldest) the test says so
# instead of planting a bug into code that may no longer exist.
_INSTALLED = importlib.metadata.version("adv-lib")
needs_copied_release = pytest.mark.skipif(
    COPIED_FROM["adv-lib"] != _INSTALLED,
    reason=f"mutants copied from adv-lib {COPIED_FROM['adv-lib']}, installed {_INSTALLED}",
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def _images(n: int, seed: int) -> Batch:
    """The shared synthetic task, with a saturated top row (1) and bottom row (0), as test_mutants_live."""
    x, y = synthetic_batch(n, seed)
    x[:, :, 0, :] = 1.0
    x[:, :, -1, :] = 0.0
    return x, y


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    x, y = _images(256, seed=1)
    return train_briefly(SmallNet(), x, y, steps=30, batch=32, seed=2)


@pytest.fixture(scope="module")
def batch() -> Batch:
    """16 images; 3 labels moved to the next class, so some predictions are wrong from the start —
    the samples adv-lib returns an iterate for rather than the clean image."""
    x, y = _images(FULL, seed=3)
    y = y.clone()
    y[[1, 6, 11]] = (y[[1, 6, 11]] + 1) % SMALL_CLASSES
    return x, y


def _spec(attack: str) -> AttackSpec:
    return AttackSpec(attack, EPS, steps=STEPS, random_start=True, seed=0)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clean_runs(net: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """Unmutated x_adv per attack, checked to be deterministic bit for bit."""
    runs = {}
    for attack in ATTACKS:
        first = ADAPTER.generate(net, *batch, _spec(attack))
        assert torch.equal(first, ADAPTER.generate(net, *batch, _spec(attack))), attack
        runs[attack] = first
    return runs


def test_mutants_are_well_formed() -> None:
    """What test_mutants_live.py's registry check asks of every library's mutants."""
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names)) and len(MUTANTS) >= 4
    for m in MUTANTS:
        assert isinstance(m, Mutant) and m.library == ADAPTER.name
        assert m.name.startswith(f"{m.library}-{m.attack}-") and m.attack in ATTACKS and m.bug in BUGS
        assert m.description.strip() and callable(m.apply)
    assert {m.attack for m in MUTANTS} == set(ATTACKS)


@needs_copied_release
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_live(
    mutant: Mutant,
    net: nn.Module,
    batch: Batch,
    clean_runs: dict[str, torch.Tensor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    baseline = clean_runs[mutant.attack]
    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    caplog.clear()

    mutant.apply(monkeypatch)
    raised: AttackOutputError | None = None
    x_adv: torch.Tensor | None = None
    with caplog.at_level(logging.WARNING, logger="adapters.base"):
        try:
            x_adv = ADAPTER.generate(net, *batch, _spec(mutant.attack))
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
        assert raised.library == ADAPTER.name
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state_before.items())


@needs_copied_release
def test_undo_leaves_adv_lib_unmutated(
    net: nn.Module, batch: Batch, clean_runs: dict[str, torch.Tensor]
) -> None:
    for mutant in MUTANTS:
        with pytest.MonkeyPatch.context() as mp:
            mutant.apply(mp)
    for attack in ATTACKS:
        assert torch.equal(ADAPTER.generate(net, *batch, _spec(attack)), clean_runs[attack])
