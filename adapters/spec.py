"""The attack specification every adapter takes: which attack, eps, steps, step size, start and seed.

Values are checked here, once, so that no library sees an eps outside (0, 1] or a float step count.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ATTACKS: tuple[str, ...] = ("fgsm", "pgd")


@dataclass(frozen=True)
class AttackSpec:
    """One attack configuration, in pixel units (pixels live in [0, 1]).

    ``alpha=None`` means the paper's step rule ``eps / 4``. FGSM is a single full step of size eps
    from the clean image: it ignores ``steps``, ``alpha``, ``random_start`` and ``seed``.
    """

    attack: Literal["fgsm", "pgd"]
    eps: float
    steps: int = 10
    alpha: float | None = None
    random_start: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"expected attack to be one of {list(ATTACKS)}, got {self.attack!r}")
        # ART refuses numpy/torch scalars for eps, so the spec always holds Python floats.
        object.__setattr__(self, "eps", _check_eps(self.eps))
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise ValueError(f"expected steps to be an integer >= 1, got {self.steps!r}")
        object.__setattr__(self, "steps", int(self.steps))
        if self.alpha is not None:
            object.__setattr__(self, "alpha", _check_alpha(self.alpha))
        if not isinstance(self.random_start, bool):
            raise ValueError(f"expected random_start to be True or False, got {self.random_start!r}")
        # NumPy's global seed (what ART's random start draws from) must lie in [0, 2**32).
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"expected seed to be an integer, got {self.seed!r}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"expected seed in [0, 2**32), got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def step_size(self) -> float:
        """The PGD step actually used: ``alpha``, or ``eps / 4`` when alpha is None."""
        return self.eps / 4 if self.alpha is None else self.alpha


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"expected eps to be a real number in (0, 1], got {eps!r}")
    value = float(eps)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite eps in (0, 1], got {value}")
    if value > 1:
        raise ValueError(f"eps={value:g} is outside (0, 1]; pixel units — did you mean {value:g}/255?")
    if value <= 0:
        raise ValueError(f"eps={value:g} is outside (0, 1]; expected a perturbation size > 0, e.g. 8/255")
    return value


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ValueError(f"expected alpha to be None or a real number in (0, 1], got {alpha!r}")
    value = float(alpha)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"expected alpha in (0, 1] (pixel units) or None for eps/4, got {value:g}")
    return value


def as_eps_list(eps_list: Sequence[float]) -> list[float]:
    """Validate a grid of eps values (each in (0, 1]) and return them as Python floats."""
    if len(eps_list) == 0:
        raise ValueError("expected at least one eps, got an empty list")
    return [_check_eps(eps) for eps in eps_list]
