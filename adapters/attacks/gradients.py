"""The arithmetic every reference attack is built from: the loss gradient, its per-pixel trust, the
uniform start. Written to be checked line by line against the equations in each attack's module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .definition import LossReduction


def loss_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: LossReduction = "sum"
) -> torch.Tensor:
    """∇x of the cross-entropy (summed over the batch, or its mean), one forward and one backward."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction=reduction)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def relative_magnitude(grad: torch.Tensor) -> torch.Tensor:
    """|grad| per component over the largest |grad| of its sample (0 where a sample's gradient is all 0)."""
    magnitude = grad.abs()
    largest = magnitude.flatten(1).amax(dim=1).view(-1, *([1] * (grad.ndim - 1)))
    return torch.where(largest > 0, magnitude / largest, torch.zeros_like(magnitude))


def uniform_start(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """The reference's own L∞ start: x + U(-eps, eps) from a local generator, clipped to [0, 1].

    A local ``torch.Generator`` seeded with ``seed``: the caller's global RNG state is never touched.
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    return (x + noise).clamp(0.0, 1.0)
