"""What an adapter declares about its library: per attack it offers, the call, the loss reduction, the
passes, the random start and any documented departure — facts read from the library's source, which
the harness checks rather than trusts.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from . import attacks
from .attacks.definition import LOSS_REDUCTIONS, LossReduction, arithmetic_note
from .attacks.norms import NORMS, Norm
from .attacks.restarts import Selection
from .spec import AttackSpec

__all__ = [
    "EVERY_VARIANT",
    "LOSS_REDUCTIONS",
    "Adapter",
    "AttackFn",
    "Declaration",
    "LossReduction",
    "Offer",
    "StartFn",
]


class _EveryVariant:
    """The :attr:`Offer.variants` of an implementation that computes every variant (the reference)."""

    def __contains__(self, variant: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "EVERY_VARIANT"


EVERY_VARIANT = _EveryVariant()


@runtime_checkable
class Adapter(Protocol):
    """One attack library behind the project's single signature."""

    name: str

    def generate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
        """Adversarial examples for ``x`` (float32 ``[N, C, H, W]`` in [0, 1]) and true labels ``y``."""
        ...


# (model, x, y, spec, num_classes) -> x_adv. Receives a validated batch (fresh copies), a model
# already in eval mode with gradients enabled, and the class count read from the model's output.
AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, AttackSpec, int], torch.Tensor]
# (x, spec) -> the point the library's attack starts from, for this batch and seed: a tensor, or what
# the attack's definition draws its starts from while it runs (attacks/apgd.py's SubsetDraws).
StartFn = Callable[[torch.Tensor, AttackSpec], Any]
PassesFn = Callable[[AttackSpec], tuple[float, float]]


def textbook_passes(spec: AttackSpec) -> tuple[float, float]:
    """The attack definition's own count: one forward and one backward per gradient."""
    return spec.definition.passes(spec.params)


def extra_forwards(count: int) -> PassesFn:
    """An :attr:`Offer.passes`: the textbook count plus ``count`` forwards per sample (a library that
    predicts to log, to report, or to check its labels)."""

    def passes(spec: AttackSpec) -> tuple[float, float]:
        forward, backward = textbook_passes(spec)
        return forward + count, backward

    return passes


def definitions_run_passes(spec: AttackSpec, counted: tuple[float, float], n: int) -> tuple[float, float]:
    """An :attr:`Offer.passes_on_run`: the passes the expectation counted on the definition's run."""
    return counted


def _offered_always(spec: AttackSpec) -> str:
    return ""


def _definitions_arithmetic(spec: AttackSpec) -> Any:
    return None


def _definitions_selection(spec: AttackSpec) -> Selection | None:
    return None


@dataclass(frozen=True)
class Offer:
    """How one library computes one attack — checked, not trusted.

    ``call`` runs the library's attack (an :data:`AttackFn`). ``loss_reduction``: how the library
    reduces cross-entropy over a batch; ``sum`` and ``mean`` are the same attack in exact arithmetic,
    but the 1/N of a mean changes float32 round-off when N is not a power of two, so the expected
    x_adv is computed with the library's own reduction and compared bit for bit. ``passes``:
    (forward, backward) per sample for a spec, as read from the source and measured by the guard's
    hooks. ``start``: the library's random-start point for a batch, reproduced outside the library
    from the same random draws; None where it cannot be reproduced, and then its seeded cells can only
    be judged statistically (an unseeded spec starts from x). ``refuses``: '' where the library
    computes the spec, else why it does not (DeepRobust's PGD always draws a random start): a run
    plans no such cells. ``departure``: how the library's version departs from the attack's
    definition, read from its source and measured — not an excuse: such cells still disagree, the
    report quotes this as the explanation, and the adapter tests fail if a release stops departing;
    a function of the spec where only some specs depart (ART's FGM with restarts), '' for the others.
    ``arithmetic``: for a spec, how the library rounds the same mathematics where that differs from
    the definition's own (an L2 norm in NumPy, a reciprocal multiply, a clip before the projection:
    an :class:`~.attacks.geometry.Geometry` for FGSM and PGD), None where it does not — passed to the
    attack's reference so that the expected x_adv is the library's bit for bit, not within a
    tolerance wide enough to hide a bug. Round-off only: an algorithm that differs is a departure.
    ``selection``: for a spec with restarts, which restart's x_adv each sample keeps where the
    library keeps another than the definition (:class:`~.attacks.restarts.Selection`); a library
    that keeps one restart for the whole batch does not select per sample: a departure.
    """

    call: AttackFn
    loss_reduction: LossReduction
    # The norms the library computes the attack in: an L2 spec is refused by an L∞-only offer rather
    # than run in L∞ (which would pass an L2 guard and be blamed on the library as a disagreement).
    norms: tuple[Norm, ...] = ("linf",)
    # The optional variants of the attack the library computes (``Attack.variants``: FGSM's
    # "random_start"); any other is refused, for the same reason as a norm.
    variants: Container[str] = ()
    passes: PassesFn = textbook_passes
    # True where the passes depend on the run (the original APGD attacks only the samples it has not
    # fooled yet): they are then counted on the expectation, computed in the library's batches, and
    # ``passes`` gives the most the library may spend.
    passes_follow_expectation: bool = False
    # Where they do: the library's passes per sample from those the definition's run counted (per
    # sample, of a batch of n), where the library spends other passes on the same samples (ART's APGD
    # evaluates each loss in a forward of its own).
    passes_on_run: Callable[[AttackSpec, tuple[float, float], int], tuple[float, float]] = (
        definitions_run_passes
    )
    start: StartFn | None = None
    refuses: Callable[[AttackSpec], str] = _offered_always
    departure: str | Callable[[AttackSpec], str] = ""
    arithmetic: Callable[[AttackSpec], Any] = _definitions_arithmetic
    selection: Callable[[AttackSpec], Selection | None] = _definitions_selection

    def __post_init__(self) -> None:
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"expected loss_reduction in {LOSS_REDUCTIONS}, got {self.loss_reduction!r}")
        if not self.norms or any(norm not in NORMS for norm in self.norms):
            raise ValueError(f"expected norms among {NORMS}, got {self.norms!r}")


