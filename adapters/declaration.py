"""What an adapter declares about its library: the attacks it offers, its loss reduction, its passes and its
random start — facts read from the library's source, which the harness checks rather than trusts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn

from .spec import AttackSpec


@runtime_checkable
class Adapter(Protocol):
    """One attack library behind the project's single signature."""

    name: str

    def generate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
        """Adversarial examples for ``x`` (float32 ``[N, C, H, W]`` in [0, 1]) and true labels ``y``."""
        ...


LossReduction = Literal["sum", "mean"]
LOSS_REDUCTIONS: tuple[str, ...] = ("sum", "mean")
# (x, spec) -> the point the library's PGD starts from, for this batch and seed.
StartFn = Callable[[torch.Tensor, AttackSpec], torch.Tensor]


@dataclass(frozen=True)
class Declaration:
    """What an adapter documents about how its library computes the attack — checked, not trusted.

    The harness turns these into the *exact* x_adv the library must return (the reference's FGSM/PGD
    code run with this loss reduction from this start) and the pass counts it must spend; a library
    that differs from either is judged to disagree.

    ``loss_reduction``: how the library reduces cross-entropy over a batch. ``sum`` and ``mean`` are
    the same attack in exact arithmetic, but the 1/N of a mean changes float32 round-off when N is not
    a power of two; the expected x_adv is computed with the library's own reduction so that it can be
    compared bit for bit.
    ``passes``: (forward, backward) passes per sample for a spec, as read from the library's source
    and measured by the guard's hooks.
    ``start``: the library's PGD random-start point for a batch, reproduced outside the library from
    the same random draws (read from its source); None where it cannot be reproduced, and then its
    random-start PGD can only be judged statistically.
    """

    loss_reduction: LossReduction
    passes: Callable[[AttackSpec], tuple[float, float]]
    start: StartFn | None
    # The attacks the library offers (adv-lib has no FGSM); a run plans no cells for the others.
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    # False where the library's PGD always draws a random start (DeepRobust): no-start PGD is not offered.
    pgd_without_random_start: bool = True
    # attack -> how the library's version departs from the reference's attack, read from its source and
    # measured. Not an excuse: such cells still disagree; the report quotes this as the explanation, and
    # the adapter tests fail if a release stops departing (then the entry goes).
    departures: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"expected loss_reduction in {LOSS_REDUCTIONS}, got {self.loss_reduction!r}")
        unknown = [a for a in self.attacks if a not in ("fgsm", "pgd")]
        if unknown or not self.attacks:
            raise ValueError(f"expected attacks among ('fgsm', 'pgd'), got {self.attacks!r}")

    def offers(self, spec: AttackSpec) -> bool:
        """Whether the library computes ``spec`` at all (it may still compute it wrongly)."""
        if spec.attack not in self.attacks:
            return False
        return spec.attack != "pgd" or spec.random_start or self.pgd_without_random_start


def pass_counts(
    fgsm: tuple[float, float] = (1.0, 1.0), pgd_extra_forwards: int = 0
) -> Callable[[AttackSpec], tuple[float, float]]:
    """A :attr:`Declaration.passes`: (forward, backward) per sample — ``fgsm`` for FGSM; for PGD one of
    each per step plus ``pgd_extra_forwards`` forwards (a library that predicts to log or report)."""

    per_attack: dict[str, Callable[[AttackSpec], tuple[float, float]]] = {
        "fgsm": lambda spec: fgsm,
        "pgd": lambda spec: (float(spec.steps + pgd_extra_forwards), float(spec.steps)),
    }

    def count(spec: AttackSpec) -> tuple[float, float]:
        return offered(per_attack, spec, "pass_counts")(spec)  # type: ignore[no-any-return]

    return count


# (model, x, y, spec, num_classes) -> x_adv. Receives a validated batch (fresh copies), a model
# already in eval mode with gradients enabled, and the class count read from the model's output.
AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, AttackSpec, int], torch.Tensor]


def offered(
    calls: Mapping[str, Callable[..., object]], spec: AttackSpec, library: str
) -> Callable[..., object]:
    """The adapter's call for ``spec.attack``, looked up by name — never a default.

    Each adapter keeps one call per attack it offers in a table (its :class:`Declaration`'s
    ``attacks`` are that table's keys); an attack without one is refused here by name, so an attack
    wired half-way cannot fall through to another (an L∞ PGD would pass the L∞ guard and be blamed on
    the library as a disagreement).
    """
    call = calls.get(spec.attack)
    if call is None:
        raise ValueError(f"{library} has no call for attack {spec.attack!r}; it offers {sorted(calls)}")
    return call
