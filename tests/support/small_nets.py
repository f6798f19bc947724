"""A small BatchNorm conv net and its synthetic task, shared by the adapter, API and mutation tests.

Importable by name from every test folder: pytest puts ``tests/`` on ``sys.path`` for its conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from advparity.adapters import attacks
from advparity.adapters.spec import AttackSpec
from torch import nn


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
    """Two conv + BatchNorm layers, global pooling, a linear head.

    ``normalize=(mean, std)`` puts ``(x - mean) / std`` inside the model, as a user's model must have it.
    """

    def __init__(
        self,
        channels: int = SMALL_SHAPE[0],
        classes: int = SMALL_CLASSES,
        normalize: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__()
        self.mean, self.std = normalize
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
        # With the default (0, 1), (x - 0) / 1 is x exactly: no change to the unnormalised net's output.
        return self.head(self.features((x - self.mean) / self.std))


def train_briefly(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, batch: int, seed: int
) -> nn.Module:
    """Adam (lr 1e-2) on random mini-batches of (x, y), one thread; returns the model in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    with one_thread():
        for _ in range(steps):
            idx = torch.randint(0, len(x), (batch,), generator=g)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


def attack_spec(attack: str, eps: float, seed: int = 0, **params: object) -> AttackSpec:
    """``attack`` at ``eps`` with those of ``params`` the attack defines: one call for every attack of a
    parametrised test (FGSM takes none of PGD's steps, alpha and random start)."""
    known = {f.name for f in dataclasses.fields(attacks.get(attack).params)}
    return AttackSpec(attack, eps, seed, {k: v for k, v in params.items() if k in known})
