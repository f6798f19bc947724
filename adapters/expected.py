"""The exact x_adv each library must return, and how to count where a library's output departs from it.

For every call the harness knows what the library *should* have computed: the attack's own reference
(``attacks/<attack>.py``), run with the loss reduction the library's offer declares and — for a random
start — from the start point the library draws, reproduced by the offer's
:attr:`~adapters.declaration.Offer.start`. Wherever the reproduction is exact, a correct library
returns that x_adv bit for bit (or within float32 round-off), at any eps and whatever the
predictions: a reversed, halved, skipped or random attack is visible in the pixels even where no
prediction changes.

Two per-pixel thresholds, stated once here and recorded in every run's manifest:

* :data:`PIXEL_ROUND_OFF` — two x_adv values closer than this are the same pixel. Libraries clip and
  project in different orders (step → clip → project vs step → project → clip), which can move a
  pixel by an ulp or two; a PGD step of the smallest eps in the paper's grid (0.01/255 / 4 ≈ 9.8e-6)
  is ~80 ulps at 1.0, so a real step is never mistaken for round-off.
* :data:`NEAR_ZERO_GRADIENT` — a pixel whose gradient, at some step of the expected attack, was at
  most this fraction of its sample's largest |gradient| has a sign that float32 round-off can flip
  (a different but equivalent summation order in a kernel, a GPU's atomics). A library stepping the
  other way on such a pixel computes the same attack; ``crosscheck`` allows a few of these per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .base import attack_session
from .declaration import Declaration, LossReduction
from .spec import AttackSpec, as_eps_list

# Four float32 ulps at 1.0 (2**-23 each).
PIXEL_ROUND_OFF = 4 * 2.0**-23
NEAR_ZERO_GRADIENT = 1e-5


@dataclass(frozen=True)
class Expectation:
    """A library's expected x_adv for one batch and how much each pixel's sign can be trusted.

    ``exact`` is False where the library's random start cannot be reproduced: ``x_adv`` is then the
    reference's own (from its own start), a statistical yardstick, not a per-pixel expectation.
    """

    x_adv: torch.Tensor
    grad_floor: torch.Tensor  # per pixel: reference.relative_magnitude, minimum over the steps
    exact: bool
    # (forward, backward) passes per sample the library must spend where they depend on the run
    # (``Offer.passes_follow_expectation``: the expectation computed in the library's batches, counted);
    # None where the offer's ``passes`` give them.
    passes: tuple[float, float] | None = None


@dataclass(frozen=True)
class Evidence:
    """Per sample: how a library's x_adv departs from its expectation."""

    linf_to_expected: torch.Tensor  # float64 [N]
    pixels_differ: torch.Tensor  # int64 [N]: components farther than PIXEL_ROUND_OFF apart
    pixels_differ_near_zero: torch.Tensor  # int64 [N]: of those, pixels whose gradient floor is near zero
    pixels_total: int  # C·H·W


def identical(x_adv: torch.Tensor) -> Evidence:
    """The evidence of an x_adv that is its own expectation (the reference's own cells): nothing differs."""
    n = int(x_adv.shape[0])
    zeros = torch.zeros(n, dtype=torch.int64, device=x_adv.device)
    return Evidence(
        linf_to_expected=torch.zeros(n, dtype=torch.float64, device=x_adv.device),
        pixels_differ=zeros,
        pixels_differ_near_zero=zeros,
        pixels_total=int(x_adv[0].numel()),
    )


def compare(x_adv: torch.Tensor, expectation: Expectation) -> Evidence:
    """Count, per sample, the pixels where ``x_adv`` differs from the expectation beyond round-off."""
    # float64 makes the difference of two float32 values exact: the comparison adds no round-off.
    distance = (x_adv.double() - expectation.x_adv.double()).abs().flatten(1)
    differ = distance > PIXEL_ROUND_OFF
    near_zero = expectation.grad_floor.flatten(1) <= NEAR_ZERO_GRADIENT
    return Evidence(
        linf_to_expected=distance.amax(dim=1),
        pixels_differ=differ.sum(dim=1),
        pixels_differ_near_zero=(differ & near_zero).sum(dim=1),
        pixels_total=int(distance.shape[1]),
    )


