"""FGSM (Goodfellow et al., 2015), L∞: one full step of size eps from the clean image.

    x_adv = clip_[0,1]( x + eps · sign(∇x L(x, y)) )

It takes no parameters besides eps; the seed does not change it. One gradient serves every eps of a
grid, so the reference computes a whole grid at the cost of one forward and one backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .definition import Attack, LossReduction
from .gradients import loss_gradient, relative_magnitude


class FGSM(Attack):
    name = "fgsm"
    norm = "linf"
    # Every eps of a grid shares the one gradient at x: the runner judges them together.
    shares_gradient_across_eps = True

    def label(self, params: Any) -> str:
        return "FGSM"

    def cell_key(self, params: Any) -> str:
        return "steps1__rs0"  # the key FGSM cells have always had: existing run directories resume

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: Any,
        start: torch.Tensor,
        reduction: LossReduction,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.reference_grid(model, x, y, [eps], params, reduction)[eps]

    def reference_grid(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: Sequence[float],
        params: Any,
        reduction: LossReduction,
    ) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
        """FGSM at every eps from one gradient; element eps equals :meth:`reference` at eps bit for bit."""
        grad = loss_gradient(model, x, y, reduction)
        floor = relative_magnitude(grad)
        sign = grad.sign()
        return {eps: ((x + eps * sign).clamp(0.0, 1.0).detach(), floor) for eps in eps_list}


ATTACK = FGSM()
