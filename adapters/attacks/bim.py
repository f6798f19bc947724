"""BIM / I-FGSM (Kurakin et al., 2017): PGD in L∞ from x itself, with no random start.

    x_0   = x
    x_t+1 = clip_[0,1]( x + clip_[-eps,eps]( x_t + alpha · sign(∇x L(x_t, y)) - x ) )

Returns the last iterate x_T. The same loop as PGD's (``pgd.iterate``) under its own name, because
libraries ship it as its own attack (ART ``BasicIterativeMethod``, torchattacks ``BIM``, Foolbox
``LinfBasicIterativeAttack``) with their own arithmetic, which their offers declare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import geometry, targets
from .definition import Attack, LossReduction
from .pgd import iterate
from .step_rule import alpha_fraction, check_alpha, check_steps


@dataclass(frozen=True)
class BIMParams:
    """``alpha=None`` means the paper's step rule ``eps / 4`` (pixel units otherwise)."""

    steps: int = 10
    alpha: float | None = None
    targeted: str | None = None  # targets.MODES; None: untargeted
    target_labels: tuple[int, ...] | None = None  # per true class, its target (targeted = "labels")

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_steps(self.steps))
        object.__setattr__(self, "alpha", check_alpha(self.alpha, "linf"))
        object.__setattr__(self, "targeted", targets.check_targeted(self.targeted))
        object.__setattr__(
            self, "target_labels", targets.check_target_labels(self.targeted, self.target_labels)
        )

    def step_size(self, eps: float) -> float:
        """The step actually taken: ``alpha``, or ``eps / 4`` when alpha is None."""
        return eps / 4 if self.alpha is None else self.alpha


class BIM(Attack):
    name = "bim"
    params = BIMParams
    preset_keys = ("steps", "alpha", "targeted", "target_labels")

    def preset_params(self, table: Mapping[str, Any], eps: float) -> BIMParams:
        params: BIMParams = self.make_params(
            {**table, "alpha": eps * alpha_fraction(table.get("alpha", "eps/4"))}
        )
        return params

    def label(self, params: BIMParams) -> str:
        return targets.label(f"BIM-{params.steps}", params.targeted, params.target_labels)

    def variants(self, params: BIMParams) -> tuple[str, ...]:
        return ("targeted",) if params.targeted else ()

    def columns(self, params: BIMParams, eps: float) -> dict[str, Any]:
        return {"steps": params.steps, "alpha": params.step_size(eps), "random_start": False}

    def passes(self, params: BIMParams) -> tuple[float, float]:
        return (float(params.steps), float(params.steps))

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: BIMParams,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps: geometry.Geometry = arithmetic or geometry.LINF
        return iterate(
            model, x, y, eps, start, params.steps, params.step_size(eps), reduction, steps, params.targeted
        )


ATTACK = BIM()
