"""Models whose worst case within eps is known exactly: the arbiter proven against mathematics.

An affine classifier z = W·x + b on image-shaped inputs x ∈ [0, 1]^D. For a sample with label y the
margin is m(x) = z_y − max_{j≠y} z_j; an attack within eps lowers it at best to

    m* = min_{j≠y} min_{δ: ‖δ‖ ≤ eps, 0 ≤ x+δ ≤ 1} (w_y − w_j)·(x + δ) + b_y − b_j,

a minimum over j of linear programs over the eps-ball intersected with the pixel box, each solved
exactly here (in float64):

* L∞: the feasible set is a box, δ_i ∈ [max(−eps, −x_i), min(eps, 1 − x_i)], and a linear function
  is lowest at the corner that takes each coordinate's bound against the sign of its weight
  (``w_i > 0``: the lower one; ``w_i = 0``: δ_i = 0);
* L2: by the KKT conditions of the convex program the optimum is δ(λ) = clip(−λ·w, −x, 1 − x) with λ ≥ 0
  the smallest at which ‖δ(λ)‖₂ = eps (‖δ(λ)‖₂ grows with λ), or the box's own corner where that lies
  within the ball; λ is found by bisection to float64 precision.

On a two-class model the cross-entropy gradient's sign is −sign(w_y − w_other) on every pixel whatever
the point, so FGSM's one step of eps, clipped to [0, 1], *is* the L∞ optimum and PGD reaches it once
its steps add up to eps; with more classes the optimum's class j need not be the one cross-entropy
climbs towards, and an attack's margin is only an upper bound of m*. ``tests/adapters/test_optima.py``
holds the reference — and every library — to these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attacks.norms import Norm, check_norm


class AffineModel(nn.Module):
    """z = W·flatten(x) + b, float32, on inputs of ``shape`` (C, H, W); ``W`` is [classes, C·H·W]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, shape: tuple[int, int, int]) -> None:
        super().__init__()
        if (
            weight.ndim != 2
            or weight.shape[1] != shape[0] * shape[1] * shape[2]
            or bias.shape != weight.shape[:1]
        ):
            raise ValueError(
                f"expected weight [K, C·H·W] and bias [K] for inputs {shape}, got {tuple(weight.shape)}, {tuple(bias.shape)}"
            )
        self.weight = nn.Parameter(weight.float().clone())
        self.bias = nn.Parameter(bias.float().clone())
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def affine_model(classes: int, shape: tuple[int, int, int] = (1, 8, 8), seed: int = 0) -> AffineModel:
    """A random affine classifier (weights ~ N(0, 1/D), biases ~ N(0, 0.1²)) in eval mode."""
    if classes < 2:
        raise ValueError(f"expected at least 2 classes, got {classes}")
    generator = torch.Generator().manual_seed(seed)
    d = shape[0] * shape[1] * shape[2]
    weight = torch.randn(classes, d, generator=generator) / d**0.5
    bias = 0.1 * torch.randn(classes, generator=generator)
    return AffineModel(weight, bias, shape).eval()


def margins(model: AffineModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """m(x) = z_y − max_{j≠y} z_j per sample, in float64 (the model's own arithmetic rounds)."""
    z = x.detach().double().flatten(1) @ model.weight.detach().double().T + model.bias.detach().double()
    true = z.gather(1, y.view(-1, 1)).squeeze(1)
    others = z.scatter(1, y.view(-1, 1), float("-inf")).amax(dim=1)
    return true - others


@dataclass(frozen=True)
class Optimum:
    """The worst case within eps and [0, 1], per sample: the point (float64) and its margin m*."""

    x_adv: torch.Tensor  # float64 [N, C, H, W]
    margin: torch.Tensor  # float64 [N]; negative where an adversarial example exists within eps
    target: torch.Tensor  # int64 [N]: the class j whose margin the optimum lowers most


def optimum(model: AffineModel, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm) -> Optimum:
    """m* and the point reaching it (the module docstring's solution), for every sample."""
    check_norm(norm)
    x64 = x.detach().double().flatten(1)
    weight, bias = model.weight.detach().double(), model.bias.detach().double()
    best_margin = torch.full((x.shape[0],), float("inf"), dtype=torch.float64)
    best_delta = torch.zeros_like(x64)
    best_target = torch.zeros(x.shape[0], dtype=torch.int64)
    for j in range(weight.shape[0]):
        others = y != j
        if not others.any():
            continue
        w = weight[y] - weight[j]  # [N, D]: the margin's gradient towards class j
        offset = bias[y] - bias[j]
        delta = _linf_corner(w, x64, eps) if norm == "linf" else _l2_optimum(w, x64, eps)
        margin = ((x64 + delta) * w).sum(dim=1) + offset
        better = others & (margin < best_margin)
        best_margin = torch.where(better, margin, best_margin)
        best_delta = torch.where(better.view(-1, 1), delta, best_delta)
        best_target = torch.where(better, torch.full_like(best_target, j), best_target)
    return Optimum((x64 + best_delta).view(x.shape), best_margin, best_target)


def _bounds(x64: torch.Tensor, eps: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per coordinate, the lowest and highest δ the box (and, with ``eps``, the L∞ ball) allow."""
    low, high = -x64, 1.0 - x64
    if eps is None:
        return low, high
    return torch.clamp(low, min=-eps), torch.clamp(high, max=eps)


def _linf_corner(w: torch.Tensor, x64: torch.Tensor, eps: float) -> torch.Tensor:
    low, high = _bounds(x64, eps)
    return torch.where(w > 0, low, torch.where(w < 0, high, torch.zeros_like(w)))


def _l2_optimum(w: torch.Tensor, x64: torch.Tensor, eps: float, iterations: int = 200) -> torch.Tensor:
    low, high = _bounds(x64, None)

    def delta(lam: torch.Tensor) -> torch.Tensor:
        return torch.clamp(-lam.view(-1, 1) * w, low, high)

    # The box's own best corner (λ → ∞): the optimum where it lies within the ball.
    corner = torch.where(w > 0, low, torch.where(w < 0, high, torch.zeros_like(w)))
    inside = corner.norm(dim=1) <= eps
    # Bisection on λ: ‖δ(λ)‖ is continuous and non-decreasing, 0 at λ = 0.
    lo = torch.zeros(w.shape[0], dtype=torch.float64)
    hi = torch.ones(w.shape[0], dtype=torch.float64)
    for _ in range(200):
        short = (delta(hi).norm(dim=1) < eps) & ~inside
        if not short.any():
            break
        hi = torch.where(short, 2 * hi, hi)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        over = delta(mid).norm(dim=1) > eps
        hi, lo = torch.where(over, mid, hi), torch.where(over, lo, mid)
    return torch.where(inside.view(-1, 1), corner, delta(lo))
