"""A broken invariant, as the runner records it (``harness/group.py``: the rows' ``invariants`` and
``invariant_broken``), makes the cell invalid with the check, its samples and x_adv's own evidence; the
reference's makes every library's cell of it unjudgeable."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from advparity.reports.crosscheck import verdicts
from advparity.reports.invariants import monotone_success, on_target
from advparity.reports.invariants_html import invariants_section
from scipy.stats import binomtest
from support.report_frames import LABELS, cell

EPS = 1 / 255


def _recorded(frame: pd.DataFrame, broken: dict[int, str], passed: bool | None = None) -> pd.DataFrame:
    """``frame`` with the invariants of samples 0 and 1 recorded: ``broken`` {sample: check name}."""
    checks = [
        {
            "name": name,
            "why": "",
            "passed": False if any(n == name for n in broken.values()) else passed,
            "evidence": "1 of 2 samples moved" if any(n == name for n in broken.values()) else "",
            "samples": [s for s, n in broken.items() if n == name],
        }
        for name in ("eps = 0 returns x", "same seed, same x_adv", "independent of the batch")
    ]
    out = frame.copy()
    out["invariants"] = json.dumps({"samples": [0, 1], "checks": checks})
    out["invariant_broken"] = [broken.get(int(s), "") for s in out["sample"]]
    return out


def _run(library_broken: dict[int, str], reference_broken: dict[int, str]) -> pd.DataFrame:
    return pd.concat(
        [
            _recorded(cell("reference", "fgsm", EPS, LABELS), reference_broken, passed=True),
            _recorded(cell("torchattacks", "fgsm", EPS, LABELS), library_broken, passed=True),
        ],
        ignore_index=True,
    )


def _verdict(frame: pd.DataFrame, library: str) -> pd.Series:
    out = verdicts(frame)
    return out[out["library"] == library].iloc[0]


def test_every_invariant_held_agrees_and_says_so() -> None:
    row = _verdict(_run({}, {}), "torchattacks")
    assert row["verdict"] == "agree" and row["invariants"] == "3 held"


def test_a_broken_invariant_makes_the_cell_invalid_with_its_samples() -> None:
    row = _verdict(_run({1: "eps = 0 returns x"}, {}), "torchattacks")
    assert row["verdict"] == "invalid"
    assert "'eps = 0 returns x' broke on sample(s) [1] (seed 0): 1 of 2 samples moved" in row["reason"]
    # What x_adv showed is still said: the invariant does not hide it.
    assert "Also: x_adv equals the expected one" in row["reason"]
    assert row["invariants"] == "1 broken, 2 held"


def test_a_reference_that_breaks_one_leaves_the_libraries_unjudged() -> None:
    frame = _run({}, {0: "independent of the batch"})
    assert _verdict(frame, "reference")["verdict"] == "invalid"
    row = _verdict(frame, "torchattacks")
    assert row["verdict"] == "invalid" and "the reference cell itself is invalid" in row["reason"]


def test_a_run_without_invariants_says_not_recorded() -> None:
    frame = pd.concat([cell("reference", "fgsm", EPS, LABELS), cell("torchattacks", "fgsm", EPS, LABELS)])
    row = _verdict(frame, "torchattacks")
    assert row["verdict"] == "agree" and row["invariants"] == "not recorded"


def test_success_along_the_grid_counts_the_samples_lost_and_gained() -> None:
    """Hand-made predictions: at 2/255, 30 samples fooled at 1/255 are no longer (and 2 new ones are)."""
    small = LABELS.copy()
    small[:40] = (LABELS[:40] + 1) % 4  # 40 fooled
    large = LABELS.copy()
    large[30:42] = (LABELS[30:42] + 1) % 4  # 10 of those still fooled, 2 more
    frame = pd.concat(
        [cell("reference", "fgsm", 1 / 255, small), cell("reference", "fgsm", 2 / 255, large)],
        ignore_index=True,
    )
    (pair,) = monotone_success(frame).itertuples(index=False)
    assert (pair.lost, pair.gained, pair.n) == (30, 2, len(LABELS))
    assert pair.success_from == 40 / len(LABELS) and pair.success_to == 12 / len(LABELS)
    assert pair.pvalue == pytest.approx(binomtest(2, 32, 0.5).pvalue)
    assert bool(pair.falls)
    # The reverse is no fall.
    rising = frame.assign(eps=frame["eps"].map({1 / 255: 2 / 255, 2 / 255: 1 / 255}))
    assert not monotone_success(rising)["falls"].any()


def test_targeted_successes_are_split_by_their_target() -> None:
    target = (LABELS + 1) % 4
    pred = LABELS.copy()
    pred[:10] = target[:10]  # on target
    pred[10:15] = (LABELS[10:15] + 2) % 4  # fooled, elsewhere
    frame = cell("reference", "pgd", 1 / 255, pred).assign(target=target)
    (row,) = on_target(frame).itertuples(index=False)
    assert (row.successes, row.on_target, row.off_target) == (15, 10, 5)
    # Untargeted cells have no row.
    assert on_target(cell("reference", "pgd", 1 / 255, pred)).empty


def test_the_report_section_lists_each_check() -> None:
    section = invariants_section(_run({1: "eps = 0 returns x"}, {}))
    assert "<h2>Invariants: what no reference is needed for</h2>" in section.replace(' id="invariants"', "")
    assert "1 broken check(s) in 1 cell(s)" in section
    assert "samples 1: 1 of 2 samples moved" in section
    assert invariants_section(cell("reference", "fgsm", EPS, LABELS)) == ""
