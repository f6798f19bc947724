"""The reference: every registered attack's own definition (``adapters/attacks``), run in plain PyTorch —
the arbiter every library is compared against.

L is cross-entropy **summed** over the batch. sign(∇) ignores a positive scale, so sum and mean give
the same attack in exact arithmetic. We sum because then a sample's gradient does not depend on the
batch it came in, and because the 1/N of a mean can underflow small float32 components to an exact 0
(``sign(0) = 0``: that pixel never moves). torchattacks and ART (as users set it up) take the mean,
Foolbox the sum: with N a power of two the 1/N scale is exact and all agree bit for bit; otherwise the
scale changes round-off, and a component whose gradient is within round-off of 0 can flip sign.

A random start draws from a local ``torch.Generator`` seeded with ``spec.seed``; the caller's global
RNG state is never touched.

The same code computes every library's *expected* x_adv (``adapters/expected.py``): each attack's
``reference`` takes the start point and the loss reduction as arguments, and also returns each pixel's
*gradient floor* — the smallest |gradient| it had over the attack's steps, relative to that sample's
largest — so that a pixel on which a library steps the other way can be told apart: where the floor
is within round-off of zero, the sign itself is round-off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from . import attacks
from .attacks.definition import LossReduction
from .attacks.gradients import loss_gradient, relative_magnitude, uniform_start
from .attacks.pgd import PGDParams
from .base import AttackResult, GuardedAdapter, attack_session, check_output
from .declaration import EVERY_VARIANT, Declaration, Offer
from .spec import AttackSpec, as_eps_list

__all__ = [
    "ADAPTER",
    "NAME",
    "compute",
    "fgsm",
    "fgsm_grid",
    "grid",
    "loss_gradient",
    "pgd",
    "pgd_from",
    "relative_magnitude",
    "uniform_start",
]

NAME = "reference"


def compute(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    """``spec``'s attack as its definition computes it, from the reference's own start with the summed
    loss — unguarded: :data:`ADAPTER` runs it under the guards, ``harness bench`` times it bare."""
    definition = spec.definition
    start = definition.default_start(x, spec.eps, spec.params, spec.seed)
    return definition.from_starts(model, x, y, spec.eps, spec.params, start, "sum")[0]


def _call(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    return compute(model, x, y, spec)


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    return spec.definition.default_start(x, spec.eps, spec.params, spec.seed)


class _EveryAttack(Mapping[str, Offer]):
    """The reference's offers: every registered attack, read from the registry whenever asked, so an
    attack registered after import (a plug-in, a test's throw-away attack) is offered too."""

    _offer = Offer(
        call=_call, loss_reduction="sum", norms=attacks.NORMS, variants=EVERY_VARIANT, start=_start
    )

    def __getitem__(self, attack: str) -> Offer:
        if attack not in attacks.names():
            raise KeyError(attack)
        return self._offer

    def __iter__(self) -> Iterator[str]:
        return iter(attacks.names())

    def __len__(self) -> int:
        return len(attacks.names())


ADAPTER = GuardedAdapter(name=NAME, attack_fn=None, declaration=Declaration(offers=_EveryAttack()))


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM (``attacks/fgsm.py``) with the reference's summed loss, unguarded (:func:`compute`)."""
    return compute(model, x, y, AttackSpec("fgsm", eps))


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool,
    seed: int,
) -> torch.Tensor:
    """PGD (``attacks/pgd.py``) with the reference's summed loss and own start, unguarded (:func:`compute`)."""
    spec = AttackSpec("pgd", eps, seed=seed, steps=steps, alpha=alpha, random_start=random_start)
    return compute(model, x, y, spec)


def pgd_from(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    reduction: LossReduction = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD (``attacks/pgd.py``) from ``start`` with the loss reduced by ``reduction``, unguarded: x_adv and
    each pixel's gradient floor. ``steps=0`` gives the start itself (the iterate x_0)."""
    if steps == 0:
        return start.detach().clone(), torch.ones_like(x)
    params = PGDParams(steps=steps, alpha=alpha, random_start=start is not x)
    return attacks.get("pgd").reference(model, x, y, eps, params, start, reduction)


def grid(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, eps_list: Sequence[float]
) -> list[AttackResult]:
    """``spec``'s attack at every eps of the grid, under the same guards as :data:`ADAPTER`, from ONE
    gradient where the attack shares it across eps (FGSM).

    Element i equals ``ADAPTER.generate(model, x, y, replace(spec, eps=eps_list[i]))`` bit for bit.
    All results share one :class:`AttackStats`: the whole grid's cost.
    """
    eps_grid = as_eps_list(eps_list, spec.norm)
    definition = spec.definition
    with attack_session(model, x, y, NAME) as session:
        start = time.perf_counter()
        computed = definition.reference_grid(session.counter, x, y, eps_grid, spec.params, "sum")
        outputs = [computed[eps][0].detach() for eps in eps_grid]
        seconds = time.perf_counter() - start
    for eps, x_adv in zip(eps_grid, outputs, strict=True):
        check_output(NAME, x, x_adv, AttackSpec(spec.attack, eps, spec.seed, spec.params))
    stats = session.counter.stats(NAME, seconds, session.state_changes)
    return [AttackResult(x_adv, stats) for x_adv in outputs]


def fgsm_grid(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float]
) -> list[AttackResult]:
    """FGSM at every eps of the grid from one gradient (:func:`grid`)."""
    return grid(model, x, y, AttackSpec("fgsm", as_eps_list(eps_list)[0]), eps_list)
