"""PGD (Madry et al., 2018) in L∞ or L2, with the paper's step rule alpha = eps/4 and an optional random start.

    L∞:  x_0   = clip_[0,1]( x + U(-eps, eps) )         (random start; x_0 = x without)
         x_t+1 = clip_[0,1]( x + clip_[-eps,eps]( x_t + alpha · sign(∇x L(x_t, y)) - x ) )
    L2:  x_0   = clip_[0,1]( x + δ ),  δ uniform in the L2 ball of radius eps
         x_t+1 = clip_[0,1]( x + Π_eps( x_t + alpha · ∇x L / ‖∇x L‖₂ - x ) ),  Π_eps(δ) = δ · min(1, eps/‖δ‖₂)

Returns the last iterate x_T. The step's rounding (``geometry.py``) is the definition's own unless a
library's offer declares its own. A library's PGD is judged from the start *it* draws (its adapter's
offer reproduces it), so only the reference's own cells use :meth:`PGD.default_start`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import geometry, restarts, targets
from .definition import Attack, LossReduction
from .gradients import ball_start, loss_gradient, relative_magnitude
from .norms import Norm, check_norm
from .step_rule import alpha_fraction, check_alpha, check_steps


@dataclass(frozen=True)
class PGDParams:
    """``alpha=None`` means the paper's step rule ``eps / 4`` (pixel units otherwise)."""

    steps: int = 10
    alpha: float | None = None
    random_start: bool = True
    norm: Norm = "linf"
    restarts: int = 1  # random starts per sample (restarts.py)
    targeted: str | None = None  # targets.MODES; None: untargeted
    target_labels: tuple[int, ...] | None = None  # per true class, its target (targeted = "labels")

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_steps(self.steps))
        check_norm(self.norm)
        object.__setattr__(self, "alpha", check_alpha(self.alpha, self.norm))
        if not isinstance(self.random_start, bool):
            raise ValueError(f"expected random_start to be True or False, got {self.random_start!r}")
        object.__setattr__(self, "restarts", restarts.check_restarts(self.restarts, self.random_start))
        object.__setattr__(self, "targeted", targets.check_targeted(self.targeted))
        object.__setattr__(
            self, "target_labels", targets.check_target_labels(self.targeted, self.target_labels)
        )

    def step_size(self, eps: float) -> float:
        """The step actually taken: ``alpha``, or ``eps / 4`` when alpha is None."""
        return eps / 4 if self.alpha is None else self.alpha


class PGD(Attack):
    name = "pgd"
    params = PGDParams
    preset_keys = ("norm", "steps", "alpha", "random_start", "restarts", "targeted", "target_labels")

    def preset_params(self, table: Mapping[str, Any], eps: float) -> PGDParams:
        values = {**table, "alpha": eps * alpha_fraction(table.get("alpha", "eps/4"))}
        params: PGDParams = self.make_params(values)
        return params

    def label(self, params: PGDParams) -> str:
        name = f"PGD-{params.steps}" if params.norm == "linf" else f"PGD-{params.norm.upper()}-{params.steps}"
        named = restarts.label(name, params.restarts) if params.random_start else f"{name} (no random start)"
        return targets.label(named, params.targeted, params.target_labels)

    def variants(self, params: PGDParams) -> tuple[str, ...]:
        return (*(("restarts",) if params.restarts > 1 else ()), *(("targeted",) if params.targeted else ()))

    def seeded(self, params: PGDParams) -> bool:
        return params.random_start

    def columns(self, params: PGDParams, eps: float) -> dict[str, Any]:
        return {"steps": params.steps, "alpha": params.step_size(eps), "random_start": params.random_start}

    def cell_key(self, params: PGDParams) -> str:
        # L∞ keeps the key its cells have always had, so existing run directories resume.
        key = f"steps{params.steps}__rs{int(params.random_start)}{restarts.cell_key(params.restarts)}"
        key += targets.cell_key(params.targeted, params.target_labels)
        return key if params.norm == "linf" else f"{params.norm}__{key}"

    def passes(self, params: PGDParams) -> tuple[float, float]:
        k = params.restarts
        return (k * params.steps + restarts.passes(k), float(k * params.steps))

    def default_start(self, x: torch.Tensor, eps: float, params: PGDParams, seed: int) -> torch.Tensor:
        return ball_start(x, eps, params.norm, seed, params.restarts) if params.random_start else x

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: PGDParams,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps: geometry.Geometry = arithmetic or geometry.of(params.norm)
        return iterate(
            model, x, y, eps, start, params.steps, params.step_size(eps), reduction, steps, params.targeted
        )


def iterate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    start: torch.Tensor,
    steps: int,
    alpha: float,
    reduction: LossReduction,
    arithmetic: geometry.Geometry,
    targeted: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` projected gradient steps of size ``alpha`` from ``start`` (PGD's and BIM's loop),
    towards the targets ``y`` where ``targeted``: the last iterate and each pixel's gradient floor."""
    x_adv = start.detach().clone()
    floor = torch.ones_like(x)
    for _ in range(steps):
        grad = loss_gradient(model, x_adv, y, reduction, targeted is not None)
        floor = torch.minimum(floor, relative_magnitude(grad))
        # Ascent step, then back into the eps-ball around x and the image box.
        x_adv = arithmetic.step(x, x_adv, grad, alpha, eps)
    return arithmetic.output(x, x_adv, eps).detach(), floor


ATTACK = PGD()
