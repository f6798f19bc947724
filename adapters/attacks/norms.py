"""Distances between batches of images, per sample, in the norms attacks are budgeted in.

float64 makes the difference of two float32 values exact, so a distance adds no round-off of its own:
an x_adv exactly on the eps-ball's surface measures exactly eps.
"""

from __future__ import annotations

from typing import Literal

import torch

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = ("linf", "l2")


def distance(norm: Norm, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||a - b||`` in ``norm`` (float64 ``[N]``)."""
    difference = (a.detach().double() - b.detach().double()).flatten(1)
    if norm == "linf":
        return difference.abs().amax(dim=1)
    if norm == "l2":
        return difference.norm(p=2, dim=1)
    raise ValueError(f"expected a norm in {NORMS}, got {norm!r}")
