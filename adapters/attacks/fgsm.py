"""FGSM (Goodfellow et al., 2015), its L2 form FGM, and FGSM from a random start (Wong et al., 2020).

    L∞:            x_adv = clip_[0,1]( x + eps · sign(∇x L(x, y)) )
    L2:            x_adv = clip_[0,1]( x + eps · ∇x L / ‖∇x L‖₂ )
    random start:  x_0 = clip_[0,1]( x + δ ), δ uniform in the eps-ball (as PGD's start);
                   x_adv = clip_[0,1]( x + Π_eps( x_0 + alpha · step(∇x L(x_0, y)) - x ) )

that is, from a random start FGSM is one PGD step of size ``alpha`` (eps unless given). Without a
random start the seed does not change it and one gradient serves every eps of a grid, so the reference
computes a whole grid at the cost of one forward and one backward pass. The step's rounding
(``geometry.py``) is the definition's own unless a library's offer declares its own.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import geometry, restarts, targets
from .definition import Attack, LossReduction
from .gradients import ball_start, loss_gradient, relative_magnitude
from .norms import Norm, check_norm
from .step_rule import alpha_fraction

# From a random start a step beyond eps still lands in the ball after the projection; Wong et al.
# take 1.25·eps. Twice eps reaches every corner from any start, so nothing larger adds anything.
_LARGEST_ALPHA = 2.0


@dataclass(frozen=True)
class FGSMParams:
    """``alpha``: the step from a random start, in pixel units (None: eps); only with ``random_start``.
    ``restarts``: random starts per sample (``restarts.py``); more than one only with ``random_start``."""

    norm: Norm = "linf"
    random_start: bool = False
    alpha: float | None = None
    restarts: int = 1
    targeted: str | None = None  # targets.MODES; None: untargeted
    target_labels: tuple[int, ...] | None = None  # per true class, its target (targeted = "labels")

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if not isinstance(self.random_start, bool):
            raise ValueError(f"expected random_start to be True or False, got {self.random_start!r}")
        if self.alpha is not None:
            if not self.random_start:
                raise ValueError("expected alpha only with random_start = true (FGSM's one step is eps)")
            if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real):
                raise ValueError(f"expected alpha to be None or a real number > 0, got {self.alpha!r}")
            if not (math.isfinite(float(self.alpha)) and float(self.alpha) > 0):
                raise ValueError(f"expected alpha > 0 (pixel units) or None for eps, got {self.alpha!r}")
            object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "restarts", restarts.check_restarts(self.restarts, self.random_start))
        object.__setattr__(self, "targeted", targets.check_targeted(self.targeted))
        object.__setattr__(
            self, "target_labels", targets.check_target_labels(self.targeted, self.target_labels)
        )

    def step_size(self, eps: float) -> float:
        """The step actually taken: ``alpha``, or eps when alpha is None."""
        return eps if self.alpha is None else self.alpha


class FGSM(Attack):
    name = "fgsm"
    params = FGSMParams
    preset_keys = ("norm", "random_start", "alpha", "restarts", "targeted", "target_labels")

    def preset_params(self, table: Mapping[str, Any], eps: float) -> FGSMParams:
        values = dict(table)
        if "alpha" in values:
            values["alpha"] = eps * alpha_fraction(values["alpha"], largest=_LARGEST_ALPHA)
        params: FGSMParams = self.make_params(values)
        return params

    def variants(self, params: FGSMParams) -> tuple[str, ...]:
        chosen = ("random_start",) if params.random_start else ()
        chosen = (*chosen, "restarts") if params.restarts > 1 else chosen
        return (*chosen, "targeted") if params.targeted else chosen

    def shares_gradient_across_eps(self, params: FGSMParams) -> bool:
        # Every eps of a grid shares the one gradient at x (not at a start that depends on eps).
        return not params.random_start

    def label(self, params: FGSMParams) -> str:
        name = "FGSM" if params.norm == "linf" else "FGM-L2"
        named = restarts.label(f"{name}-RS" if params.random_start else name, params.restarts)
        return targets.label(named, params.targeted, params.target_labels)

    def seeded(self, params: FGSMParams) -> bool:
        return params.random_start

    def columns(self, params: FGSMParams, eps: float) -> dict[str, Any]:
        return {"steps": 1, "alpha": params.step_size(eps), "random_start": params.random_start}

    def params_from_columns(self, columns: Mapping[str, Any]) -> FGSMParams:
        # Without a random start the ``alpha`` column is eps, the one step, not a parameter.
        values = dict(columns)
        if not values.get("random_start", False):
            values.pop("alpha", None)
        params: FGSMParams = super().params_from_columns(values)
        return params

    def cell_key(self, params: FGSMParams) -> str:
        # The key L∞ FGSM cells have always had, so existing run directories resume.
        key = f"steps1__rs{int(params.random_start)}"
        if params.alpha is not None:
            key += f"__alpha{params.alpha:.9g}"
        key += restarts.cell_key(params.restarts) + targets.cell_key(params.targeted, params.target_labels)
        return key if params.norm == "linf" else f"{params.norm}__{key}"

    def default_start(self, x: torch.Tensor, eps: float, params: FGSMParams, seed: int) -> torch.Tensor:
        return ball_start(x, eps, params.norm, seed, params.restarts) if params.random_start else x

    def passes(self, params: FGSMParams) -> tuple[float, float]:
        k = params.restarts
        return (k + restarts.passes(k), float(k))

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: FGSMParams,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not params.random_start:
            return self.reference_grid(model, x, y, [eps], params, reduction, arithmetic)[eps]
        steps: geometry.Geometry = arithmetic or geometry.of(params.norm)
        grad = loss_gradient(model, start, y, reduction, params.targeted is not None)
        x_adv = steps.step(x, start.detach(), grad, params.step_size(eps), eps)
        return steps.output(x, x_adv, eps).detach(), relative_magnitude(grad)

    def reference_grid(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: Sequence[float],
        params: FGSMParams,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
        """FGSM at every eps; without a random start from one gradient, element eps equal to
        :meth:`reference` at eps bit for bit."""
        if params.random_start:
            return super().reference_grid(model, x, y, eps_list, params, reduction, arithmetic)
        steps: geometry.Geometry = arithmetic or geometry.of(params.norm)
        grad = loss_gradient(model, x, y, reduction, params.targeted is not None)
        floor = relative_magnitude(grad)
        return {eps: (steps.one_step(x, grad, eps).detach(), floor) for eps in eps_list}


ATTACK = FGSM()
