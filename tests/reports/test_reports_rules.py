"""The verdict rules are one ordered table: every rule can decide a cell, and what the docs and the report
print is that table."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from advparity.reports.crosscheck import RULES as PRINTED_RULES
from advparity.reports.evidence import CellEvidence, ExactFacts, StatisticalFacts
from advparity.reports.rules import NOTE_TEXTS, RULE_TEXTS, RULES, decide, judge, markdown

ROOT = Path(__file__).resolve().parents[2]

JUDGED = CellEvidence(
    library="art",
    attack="pgd",
    label="PGD-10",
    eps=1 / 255,
    name="ART PGD-10 @ 1/255",
    call="mismatches(...)",
    steps=10,
    random_start=True,
    seeded=True,
    seeds="0",
    n=8,
    exact=True,
)
SAME = ExactFacts(0, 0, 0, 0, 0, 3072, 0.0, False, False)
DIFFERENT = dataclasses.replace(SAME, n_different=3, median_different_pixels=100, most_different_pixels=200)


def _statistical(pvalue: float, detectable_pp: float) -> StatisticalFacts:
    return StatisticalFacts(pvalue, 3, 1, 8, 0.01, 1, detectable_pp, "its random start cannot be reproduced")


# One cell per rule, each built to satisfy that rule and no rule above it.
CASES: dict[str, CellEvidence] = {
    "unavailable": dataclasses.replace(JUDGED, unavailable="ImportError: gone", n=0),
    "invalid output": dataclasses.replace(JUDGED, n_invalid=2, first_error="boom"),
    "invariant broken": dataclasses.replace(
        JUDGED, invariant_failure="'eps = 0 returns x' broke on sample(s) [0] (seed 0): 1 of 2 samples moved"
    ),
    "arbiter": dataclasses.replace(JUDGED, library="reference", name="reference PGD-10 @ 1/255"),
    "no reference": dataclasses.replace(JUDGED, reference_missing=True),
    "reference invalid": dataclasses.replace(JUDGED, reference_invalid=True),
    "unpaired rows": dataclasses.replace(JUDGED, n_unpaired=3, unpaired_seeds=(1,)),
    "passes differ": dataclasses.replace(JUDGED, exact_facts=SAME, pass_failure="it spent 11 forward passes"),
    "x_adv differs": dataclasses.replace(JUDGED, exact_facts=DIFFERENT),
    "x_adv the same": dataclasses.replace(JUDGED, exact_facts=SAME),
    "measurably different": dataclasses.replace(JUDGED, exact=False, statistical=_statistical(1e-4, 0.5)),
    "underpowered": dataclasses.replace(JUDGED, exact=False, statistical=_statistical(0.5, 12.5)),
    "no measurable difference": dataclasses.replace(JUDGED, exact=False, statistical=_statistical(0.5, 0.5)),
}


def test_every_rule_has_a_case_and_the_names_are_unique() -> None:
    assert [rule.name for rule in RULES] == list(CASES)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_every_rule_can_decide_a_cell(rule) -> None:  # type: ignore[no-untyped-def]
    evidence = CASES[rule.name]
    assert decide(evidence) is rule
    verdict, reason, name = judge(evidence, {})
    assert (verdict, name) == (rule.verdict, rule.name)
    assert reason.startswith(f"{evidence.name}: ")


def test_first_match_wins() -> None:
    """A cell that breaks the bounds *and* spent the wrong passes is invalid: the earlier rule decides."""
    both = dataclasses.replace(CASES["passes differ"], n_invalid=1)
    assert decide(both).name == "invalid output"
    # x_adv's own disagreement follows the pass count in the reason; the verdict stays the pass rule's.
    passes_and_xadv = dataclasses.replace(CASES["x_adv differs"], pass_failure="it spent 11 forward passes")
    verdict, reason, name = judge(passes_and_xadv, {})
    assert (verdict, name) == ("disagree", "passes differ")
    assert "it spent 11 forward passes. Also: x_adv differs from the expected one" in reason


def test_a_note_adds_to_a_reason_and_never_changes_the_verdict() -> None:
    departures = {("art", "pgd"): "ART returns the best iterate"}
    for evidence in CASES.values():
        verdict, reason, _ = judge(evidence, departures)
        plain_verdict, plain_reason, _ = judge(evidence, {})
        assert verdict == plain_verdict
        if verdict == "disagree":
            assert reason == plain_reason + (
                " The adapter documents this departure, read from the library's source: ART returns the best iterate."
            )
        else:
            assert reason == plain_reason


def test_the_report_and_the_docs_print_the_table() -> None:
    assert PRINTED_RULES == RULE_TEXTS + NOTE_TEXTS
    assert len(RULE_TEXTS) == len(RULES) and all(text.endswith(".") for text in RULE_TEXTS)
    docs = (ROOT / "docs" / "crosscheck.md").read_text(encoding="utf-8")
    start = docs.index("<!-- rules:")
    listed = docs[docs.index("\n", start) + 1 : docs.index("<!-- /rules -->")].strip()
    assert listed == markdown(), "docs/crosscheck.md's rules differ from reports/rules.py: paste markdown()"


def test_the_statistical_rules_split_on_power() -> None:
    """inconclusive and agree part on the detectable shift, at MEANINGFUL_SHIFT_PP exactly."""
    from advparity.reports.evidence import MEANINGFUL_SHIFT_PP

    at = dataclasses.replace(JUDGED, exact=False, statistical=_statistical(0.5, MEANINGFUL_SHIFT_PP))
    above = dataclasses.replace(at, statistical=_statistical(0.5, math.nextafter(MEANINGFUL_SHIFT_PP, 2)))
    assert decide(at).verdict == "agree" and decide(above).verdict == "inconclusive"
