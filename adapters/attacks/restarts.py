"""Random restarts: an attack run from k random starts, and the rule that keeps one x_adv per sample.

    x_adv^(r) = A(x, x_0^(r)),  r = 1..k,  the starts drawn in turn from one seeded generator
    x_adv     = per sample, x_adv^(r) of the last restart r that succeeds (pred(x_adv^(r)) != y,
                or = t, the target, where the attack is targeted); x_adv^(1) where none does

Any per-sample rule that keeps a successful restart gives the same robust accuracy; which successful
restart is kept decides the pixels, so a library's offer declares its own rule (:class:`Selection`)
where it keeps another, and the expected x_adv follows it. A rule that is not per sample (one restart
for the whole batch) is not a rule of this attack: such an offer is a departure.

A spec with ``restarts = k > 1`` carries its k starts stacked on a leading dimension ``[k, N, ...]``
(:func:`count`, :func:`starts`); with one restart the start is ``[N, ...]`` as for any attack.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import targets

# (the model's predictions at one restart's x_adv, the labels the attack got, its predictions at x)
# -> per sample, whether that restart succeeded.
Succeeded = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def check_restarts(restarts: object, random_start: bool) -> int:
    """``restarts`` as an int >= 1 (more than one only from a random start), else ``ValueError``."""
    if isinstance(restarts, bool) or not isinstance(restarts, numbers.Integral) or restarts < 1:
        raise ValueError(f"expected restarts to be an integer >= 1, got {restarts!r}")
    if restarts > 1 and not random_start:
        raise ValueError(
            f"expected restarts = 1 without a random start (got {restarts}): from x every restart is "
            "the same attack; set random_start = true"
        )
    return int(restarts)


def count(params: Any) -> int:
    """How many restarts ``params`` ask for (1 for an attack without the parameter)."""
    return int(getattr(params, "restarts", 1))


def label(name: str, restarts: int) -> str:
    """How a report names an attack run with ``restarts`` starts: ``PGD-10, 5 restarts``."""
    return name if restarts == 1 else f"{name}, {restarts} restarts"


def cell_key(restarts: int) -> str:
    """The part of a cell's file name for ``restarts`` ('' for one, so existing run directories resume)."""
    return "" if restarts == 1 else f"__restarts{restarts}"


@dataclass(frozen=True)
class Selection:
    """Which restart's x_adv a sample keeps: the last one that ``succeeded``, else the first.

    ``succeeded``: None for the definition's success (a wrong prediction; the target's, where the
    attack is targeted: ``targets.succeeded``). ``needs_clean``: it reads the predictions at x (one
    more forward pass). ``note``: how it differs from the definition's rule, as a report quotes it.
    """

    succeeded: Succeeded | None = None
    needs_clean: bool = False
    note: str = ""


LAST_SUCCESS = Selection()


def starts(draw: Callable[[int], torch.Tensor], restarts: int) -> torch.Tensor:
    """``restarts`` starts from ``draw(r)`` for r = 0..k-1: the start itself for one restart, else
    stacked ``[k, N, ...]``."""
    if restarts == 1:
        return draw(0)
    return torch.stack([draw(r) for r in range(restarts)])


def select(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    candidates: list[tuple[torch.Tensor, torch.Tensor]],
    selection: Selection,
    targeted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the (x_adv, gradient floor) of the restart ``selection`` keeps among ``candidates``
    (in restart order). One forward per restart after the first — the first is kept unless a later
    one succeeds — and one at x where the rule reads the clean predictions."""
    x_adv, floor = (t.clone() for t in candidates[0])
    if len(candidates) == 1:
        return x_adv, floor
    with torch.no_grad():
        clean_pred = model(x).argmax(dim=1) if selection.needs_clean else y
        for candidate, candidate_floor in candidates[1:]:
            pred = model(candidate).argmax(dim=1)
            won = (
                selection.succeeded(pred, y, clean_pred)
                if selection.succeeded
                else targets.succeeded(pred, y, targeted)
            )
            mask = won.view(-1, *([1] * (x.ndim - 1)))
            x_adv = torch.where(mask, candidate, x_adv)
            floor = torch.where(mask, candidate_floor, floor)
    return x_adv, floor


def passes(restarts: int, selection: Selection = LAST_SUCCESS) -> float:
    """The forwards per sample :func:`select` spends over ``restarts`` restarts."""
    if restarts == 1:
        return 0.0
    return float(restarts - 1) + (1.0 if selection.needs_clean else 0.0)
