"""The arithmetic every reference attack is built from: the loss gradient, its per-pixel trust, the
uniform start. Written to be checked line by line against the equations in each attack's module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import restarts as restarts_module
from .definition import LossReduction


def loss_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    reduction: LossReduction = "sum",
    targeted: bool = False,
) -> torch.Tensor:
    """∇x of the attack's objective, one forward and one backward: the cross-entropy to ``y``
    (summed over the batch, or its mean), negated where the attack is targeted and ``y`` holds the
    targets (``targets.py``: −L's gradient is L's negated bit for bit, as the libraries compute it)."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction=reduction)
    (grad,) = torch.autograd.grad(-loss if targeted else loss, x)
    return grad


def relative_magnitude(grad: torch.Tensor) -> torch.Tensor:
    """|grad| per component over the largest |grad| of its sample (0 where a sample's gradient is all 0)."""
    magnitude = grad.abs()
    largest = magnitude.flatten(1).amax(dim=1).view(-1, *([1] * (grad.ndim - 1)))
    return torch.where(largest > 0, magnitude / largest, torch.zeros_like(magnitude))


def _uniform_noise(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    return (x + noise).clamp(0.0, 1.0)


def _uniform_ball_noise(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    direction = torch.empty_like(x).normal_(generator=generator)
    u = torch.rand(x.shape[0], dtype=torch.float64, generator=generator, device=x.device)
    radius = eps * u ** (1.0 / x[0].numel())
    norms = torch.linalg.vector_norm(direction.flatten(1).double(), dim=1)
    scale = (radius / norms).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return (x + direction * scale).clamp(0.0, 1.0)


def uniform_start(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """The reference's own L∞ start: x + U(-eps, eps) from a local generator, clipped to [0, 1].

    A local ``torch.Generator`` seeded with ``seed``: the caller's global RNG state is never touched.
    """
    return _uniform_noise(x, eps, torch.Generator(device=x.device).manual_seed(seed))


def uniform_ball_start(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """The reference's own L2 start: x + δ with δ uniform in the L2 ball of radius eps (a Gaussian
    direction, a radius eps · U^(1/d)), from a local generator, clipped to [0, 1]."""
    return _uniform_ball_noise(x, eps, torch.Generator(device=x.device).manual_seed(seed))


def ball_start(x: torch.Tensor, eps: float, norm: str, seed: int, restarts: int = 1) -> torch.Tensor:
    """The reference's own random start in ``norm``'s eps-ball (:func:`uniform_start`,
    :func:`uniform_ball_start`); with ``restarts`` > 1, that many drawn in turn from the one seeded
    generator and stacked ``[k, N, ...]`` (the first equals the single start)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    draw = _uniform_noise if norm == "linf" else _uniform_ball_noise
    return restarts_module.starts(lambda _: draw(x, eps, generator), restarts)
