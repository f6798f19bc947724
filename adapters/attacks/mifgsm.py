"""MI-FGSM (Dong et al., 2018): iterative FGSM in L∞ whose step follows an accumulated, L1-normalised
gradient ("momentum") instead of the gradient itself; no random start.

    g_0   = 0
    g_t+1 = decay · g_t + ∇x L(x_t, y) / ‖∇x L(x_t, y)‖₁        (a zero gradient adds nothing)
    x_t+1 = clip_[0,1]( x + clip_[-eps,eps]( x_t + alpha · sign(g_t+1) - x ) )

Returns the last iterate x_T. The paper's step is eps / T; this project's default rule is eps / 4
like PGD's, and every preset states its own. ``decay = 0`` is BIM.

Libraries normalise the gradient differently — by its L1 norm (the paper, ART, with a reciprocal
multiply), by its mean |g| (torchattacks: the same direction, d times larger, so the same signs up to
round-off) — which an offer declares as :class:`Momentum` arithmetic. Accumulating something else
(the gradient's sign, Foolbox) is another algorithm: a departure, not arithmetic.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import geometry, targets
from .definition import Attack, LossReduction
from .gradients import loss_gradient, relative_magnitude
from .step_rule import alpha_fraction, check_alpha, check_steps


@dataclass(frozen=True)
class MIFGSMParams:
    """``alpha=None`` means the rule ``eps / 4`` (pixel units otherwise); ``decay`` is the paper's μ."""

    steps: int = 10
    alpha: float | None = None
    decay: float = 1.0
    targeted: str | None = None  # targets.MODES; None: untargeted
    target_labels: tuple[int, ...] | None = None  # per true class, its target (targeted = "labels")

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_steps(self.steps))
        object.__setattr__(self, "alpha", check_alpha(self.alpha, "linf"))
        if isinstance(self.decay, bool) or not isinstance(self.decay, numbers.Real):
            raise ValueError(f"expected decay to be a real number >= 0, got {self.decay!r}")
        if not (math.isfinite(float(self.decay)) and float(self.decay) >= 0):
            raise ValueError(f"expected decay >= 0, got {self.decay!r}")
        object.__setattr__(self, "decay", float(self.decay))
        object.__setattr__(self, "targeted", targets.check_targeted(self.targeted))
        object.__setattr__(
            self, "target_labels", targets.check_target_labels(self.targeted, self.target_labels)
        )

    def step_size(self, eps: float) -> float:
        """The step actually taken: ``alpha``, or ``eps / 4`` when alpha is None."""
        return eps / 4 if self.alpha is None else self.alpha


def l1_normalised(grad: torch.Tensor) -> torch.Tensor:
    """``g / ‖g‖₁`` per sample; an all-zero gradient stays zero."""
    norms = grad.abs().flatten(1).sum(dim=1)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    return grad / geometry.per_sample(safe, grad)


def accumulate(momentum: torch.Tensor, normalised: torch.Tensor, decay: float) -> torch.Tensor:
    """``decay · g_t + normalised``: the paper's update."""
    return decay * momentum + normalised


@dataclass(frozen=True)
class Momentum:
    """How one implementation rounds MI-FGSM: its gradient normalisation and its accumulation."""

    normalise: Callable[[torch.Tensor], torch.Tensor] = l1_normalised
    accumulate: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] = accumulate
    note: str = ""


_DEFINITION = Momentum()


class MIFGSM(Attack):
    name = "mifgsm"
    params = MIFGSMParams
    preset_keys = ("steps", "alpha", "decay", "targeted", "target_labels")

    def preset_params(self, table: Mapping[str, Any], eps: float) -> MIFGSMParams:
        values = {**table, "alpha": eps * alpha_fraction(table.get("alpha", "eps/4"))}
        params: MIFGSMParams = self.make_params(values)
        return params

    def label(self, params: MIFGSMParams) -> str:
        name = f"MI-FGSM-{params.steps}"
        named = name if params.decay == 1.0 else f"{name} (decay {params.decay:g})"
        return targets.label(named, params.targeted, params.target_labels)

    def variants(self, params: MIFGSMParams) -> tuple[str, ...]:
        return ("targeted",) if params.targeted else ()

    def columns(self, params: MIFGSMParams, eps: float) -> dict[str, Any]:
        return {"steps": params.steps, "alpha": params.step_size(eps), "random_start": False}

    def passes(self, params: MIFGSMParams) -> tuple[float, float]:
        return (float(params.steps), float(params.steps))

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: MIFGSMParams,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rounding: Momentum = arithmetic or _DEFINITION
        alpha = params.step_size(eps)
        x_adv = start.detach().clone()
        momentum = torch.zeros_like(x)
        floor = torch.ones_like(x)
        for _ in range(params.steps):
            grad = loss_gradient(model, x_adv, y, reduction, params.targeted is not None)
            # The step's sign is the momentum's, not the gradient's: its floor is what round-off can flip.
            momentum = rounding.accumulate(momentum, rounding.normalise(grad), params.decay)
            floor = torch.minimum(floor, relative_magnitude(momentum))
            x_adv = geometry.LINF.step(x, x_adv, momentum, alpha, eps)
        return x_adv.detach(), floor


ATTACK = MIFGSM()
