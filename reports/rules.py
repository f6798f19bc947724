"""The cross-check's verdict rules: one ordered table, the first rule whose condition holds decides.

Each :class:`Rule` has the verdict it gives, its condition on a cell's evidence (``reports/evidence.py``),
the function that writes the cell's reason, and the one sentence the report prints for it. :data:`RULES`
is that table; :data:`RULE_TEXTS` is what the report, the README and ``docs/crosscheck.md`` print, so no
text restates the rules. Notes (:data:`NOTES`) add to a reason and never change a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from advparity.reports.evidence import (
    FLIP_BUDGET_SHARE,
    MEANINGFUL_SHIFT_PP,
    NEAR_ZERO_GRADIENT,
    STATISTICAL_ALPHA,
    CellEvidence,
)

VERDICTS: tuple[str, ...] = ("agree", "inconclusive", "disagree", "invalid", "unavailable")


@dataclass(frozen=True)
class Rule:
    name: str
    verdict: str
    applies: Callable[[CellEvidence], bool]
    reason: Callable[[CellEvidence], str]
    text: str


def _linf_text(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return "0" if x == 0 else f"{x * 255:.3g}/255"


def _start_text(e: CellEvidence) -> str:
    if e.seeded:
        return "although both started from the same random point"
    if e.steps == 1:
        return "although both took one step from the same x"
    return "although both started from x"


# --- the reasons ------------------------------------------------------------------------------------


def _unavailable(e: CellEvidence) -> str:
    return f"{e.name}: the library is installed but cannot run here, so nothing was attacked: {e.unavailable}"


def _invalid_output(e: CellEvidence) -> str:
    detail = f" First error: {e.first_error!r}." if e.first_error else ""
    if e.first_change:
        detail += (
            f" It left the model or its inputs changed: {e.first_change} (the guard restored the model)."
        )
    return (
        f"{e.name}: {e.n_invalid} of {e.n} outputs are outside the eps-ball or [0, 1], or the library raised "
        f"or changed the model.{detail} Its results are not comparable; fix the adapter or report the "
        "library bug before reading this cell."
    )


def _invariant_broken(e: CellEvidence) -> str:
    # What x_adv showed follows, where the cell was judged: a broken invariant does not hide it.
    also = ""
    if _judged(e):
        rule = _xadv_verdict(e)
        also = " Also: " + rule.reason(e).removeprefix(f"{e.name}: ")
    return (
        f"{e.name}: an invariant broke on the library's own calls: {e.invariant_failure}. A correct "
        f"attack keeps every invariant: report the library bug before reading this cell.{also}"
    )


def _arbiter(e: CellEvidence) -> str:
    if not e.seeded:
        detail = f"accuracy {100 * e.acc_library:.2f} %"
    elif math.isnan(e.spread_pp):
        detail = (
            f"accuracy {100 * e.acc_library:.2f} %; only one seed ran, so how much the random start moves "
            "accuracy is unknown — run at least 2 seeds"
        )
    else:
        detail = (
            f"mean accuracy {100 * e.acc_library:.2f} %; the random start alone moves it by "
            f"{e.spread_pp:.2f} pp over seeds {e.seeds}"
        )
    return f"{e.name}: the arbiter, agrees by definition; {detail}."


def _no_reference(e: CellEvidence) -> str:
    return (
        f"{e.name}: no reference cell for this attack and eps, so nothing to compare with; run the "
        "reference for the same spec."
    )


def _reference_invalid(e: CellEvidence) -> str:
    return f"{e.name}: the reference cell itself is invalid, so this library cannot be judged; fix the reference first."


def _unpaired(e: CellEvidence) -> str:
    return (
        f"{e.name}: {e.n_unpaired} of {e.n} rows have no reference row for the same "
        f"sample{' and seed' if e.seeded else ''} (seeds {list(e.unpaired_seeds)}); run the reference on the "
        "same samples and seeds."
    )


def _xadv_differs(e: CellEvidence) -> str:
    f = e.exact_facts
    assert f is not None
    summary = (
        f"x_adv differs from the expected one in {f.median_different_pixels:,} of {f.pixels_total:,} pixels "
        f"(median; up to {f.most_different_pixels:,}) on {f.n_different} of {e.n} samples, max L∞ "
        f"{_linf_text(f.max_linf_to_ref)} ({f.max_linf_to_ref / e.eps:.2g}·eps), {_start_text(e)}: a different attack"
    )
    hints = []
    if f.all_unchanged:
        hints.append("every x_adv equals x: the library returned its input unchanged")
    elif f.looks_reversed:
        hints.append("most pixels are 2·eps apart: the step goes the other way (a reversed sign or loss)")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return (
        f"{e.name}: {summary}{hint}. Check its step size, step count, start, projection, loss and labels "
        f"against the spec; the samples are listed by {e.call}."
    )


def _xadv_same(e: CellEvidence) -> str:
    f = e.exact_facts
    assert f is not None
    flip_text = ""
    if f.n_flips:
        flip_text = (
            f"; the other {f.n_flips} differ only in isolated sign flips (at most {f.most_flipped_pixels} of "
            f"{f.pixels_total:,} pixels, all where the expected gradient was within round-off of zero): the "
            "same attack"
        )
    start = f", from the library's own random start for seed(s) {e.seeds}" if e.seeded else ""
    return (
        f"{e.name}: x_adv equals the expected one on {e.n - f.n_flips} of {e.n} samples up to float32 "
        f"round-off{start}{flip_text}."
    )


def _test_text(e: CellEvidence) -> str:
    s = e.statistical
    assert s is not None
    return (
        f"exact McNemar against the reference seed of the same value, over {s.n_pairs} sample-seed pairs, at "
        f"level {STATISTICAL_ALPHA} / {s.n_tests} cell(s) = {s.level:.3g}"
    )


def _weaker_or_stronger(e: CellEvidence) -> str:
    s = e.statistical
    assert s is not None
    direction = "weaker" if s.b > s.c else "stronger"
    return (
        f"{e.name}: {s.why}, and it is measurably {direction} than the reference: p = {s.pvalue:.3g} (correct "
        f"where the reference is wrong on {s.b} pairs, the reverse on {s.c}; {_test_text(e)}). Check the "
        f"library's step size, step count, start and projection; per-sample differences are listed by {e.call}."
    )


def _underpowered(e: CellEvidence) -> str:
    s = e.statistical
    assert s is not None
    return (
        f"{e.name}: {s.why} ({_test_text(e)}); p = {s.pvalue:.3g}, no difference found, but with {s.n_pairs} "
        f"pairs the smallest accuracy shift this test could detect is {s.detectable_pp:.3g} pp, above the "
        f"{MEANINGFUL_SHIFT_PP:g} pp that matters: attack more images or run more seeds."
    )


def _statistically_same(e: CellEvidence) -> str:
    s = e.statistical
    assert s is not None
    return (
        f"{e.name}: {s.why} ({_test_text(e)}); p = {s.pvalue:.3g}, and the test could detect a shift of "
        f"{s.detectable_pp:.3g} pp."
    )


def _xadv_verdict(e: CellEvidence) -> Rule:
    """The rule x_adv's evidence alone gives a judged cell (what a pass-count failure adds to)."""
    return next(rule for rule in RULES if rule.name in _XADV_RULES and rule.applies(e))