@dataclass(frozen=True)
class Declaration:
    """Everything an adapter documents about its library: one :class:`Offer` per attack it offers.

    An attack without an offer is refused by name (:meth:`offer`) — nothing falls through to a
    default attack, which an L∞ PGD would be, passing the L∞ guard and blamed on the library as a
    disagreement.
    """

    offers: Mapping[str, Offer]

    def __post_init__(self) -> None:
        unknown = [a for a in self.offers if a not in attacks.names()]
        if unknown or not self.offers:
            raise ValueError(f"expected offers for attacks among {attacks.names()}, got {list(self.offers)}")

    @property
    def attacks(self) -> tuple[str, ...]:
        """The attacks the library offers, by registry name."""
        return tuple(self.offers)

    def offer(self, attack: str) -> Offer:
        """The library's offer for ``attack``; ``ValueError`` naming what it offers where it has none."""
        offer = self.offers.get(attack)
        if offer is None:
            raise ValueError(f"offers no {attack!r}; expected one of its attacks {list(self.offers)}")
        return offer

    def accepts(self, spec: AttackSpec) -> bool:
        """Whether the library computes ``spec`` at all (it may still compute it wrongly)."""
        return not self.refusal(spec)

    def refusal(self, spec: AttackSpec) -> str:
        """'' where the library computes ``spec``, else why not, in a few words."""
        offer = self.offers.get(spec.attack)
        if offer is None:
            return f"offers no {spec.attack.upper()}; its attacks are {list(self.offers)}"
        if spec.norm not in offer.norms:
            return f"offers {spec.attack.upper()} in {', '.join(offer.norms)} only, not {spec.norm}"
        missing = [v for v in spec.definition.variants(spec.params) if v not in offer.variants]
        if missing:
            return f"offers no {spec.attack.upper()} with {', '.join(missing)}"
        return offer.refuses(spec)

    def passes(self, spec: AttackSpec) -> tuple[float, float]:
        """(forward, backward) passes per sample the library must spend on ``spec``."""
        return self.offer(spec.attack).passes(spec)

    def passes_follow_expectation(self, spec: AttackSpec) -> bool:
        """Whether the passes ``spec`` must spend are counted on its expectation (:attr:`Offer.passes_follow_expectation`)."""
        return self.offer(spec.attack).passes_follow_expectation

    def passes_on_run(self, spec: AttackSpec, counted: tuple[float, float], n: int) -> tuple[float, float]:
        """The passes per sample ``spec`` must spend, given those counted on the definition's run (:attr:`Offer.passes_on_run`)."""
        return self.offer(spec.attack).passes_on_run(spec, counted, n)

    def loss_reduction(self, spec: AttackSpec) -> LossReduction:
        return self.offer(spec.attack).loss_reduction

    def arithmetic(self, spec: AttackSpec) -> Any:
        """How the library rounds ``spec``'s step (:attr:`Offer.arithmetic`); None for the definition's."""
        return self.offer(spec.attack).arithmetic(spec)

    def own_arithmetic(self, spec: AttackSpec) -> str:
        """What the expected x_adv of ``spec`` follows of the library's own rounding and restart
        selection, in a few words, as a report quotes it beside an agreement ('' for the definition's)."""
        selection = self.selection(spec)
        notes = (arithmetic_note(self.arithmetic(spec)), selection.note if selection else "")
        return "; ".join(note for note in notes if note)

    def selection(self, spec: AttackSpec) -> Selection | None:
        """Which restart each sample keeps (:attr:`Offer.selection`); None for the definition's rule."""
        return self.offer(spec.attack).selection(spec)

    def start(self, x: torch.Tensor, spec: AttackSpec) -> Any:
        """Where the library's attack starts for this batch: x for an unseeded spec, its reproduced
        random start, or None where that cannot be reproduced."""
        if not spec.seeded:
            return spec.definition.default_start(x, spec.eps, spec.params, spec.seed)
        start = self.offer(spec.attack).start
        return None if start is None else start(x, spec)

    def departure(self, spec: AttackSpec) -> str:
        """How the library's ``spec`` departs from the attack's definition ('' where it does not)."""
        departure = self.offer(spec.attack).departure
        return departure if isinstance(departure, str) else departure(spec)

    def summary(self) -> dict[str, Any]:
        """What a run's manifest records of the declaration: per attack, norms, loss reduction and the
        departure of every spec of it (one that departs for some specs only is in their cells' rows)."""
        return {
            attack: {
                "norms": list(offer.norms),
                "loss_reduction": offer.loss_reduction,
                "departure": offer.departure if isinstance(offer.departure, str) else "",
            }
            for attack, offer in self.offers.items()
        }
