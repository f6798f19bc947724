"""Distances between batches of images, per sample, in the norms attacks are budgeted in.

float64 makes the difference of two float32 values exact, so a distance adds no round-off of its own:
an x_adv exactly on the eps-ball's surface measures exactly eps.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = ("linf", "l2")


# One float32 ulp at 1.0 is 2**-23 ≈ 1.19e-7: the largest rounding error a single float32 add or
# subtract of pixel values in [0, 1] can make. Libraries project in different orders (step → clip →
# project vs step → project → clip) and some in float64, so |x_adv - x| may exceed eps by that much.
EPS_TOLERANCE = 1.2e-7
# An L2 distance is a sum over every pixel and its projection a float32 rescaling by eps/‖δ‖: each
# rounds relative to eps, by a few ulps (2**-23 each). Eight of them, on top of the L∞ allowance.
L2_RELATIVE_TOLERANCE = 8 * 2.0**-23


def eps_tolerance(norm: Norm, eps: float) -> float:
    """How far beyond eps an x_adv may measure in ``norm`` from float32 round-off alone."""
    return EPS_TOLERANCE if norm == "linf" else EPS_TOLERANCE + L2_RELATIVE_TOLERANCE * eps


def check_norm(norm: object) -> Norm:
    """``norm`` if it is one of :data:`NORMS`, else ``ValueError`` naming them."""
    if norm not in NORMS:
        raise ValueError(f"expected norm to be one of {list(NORMS)}, got {norm!r}")
    checked: Norm = norm  # type: ignore[assignment]
    return checked


def distance(norm: Norm, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||a - b||`` in ``norm`` (float64 ``[N]``)."""
    difference = (a.detach().double() - b.detach().double()).flatten(1)
    if norm == "linf":
        return difference.abs().amax(dim=1)
    if norm == "l2":
        return difference.norm(p=2, dim=1)
    raise ValueError(f"expected a norm in {NORMS}, got {norm!r}")


def check_eps(eps: object, norm: Norm) -> float:
    """eps as a Python float (ART refuses NumPy and torch scalars), checked for ``norm``: in (0, 1] for
    L∞, where pixels live in [0, 1]; any positive number for L2, whose budget grows with the image."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        bound = "(0, 1]" if norm == "linf" else "> 0"
        raise ValueError(f"expected eps to be a real number {bound}, got {eps!r}")
    value = float(eps)
    if norm == "l2":
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"expected an L2 eps > 0 (pixel units, e.g. 0.5), got {value:g}")
        return value
    if not math.isfinite(value):
        raise ValueError(f"expected a finite eps in (0, 1], got {value}")
    if value > 1:
        raise ValueError(f"eps={value:g} is outside (0, 1]; pixel units — did you mean {value:g}/255?")
    if value <= 0:
        raise ValueError(f"eps={value:g} is outside (0, 1]; expected a perturbation size > 0, e.g. 8/255")
    return value