def _passes_differ(e: CellEvidence) -> str:
    # The pass counts lead the reason; x_adv's evidence follows where it also disagrees.
    rule = _xadv_verdict(e)
    also = rule.reason(e).removeprefix(f"{e.name}: ") if rule.verdict != "agree" else ""
    return f"{e.name}: {e.pass_failure}." + (f" Also: {also}" if also else "")


# --- the table ----------------------------------------------------------------------------------------


def _judged(e: CellEvidence) -> bool:
    return e.exact_facts is not None or e.statistical is not None


def _significant(e: CellEvidence) -> bool:
    return e.statistical is not None and e.statistical.pvalue < e.statistical.level


RULES: tuple[Rule, ...] = (
    Rule(
        "unavailable",
        "unavailable",
        lambda e: bool(e.unavailable),
        _unavailable,
        "A library that is installed but cannot run here (it fails on import) is unavailable at every cell, "
        "with its error as the reason; that does not fail the run.",
    ),
    Rule(
        "invalid output",
        "invalid",
        lambda e: e.n_invalid > 0,
        _invalid_output,
        "Any output outside the eps-ball or [0, 1] (tolerance 1.2e-7), a library error, or a model left "
        "changed (a module out of eval mode, parameters or buffers) makes the cell invalid whatever its "
        "accuracy.",
    ),
    Rule(
        "invariant broken",
        "invalid",
        lambda e: bool(e.invariant_failure),
        _invariant_broken,
        "An invariant broken on the library's own calls — eps = 0 not returning x, a sample's x_adv changing "
        "with its batch, a second identical call returning other points — makes the cell invalid, with the "
        "samples and what changed; the checks run on a few samples of every cell (the report says which).",
    ),
    Rule(
        "arbiter",
        "agree",
        lambda e: e.is_reference,
        _arbiter,
        "The reference is the arbiter: its own row agrees by definition unless it is invalid.",
    ),
    Rule(
        "no reference",
        "invalid",
        lambda e: e.reference_missing,
        _no_reference,
        "A library cell without the reference's cell of the same attack and eps is invalid: nothing to "
        "compare with.",
    ),
    Rule(
        "reference invalid",
        "invalid",
        lambda e: e.reference_invalid,
        _reference_invalid,
        "A library cell whose reference cell is invalid is invalid too: it cannot be judged.",
    ),
    Rule(
        "unpaired rows",
        "invalid",
        lambda e: e.n_unpaired > 0,
        _unpaired,
        "A library cell with samples (or seeds) the reference's cell lacks is invalid: every sample is "
        "judged against the reference's same sample.",
    ),
    Rule(
        "passes differ",
        "disagree",
        lambda e: _judged(e) and bool(e.pass_failure),
        _passes_differ,
        "Forward or backward passes per sample other than the adapter documents for the attack and step "
        "count: disagree.",
    ),
    Rule(
        "x_adv differs",
        "disagree",
        lambda e: e.exact_facts is not None and e.exact_facts.n_different > 0,
        _xadv_differs,
        "Exact cells — every attack whose start the adapter reproduces (x itself, or the library's own "
        "random draw) — are judged on x_adv: the expected x_adv is the attack's reference run with the "
        "library's loss reduction from the library's own start. disagree where any sample's x_adv differs "
        "from it beyond float32 round-off, other than in isolated sign flips (at most "
        f"{FLIP_BUDGET_SHARE:.1%} of its pixels, at least 1) where the expected gradient was at most "
        f"{NEAR_ZERO_GRADIENT:g} of the sample's largest. Predictions and accuracy are reported, not the "
        "criterion.",
    ),
    Rule(
        "x_adv the same",
        "agree",
        lambda e: e.exact_facts is not None,
        _xadv_same,
        "An exact cell whose every sample's x_adv equals the expected one (up to round-off and those "
        "sign flips) agrees.",
    ),
    Rule(
        "measurably different",
        "disagree",
        _significant,
        _weaker_or_stronger,
        "Statistical cells — a random start that cannot be reproduced — are judged by one exact McNemar "
        "test over every sample paired with the reference seed of the same value, at level "
        f"{STATISTICAL_ALPHA} divided by the number of such cells in the run (Bonferroni; more seeds add "
        "pairs, not tests): disagree below it.",
    ),
    Rule(
        "underpowered",
        "inconclusive",
        lambda e: e.statistical is not None and e.statistical.detectable_pp > MEANINGFUL_SHIFT_PP,
        _underpowered,
        "A statistical cell not below that level is inconclusive where the smallest accuracy shift the test "
        f"could detect at this n is above {MEANINGFUL_SHIFT_PP:g} pp.",
    ),
    Rule(
        "no measurable difference",
        "agree",
        lambda e: e.statistical is not None,
        _statistically_same,
        "A statistical cell not below that level, whose test could have detected such a shift, agrees.",
    ),
)
_XADV_RULES = (
    "x_adv differs",
    "x_adv the same",
    "measurably different",
    "underpowered",
    "no measurable difference",
)

