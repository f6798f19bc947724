"""Fixtures for the Grad-CAM tests: tiny networks whose Grad-CAM can be written down by hand."""

from __future__ import annotations

import pytest
import torch
from support.gradcam_nets import GapNet, InplaceReluNet


@pytest.fixture
def gap_net() -> GapNet:
    torch.manual_seed(0)
    return GapNet(stride=1).eval()


@pytest.fixture
def inplace_net() -> InplaceReluNet:
    torch.manual_seed(1)
    net = InplaceReluNet()
    # Non-trivial running statistics, so the BatchNorm output is not just the conv output.
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.2, 0.2)
    return net.eval()
