"""PGD (Madry et al., 2018), L∞, with the paper's step rule alpha = eps/4 and an optional random start.

    x_0   = clip_[0,1]( x + U(-eps, eps) )            (random start; x_0 = x without)
    x_t+1 = clip_[0,1]( x + clip_[-eps,eps]( x_t + alpha · sign(∇x L(x_t, y)) - x ) )

Returns the last iterate x_T. A library's PGD is judged from the start *it* draws (its adapter's
offer reproduces it), so only the reference's own cells use :meth:`PGD.default_start`.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .definition import Attack, LossReduction
from .gradients import loss_gradient, relative_magnitude, uniform_start

_ALPHA_RULE = re.compile(r"\s*eps\s*/\s*([0-9]*\.?[0-9]+)\s*")


@dataclass(frozen=True)
class PGDParams:
    """``alpha=None`` means the paper's step rule ``eps / 4`` (pixel units otherwise)."""

    steps: int = 10
    alpha: float | None = None
    random_start: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise ValueError(f"expected steps to be an integer >= 1, got {self.steps!r}")
        object.__setattr__(self, "steps", int(self.steps))
        if self.alpha is not None:
            if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real):
                raise ValueError(f"expected alpha to be None or a real number in (0, 1], got {self.alpha!r}")
            alpha = float(self.alpha)
            if not (math.isfinite(alpha) and 0 < alpha <= 1):
                raise ValueError(f"expected alpha in (0, 1] (pixel units) or None for eps/4, got {alpha:g}")
            object.__setattr__(self, "alpha", alpha)
        if not isinstance(self.random_start, bool):
            raise ValueError(f"expected random_start to be True or False, got {self.random_start!r}")

    def step_size(self, eps: float) -> float:
        """The step actually taken: ``alpha``, or ``eps / 4`` when alpha is None."""
        return eps / 4 if self.alpha is None else self.alpha


def alpha_fraction(rule: object) -> float:
    """alpha / eps from a preset's ``"eps/K"`` rule (K >= 1: a step no larger than eps)."""
    match = _ALPHA_RULE.fullmatch(rule) if isinstance(rule, str) else None
    if match is None or float(match[1]) < 1:
        raise ValueError(f'expected alpha like "eps/4" (a step no larger than eps), got {rule!r}')
    return 1.0 / float(match[1])


class PGD(Attack):
    name = "pgd"
    norm = "linf"
    params = PGDParams
    preset_keys = ("steps", "alpha", "random_start")

    def preset_params(self, table: Mapping[str, Any], eps: float) -> PGDParams:
        values = {**table, "alpha": eps * alpha_fraction(table.get("alpha", "eps/4"))}
        params: PGDParams = self.make_params(values)
        return params

    def label(self, params: PGDParams) -> str:
        name = f"PGD-{params.steps}"
        return name if params.random_start else f"{name} (no random start)"

    def seeded(self, params: PGDParams) -> bool:
        return params.random_start

    def columns(self, params: PGDParams, eps: float) -> dict[str, Any]:
        return {"steps": params.steps, "alpha": params.step_size(eps), "random_start": params.random_start}

    def cell_key(self, params: PGDParams) -> str:
        return f"steps{params.steps}__rs{int(params.random_start)}"

    def passes(self, params: PGDParams) -> tuple[float, float]:
        return (float(params.steps), float(params.steps))

    def default_start(self, x: torch.Tensor, eps: float, params: PGDParams, seed: int) -> torch.Tensor:
        return uniform_start(x, eps, seed) if params.random_start else x

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: PGDParams,
        start: torch.Tensor,
        reduction: LossReduction,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = params.step_size(eps)
        x_adv = start.detach().clone()
        floor = torch.ones_like(x)
        for _ in range(params.steps):
            grad = loss_gradient(model, x_adv, y, reduction)
            floor = torch.minimum(floor, relative_magnitude(grad))
            x_adv = x_adv + alpha * grad.sign()  # ascent step
            x_adv = x + (x_adv - x).clamp(-eps, eps)  # projection onto the eps-ball around x
            x_adv = x_adv.clamp(0.0, 1.0)  # and onto the image box
        return x_adv.detach(), floor


ATTACK = PGD()