def grid_expectations(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    eps_list: Sequence[float],
    reduction: LossReduction,
    arithmetic: Any = None,
) -> dict[float, Expectation]:
    """An attack that shares its gradient across eps (FGSM) at every eps of a grid, with the given
    loss reduction and arithmetic (:attr:`~.declaration.Offer.arithmetic`), under the attack guards."""
    grid = as_eps_list(eps_list, spec.norm)
    with attack_session(model, x, y, "expected") as session:
        computed = spec.definition.reference_grid(
            session.counter, x, y, grid, spec.params, reduction, arithmetic
        )
    return {eps: Expectation(x_adv, floor, exact=True) for eps, (x_adv, floor) in computed.items()}


def expectation(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    declaration: Declaration,
    start: torch.Tensor | None = None,
) -> Expectation:
    """``spec`` as the library should compute it: its loss reduction, arithmetic and restart
    selection, from its start(s) (:meth:`Declaration.start`, computed here unless given). A start that
    cannot be reproduced gives the definition's own attack from its own start: a statistical yardstick."""
    start = declaration.start(x, spec) if start is None else start
    exact = start is not None
    definition = spec.definition
    if start is None:
        start = definition.default_start(x, spec.eps, spec.params, spec.seed)
    reduction: LossReduction = declaration.loss_reduction(spec) if exact else "sum"
    arithmetic = declaration.arithmetic(spec) if exact else None
    selection = declaration.selection(spec) if exact else None
    with attack_session(model, x, y, "expected") as session:
        x_adv, floor = definition.from_starts(
            session.counter, x, y, spec.eps, spec.params, start, reduction, arithmetic, selection
        )
        counter = session.counter
        counted = (counter.forward_rows / counter.n_samples, counter.backward_rows / counter.n_samples)
    follows = exact and declaration.passes_follow_expectation(spec)
    passes = declaration.passes_on_run(spec, counted, int(x.shape[0])) if follows else None
    return Expectation(x_adv, floor, exact, passes)


@dataclass
class ExpectationCache:
    """Expectations for one batch, computed once and shared by every library that declares the same
    loss reduction, arithmetic and restart selection and draws the same start (compared bit for bit,
    not by name)."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    _grids: dict[tuple[str, Any, LossReduction, Any], dict[float, Expectation]] = field(default_factory=dict)
    _known: list[tuple[AttackSpec, LossReduction, Any, Any, Expectation]] = field(default_factory=list)

    def get(self, spec: AttackSpec, declaration: Declaration, eps_grid: Sequence[float]) -> Expectation:
        """The library's expected x_adv for ``spec``; ``eps_grid``: every eps judged with it where the
        attack shares its gradient across eps (computed together, once)."""
        reduction = declaration.loss_reduction(spec)
        # The passes too: an expectation carries the library's count where it follows the run.
        declared = (
            declaration.arithmetic(spec),
            declaration.selection(spec),
            declaration.offer(spec.attack).passes_on_run,
        )
        if spec.definition.shares_gradient_across_eps(spec.params):
            key = (spec.attack, spec.params, reduction, declared)
            if key not in self._grids:
                self._grids[key] = grid_expectations(
                    self.model, self.x, self.y, spec, eps_grid, reduction, declared[0]
                )
            return self._grids[key][spec.eps]
        start = declaration.start(self.x, spec)
        for known_spec, known_reduction, known_declared, known_start, known in self._known:
            if (
                known_spec == spec
                and known_reduction == reduction
                and known_declared == declared
                and _same(start, known_start)
            ):
                return known
        computed = expectation(self.model, self.x, self.y, spec, declaration, start)
        self._known.append((spec, reduction, declared, start, computed))
        return computed


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return bool(torch.equal(a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return False
    # None, or a start drawn while the expectation runs (attacks/apgd.py's SubsetDraws): by value.
    return a == b
