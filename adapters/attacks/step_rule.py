"""An iterative attack's steps: their count, their size, and how a preset writes the size as a rule
relative to eps (``"eps/4"``, ``"1.25*eps"``)."""

from __future__ import annotations

import math
import numbers
import re

_DIVIDED = re.compile(r"\s*eps\s*/\s*([0-9]*\.?[0-9]+)\s*")
_TIMES = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*\*\s*eps\s*")


def alpha_fraction(rule: object, largest: float = 1.0) -> float:
    """alpha / eps from a preset's ``"eps/K"`` or ``"K*eps"`` rule, in (0, ``largest``].

    PGD's step is no larger than eps (``largest = 1``); FGSM from a random start may step beyond it
    (Wong et al.'s 1.25·eps), up to twice eps, which reaches every corner of the ball from any start.
    """
    fraction = None
    if isinstance(rule, str):
        if (match := _DIVIDED.fullmatch(rule)) is not None and float(match[1]) > 0:
            fraction = 1.0 / float(match[1])
        elif (match := _TIMES.fullmatch(rule)) is not None:
            fraction = float(match[1])
    if fraction is None or not 0 < fraction <= largest:
        limit = "no larger than eps" if largest == 1 else f"at most {largest:g}*eps"
        raise ValueError(f'expected alpha like "eps/4" (a step {limit}), got {rule!r}')
    return fraction


def check_steps(steps: object) -> int:
    """``steps`` as an int >= 1, else ``ValueError`` saying expected vs got."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"expected steps to be an integer >= 1, got {steps!r}")
    return int(steps)


def check_alpha(alpha: object, norm: str) -> float | None:
    """A step size in pixel units as a float (None stays None: the attack's own rule), else ``ValueError``.

    An L2 step, like an L2 eps, can exceed 1 on a large image; an L∞ one cannot.
    """
    if alpha is None:
        return None
    bound = "in (0, 1]" if norm == "linf" else "> 0"
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ValueError(f"expected alpha to be None or a real number {bound}, got {alpha!r}")
    value = float(alpha)
    if not (math.isfinite(value) and value > 0 and (value <= 1 or norm == "l2")):
        raise ValueError(f"expected alpha {bound} (pixel units) or None for eps/4, got {value:g}")
    return value