# The sentences the report, the README and docs/crosscheck.md print: the table's, in its order.
RULE_TEXTS: tuple[str, ...] = tuple(rule.text for rule in RULES)


def decide(e: CellEvidence) -> Rule:
    """The first rule of :data:`RULES` whose condition holds for ``e``."""
    for rule in RULES:
        if rule.applies(e):
            return rule
    raise AssertionError(f"no rule applies to {e.name}")  # the last rules cover every judged cell


def _departure(e: CellEvidence, departures: Mapping[tuple[str, str], str]) -> str:
    """The cell's own departure (a spec that departs where others of its attack do not), else its attack's."""
    return e.departure or departures.get((e.library, e.attack), "")


@dataclass(frozen=True)
class Note:
    """A sentence added to a reason where it applies; it never changes the verdict."""

    name: str
    applies: Callable[[CellEvidence, str, Mapping[tuple[str, str], str]], bool]
    text: Callable[[CellEvidence, Mapping[tuple[str, str], str]], str]
    description: str


NOTES: tuple[Note, ...] = (
    Note(
        "documented departure",
        lambda e, verdict, departures: verdict == "disagree" and bool(_departure(e, departures)),
        lambda e, departures: (
            f" The adapter documents this departure, read from the library's source: {_departure(e, departures)}."
        ),
        "A disagreeing attack that the adapter documents as departing from the attack's definition says so "
        "in its reason, and still disagrees.",
    ),
    Note(
        "library's own arithmetic",
        lambda e, verdict, departures: verdict == "agree" and bool(e.arithmetic),
        lambda e, departures: (
            f" Expected x_adv computed in the library's own arithmetic order: {e.arithmetic}."
        ),
        "An agreement judged against an expected x_adv computed in the library's own arithmetic order (the "
        "adapter's declaration: an L2 norm taken in NumPy, a clip before the projection) says which.",
    ),
)
NOTE_TEXTS: tuple[str, ...] = tuple(note.description for note in NOTES)


def judge(e: CellEvidence, departures: Mapping[tuple[str, str], str]) -> tuple[str, str, str]:
    """(verdict, reason, rule name) of a cell: the deciding rule's, with the notes that apply."""
    rule = decide(e)
    reason = rule.reason(e)
    for note in NOTES:
        if note.applies(e, rule.verdict, departures):
            reason += note.text(e, departures)
    return rule.verdict, reason, rule.name


def markdown() -> str:
    """The table as ``docs/crosscheck.md`` lists it: one numbered line per rule, in order, then the notes."""
    lines = [f"{i}. **{rule.verdict}** ({rule.name}) — {rule.text}" for i, rule in enumerate(RULES, 1)]
    lines += [f"- Note: {note.description}" for note in NOTES]
    return "\n".join(lines)
