"""Comparison helpers shared by the adapter tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from scipy.stats import binomtest
from torch import nn

from adapters.base import EPS_TOLERANCE

# The eps grids of issue 4: the paper's and larger ones, in pixel units.
PAPER_EPS = (0.01 / 255, 0.025 / 255, 0.05 / 255, 0.1 / 255, 0.3 / 255)
LARGE_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
ALL_EPS = PAPER_EPS + LARGE_EPS
LIBRARIES = ("art", "torchattacks", "foolbox")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the caller's setting.

    These tensors are tiny: a second thread saves little, and on a shared 2-core machine OpenMP's
    barriers wait for a descheduled thread — measured 20× slower (84 s vs 4 s for the PGD grid).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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

SMALL_SHAPE = (1, 12, 16)  # C, H, W
SMALL_CLASSES = 3


def synthetic_batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images whose class is a brighter vertical band (left/middle/right), of random strength."""
    c, h, w = SMALL_SHAPE
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, SMALL_CLASSES, (n,), generator=g)
    x = 0.35 + 0.1 * torch.randn(n, c, h, w, generator=g)
    strength = 0.1 + 0.3 * torch.rand(n, generator=g)
    band = w // SMALL_CLASSES
    for i in range(n):
        k = int(y[i])
        x[i, :, :, k * band : (k + 1) * band] += strength[i]
    return x.clamp(0.0, 1.0), y


class SmallNet(nn.Module):
    def __init__(self, channels: int = SMALL_SHAPE[0], classes: int = SMALL_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
