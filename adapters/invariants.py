"""Invariants every correct attack satisfies, checked on a library's own calls — no reference needed.

Each check runs the library on a small batch and returns a :class:`Check`: its name, one sentence on
why it must hold, whether it held (None where it cannot run for this library or spec, with the reason),
and the samples that broke it. Real bugs broke each: a selection rule over the whole data set made one
sample's result depend on the others in its batch (ART, once); an in-place write changed the caller's
array (ART, once: the guard's :func:`~.base.input_writes` catches that on every call).

* :func:`zero_budget` — with eps = 0 the attack returns x exactly (torchattacks' issue #172 reported an
  FGSM that changed predictions at eps = 0);
* :func:`repeatable` — the same call twice (same seed) returns the same x_adv bit for bit;
* :func:`batch_independent` — for a deterministic spec (no random start), a sample's x_adv does not
  depend on the batch it is in: the batch reversed and split in two give every sample the x_adv the
  whole batch gave it, up to float32 round-off and to sign flips where the gradient is within
  round-off of zero (a mean-reduced loss rounds differently with another batch size:
  :data:`~.expected.NEAR_ZERO_GRADIENT`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import AttackOutputError, run_attack
from .declaration import Adapter
from .expected import Expectation, compare, expectation
from .spec import AttackSpec


@dataclass(frozen=True)
class Check:
    name: str
    why: str
    passed: bool | None  # None: the check cannot run for this library and spec (``evidence`` says why)
    evidence: str = ""
    samples: tuple[int, ...] = ()  # positions in the batch that broke it


ZERO_BUDGET = "eps = 0 returns x"
REPEATABLE = "same seed, same x_adv"
INDEPENDENT = "independent of the batch"


def zero_budget(
    adapter: Adapter, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec
) -> Check:
    why = (
        "with no budget there is nothing to change: x itself, bit for bit (so the clean predictions), "
        "whatever the attack does inside"
    )
    zero = with_eps(spec, 0.0)
    try:
        x_adv = run_attack(adapter, model, x, y, zero).x_adv  # type: ignore[arg-type]
    except AttackOutputError as err:
        moved = tuple(range(len(x)))
        return Check(ZERO_BUDGET, why, False, f"its output left the eps-ball: {err}", moved)
    except (ValueError, ZeroDivisionError) as err:
        # The library refuses eps = 0 (ART), or its call divides by eps (a relative step size).
        return Check(
            ZERO_BUDGET, why, None, f"not run: its call cannot take eps = 0 ({type(err).__name__}: {err})"
        )
    differ = (x_adv != x).flatten(1).any(dim=1)
    broken = tuple(int(i) for i in differ.nonzero().flatten())
    return Check(
        ZERO_BUDGET, why, not broken, f"{len(broken)} of {len(x)} samples moved" if broken else "", broken
    )


def with_eps(spec: AttackSpec, eps: float) -> AttackSpec:
    """``spec`` with another eps, unchecked: eps = 0 is outside what a spec accepts, on purpose."""
    other = AttackSpec.__new__(AttackSpec)
    for name, value in (("attack", spec.attack), ("eps", eps), ("seed", spec.seed), ("params", spec.params)):
        object.__setattr__(other, name, value)
    return other


def repeatable(
    adapter: Adapter, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec
) -> Check:
    why = (
        "an attack is a function of its inputs and seed: a second identical call must return the same points"
    )
    first = run_attack(adapter, model, x, y, spec).x_adv  # type: ignore[arg-type]
    second = run_attack(adapter, model, x, y, spec).x_adv  # type: ignore[arg-type]
    differ = (first != second).flatten(1).any(dim=1)
    broken = tuple(int(i) for i in differ.nonzero().flatten())
    evidence = f"{len(broken)} of {len(x)} samples came back different" if broken else ""
    return Check(REPEATABLE, why, not broken, evidence, broken)


def batch_independent(
    adapter: Adapter, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec
) -> Check:
    why = (
        "each sample is attacked on its own loss: reordering or splitting the batch must not change its "
        "x_adv beyond round-off"
    )
    if spec.seeded:
        return Check(
            INDEPENDENT,
            why,
            None,
            "not run: the random start is drawn for the whole batch, so another batch draws other starts",
        )
    if len(x) < 2:
        return Check(INDEPENDENT, why, None, "not run: it needs at least 2 samples")
    whole = run_attack(adapter, model, x, y, spec).x_adv  # type: ignore[arg-type]
    declaration = adapter.declaration  # type: ignore[attr-defined]
    # Which pixels' signs round-off can flip: the expected attack's gradient floor, on the whole batch.
    floor = expectation(model, x, y, spec, declaration).grad_floor
    reference = Expectation(whole, floor, exact=True)
    order = torch.arange(len(x) - 1, -1, -1)
    reversed_adv = run_attack(adapter, model, x[order], y[order], spec).x_adv[order.argsort()]  # type: ignore[arg-type]
    k = (len(x) + 1) // 2  # two non-empty parts
    split_adv = torch.cat(
        [
            run_attack(adapter, model, x[:k], y[:k], spec).x_adv,
            run_attack(adapter, model, x[k:], y[k:], spec).x_adv,
        ]  # type: ignore[arg-type]
    )
    broken: set[int] = set()
    for variant in (reversed_adv, split_adv):
        evidence = compare(variant, reference)
        beyond = evidence.pixels_differ - evidence.pixels_differ_near_zero
        broken |= {int(i) for i in (beyond > 0).nonzero().flatten()}
    samples = tuple(sorted(broken))
    text = (
        f"{len(samples)} of {len(x)} samples changed with the batch (reversed, or split {k} + {len(x) - k})"
    )
    return Check(INDEPENDENT, why, not samples, text if samples else "", samples)


def check_all(
    adapter: Adapter, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec
) -> list[Check]:
    """Every invariant of this module for one library and spec on the batch (x, y)."""
    return [check(adapter, model, x, y, spec) for check in (zero_budget, repeatable, batch_independent)]


def on_cell(
    adapter: Adapter,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    x_adv: torch.Tensor,
    grad_floor: torch.Tensor | None,
    zero: Check | None = None,
) -> list[Check]:
    """The invariants of one run cell, on a few of its samples: ``x``, ``y`` and ``x_adv`` are those
    samples, ``x_adv`` what the library returned for them *inside the cell's whole batch*, and
    ``grad_floor`` their expected gradient floor (which pixels' signs round-off can flip; only a
    deterministic spec's batch check reads it). ``zero``: the eps = 0 check of the same library and
    samples made for another eps of an attack whose call at eps = 0 does not depend on the cell's eps
    (FGSM: its parameters hold no step that scales with eps), reused instead of calling again.

    Cheaper than :func:`check_all`, which makes its own whole-batch calls: the cell's call is one of
    the two compared. A deterministic spec costs two calls on these samples — eps = 0, and the samples
    reversed as a batch of their own, compared with the cell's x_adv (a second call that returns the
    same points also shows the call repeatable) — and a seeded one three: eps = 0 and the same call
    twice (another batch draws other starts, so it cannot be compared with the cell's).
    """
    checks = [zero if zero is not None else zero_budget(adapter, model, x, y, spec)]
    if spec.seeded:
        return [
            *checks,
            repeatable(adapter, model, x, y, spec),
            batch_independent(adapter, model, x, y, spec),  # says why it cannot run
        ]
    if grad_floor is None:
        raise ValueError("a deterministic spec's batch check needs the samples' gradient floor")
    independent = _reordered(adapter, model, x, y, spec, Expectation(x_adv, grad_floor, exact=True))
    why = (
        "an attack is a function of its inputs and seed: a second identical call must return the same points"
    )
    if independent.passed:
        same = Check(
            REPEATABLE, why, True, "shown by the batch check: a second call returned the same points"
        )
    else:
        same = Check(
            REPEATABLE,
            why,
            None,
            "not run apart: for a deterministic attack it is the batch check's second call",
        )
    return [*checks, same, independent]


def _reordered(
    adapter: Adapter, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, whole: Expectation
) -> Check:
    """``x`` reversed as a batch of its own against ``whole`` (its x_adv in another batch)."""
    why = (
        "each sample is attacked on its own loss: reordering or splitting the batch must not change its "
        "x_adv beyond round-off"
    )
    if len(x) < 2:
        return Check(INDEPENDENT, why, None, "not run: it needs at least 2 samples")
    order = torch.arange(len(x) - 1, -1, -1)
    reversed_adv = run_attack(adapter, model, x[order], y[order], spec).x_adv[order.argsort()]  # type: ignore[arg-type]
    evidence = compare(reversed_adv, whole)
    beyond = evidence.pixels_differ - evidence.pixels_differ_near_zero
    broken = tuple(int(i) for i in (beyond > 0).nonzero().flatten())
    text = f"{len(broken)} of {len(x)} samples changed when attacked reversed, as a batch of {len(x)}"
    return Check(INDEPENDENT, why, not broken, text if broken else "", broken)
