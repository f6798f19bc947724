"""Fixtures for the adapter tests: small trained models that do not look like the paper's.

``small_net``: a conv net *with BatchNorm*, 1 input channel, 3 classes, 12×16 (non-square) images,
trained for a few seconds on a synthetic task — nothing here may assume 4 classes, 3 channels, a
square image or a DenseNet. ``densenet``: the project's DenseNet-121 at 32×32 with its BatchNorm
statistics moved off their defaults by a few training steps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from support.adapter_checks import SmallNet, one_thread, synthetic_batch
from support.small_nets import train_briefly
from torch import nn

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def small_net() -> nn.Module:
    """Trained to ~98 % test accuracy in ~100 Adam steps; returned in eval mode."""
    torch.manual_seed(0)
    net = SmallNet()
    x, y = synthetic_batch(512, seed=100)
    return train_briefly(net, x, y, steps=100, batch=64, seed=1)


@pytest.fixture(scope="session")
def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """16 images: a power of two, so the 1/N of a mean-reduced loss is exact (see reference.py)."""
    return synthetic_batch(16, seed=3)


@pytest.fixture(scope="session")
def densenet() -> nn.Module:
    from advparity.model.network import build_densenet121

    torch.manual_seed(0)
    net = build_densenet121(num_classes=4, weights=None)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(16, 3, 32, 32, generator=g)
    y = torch.randint(0, 4, (16,), generator=g)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    with one_thread():
        for _ in range(3):  # moves BatchNorm running stats and weights off their initial values
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return net.eval()


@pytest.fixture(scope="session")
def densenet_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    return torch.rand(8, 3, 32, 32, generator=g), torch.randint(0, 4, (8,), generator=g)
