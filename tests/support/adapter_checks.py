"""Comparison helpers shared by the adapter tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from advparity.adapters.base import EPS_TOLERANCE
from advparity.adapters.spec import AttackSpec
from scipy.stats import binomtest

from advparity import adapters

# Attacks a library is known to compute differently from the reference (tests/support/departures.py).
from support.departures import DEPARTURES, departs  # noqa: F401

# The small BatchNorm net, its synthetic task and the one-thread guard are shared with the API and
# mutation tests (tests/support/small_nets.py); re-exported here under the names the adapter tests use.
from support.small_nets import SMALL_CLASSES, SMALL_SHAPE, SmallNet, one_thread, synthetic_batch  # noqa: F401

# The eps grids of issue 4: the paper's and larger ones, in pixel units.
PAPER_EPS = (0.01 / 255, 0.025 / 255, 0.05 / 255, 0.1 / 255, 0.3 / 255)
LARGE_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
ALL_EPS = PAPER_EPS + LARGE_EPS
# Every library that can run here: the three advparity depends on always (test_adapters_spec.py checks),
# the optional ones where installed (test_optional_libraries_installed says which are not).
LIBRARIES = tuple(name for name in adapters.runnable() if name != "reference")


def require_runnable(name: str) -> None:
    """Skip the calling test module, saying why, where library ``name`` cannot run here (not installed,
    or installed but failing on import: secml-torch 1.5 with Foolbox 3.3.0, for one)."""
    status = adapters.availability(name)
    if status.state != "ready":
        pytest.skip(f"{name} {status.state}: {status.reason}", allow_module_level=True)


def runs_spec(name: str, spec: AttackSpec) -> bool:
    """Whether adapter ``name`` offers ``spec`` (its Declaration: adv-lib has no FGSM, DeepRobust no
    PGD without a random start) rather than refusing it."""
    return adapters.get(name).declaration.accepts(spec)


def libraries_for(spec: AttackSpec) -> tuple[str, ...]:
    """The libraries of :data:`LIBRARIES` that compute ``spec``."""
    return tuple(name for name in LIBRARIES if runs_spec(name, spec))


def offering(spec: AttackSpec) -> tuple[str, ...]:
    """Every library that runs here, the reference included, that computes ``spec``."""
    return tuple(name for name in adapters.runnable() if runs_spec(name, spec))


# The libraries whose PGD the PGD tests judge: all but the original AutoAttack, which has APGD alone.
PGD_LIBRARIES = libraries_for(AttackSpec("pgd", 1 / 255))


def one_step_spec(name: str, eps: float = 1 / 255, seed: int = 0) -> AttackSpec:
    """A one-step attack library ``name`` offers, for the tests of what every adapter must do
    (guards, state, seeding): one-step random-start PGD where offered, else one-step APGD."""
    for spec in (AttackSpec("pgd", eps, steps=1, seed=seed), AttackSpec("apgd", eps, steps=1, seed=seed)):
        if runs_spec(name, spec):
            return spec
    raise AssertionError(f"{name} offers neither PGD nor APGD")


@dataclass(frozen=True)
class Mismatch:
    """Where a library's x_adv differs from the reference's by more than float32 round-off."""

    elements: int  # components with |difference| > EPS_TOLERANCE (a sign flip moves one by ~eps)
    samples: int
    max_abs: float

    def __str__(self) -> str:
        return f"{self.elements} components in {self.samples} samples differ, max |diff| {self.max_abs:.3g}"


def mismatch(x_lib: torch.Tensor, x_ref: torch.Tensor) -> Mismatch:
    diff = (x_lib.double() - x_ref.double()).abs()
    beyond = diff > EPS_TOLERANCE
    return Mismatch(
        elements=int(beyond.sum()),
        samples=int(beyond.flatten(1).any(dim=1).sum()),
        max_abs=float(diff.max()),
    )


def correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1) == y


def mcnemar_exact(a_correct: torch.Tensor, b_correct: torch.Tensor) -> tuple[int, int, float]:
    """Paired exact McNemar: discordant counts (a right/b wrong, a wrong/b right) and the two-sided p."""
    b = int((a_correct & ~b_correct).sum())
    c = int((~a_correct & b_correct).sum())
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return b, c, p


# --- a small model and task that look nothing like the paper's ------------------------------------
