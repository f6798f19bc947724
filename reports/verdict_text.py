"""The run's verdicts in words and as an exit code: :func:`exit_code`, :func:`verdict_summary_text` for
the terminal, and :func:`summary_lines`, the three sentences that open ``report.html``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from advparity.reports.crosscheck import FAILING_VERDICTS, VERDICTS, counts_text
from advparity.reports.sanity import Finding
from advparity.reports.schema import REFERENCE, eps_label, library_label, ordered_libraries
from advparity.reports.stats import clopper_pearson_ci


def exit_code(verdict_frame: pd.DataFrame) -> int:
    """1 if any verdict is ``disagree`` or ``invalid`` (docs/design.md, Exit codes), else 0."""
    return int(bool(verdict_frame["verdict"].isin(FAILING_VERDICTS).any()))


def verdict_summary_text(verdict_frame: pd.DataFrame) -> str:
    """A few lines for the terminal: counts by verdict, then the reason of every row that does not agree —
    one line per library, attack and verdict, the first cell's reason in full and the other eps named."""
    counts = verdict_frame["verdict"].value_counts()
    head = counts_text(counts)
    on_xadv = int((verdict_frame["judged_on"] == "x_adv").sum())
    on_statistics = int((verdict_frame["judged_on"] == "statistics").sum())
    lines = [
        f"Cross-check: {head} ({len(verdict_frame)} verdicts; {on_xadv} judged on x_adv itself, "
        f"{on_statistics} on statistics)."
    ]
    bad = verdict_frame[verdict_frame["verdict"] != "agree"]
    if bad.empty:
        lines.append("Every library agrees with the reference at every attack and eps.")
    for _, group in bad.groupby(["library", "attack_label", "verdict"], sort=False):
        first = group.iloc[0]
        verdict = str(first["verdict"]).upper()
        if len(group) == 1:
            lines.append(f"  {verdict}: {first['reason']}")
            continue
        others = ", ".join(str(e) for e in group["eps_label"].iloc[1:])
        lines.append(f"  {verdict}: {first['reason']} [The same verdict at {others}.]")
    return "\n".join(lines)


def _short_reason(reason: str) -> str:
    """An error for the summary line: without the file paths Python puts in import errors."""
    return re.sub(r" \((?:/|[A-Za-z]:\\)[^)]*\)", "", reason)


def _arbiter_name(library: str) -> str:
    return "the reference" if library == REFERENCE else library_label(library)


def summary_lines(
    verdict_frame: pd.DataFrame,
    findings: Sequence[Finding],
    cells: pd.DataFrame,
    clean: pd.DataFrame,
    eps: float,
    libraries_not_run: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Three sentences for the top of the report: the verdicts, the model's robustness, the sanity checks
    and the libraries that did not run.

    ``cells`` is :func:`reports.summary.cell_summary` of the run (the numbers the curves plot);
    ``libraries_not_run`` is ``Run.libraries_not_run``.
    """
    ran = verdict_frame[verdict_frame["verdict"] != "unavailable"]
    libraries = [lib for lib in ordered_libraries(ran["library"]) if lib != REFERENCE]
    checked = ran[ran["library"] != REFERENCE]
    counts = checked["verdict"].value_counts()
    on_xadv = checked[checked["judged_on"] == "x_adv"]
    names = ", ".join(library_label(lib) for lib in libraries)
    bad = checked[checked["verdict"] != "agree"]
    if checked.empty:
        verdict_line = "No library besides the reference ran, so there is nothing to cross-check."
    elif bad.empty:
        verdict_line = (
            f"All {len(libraries)} libraries ({names}) agree with the reference in all {len(checked)} cells; "
            f"in the {len(on_xadv)} cells judged on x_adv itself, every sample's x_adv equals the one the "
            "library must return, up to float32 round-off."
        )
    else:
        tally = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS if counts.get(v, 0))
        # One phrase per library, attack and verdict: "secml-torch PGD-10 disagrees at 5 eps".
        groups = bad.groupby(["library", "attack_label", "verdict"], sort=False)
        shown = "; ".join(
            f"{library_label(str(lib))} {label}: {verdict}"
            + (f" at {g['eps_label'].iloc[0]}" if len(g) == 1 else f" at {len(g)} eps")
            for (lib, label, verdict), g in groups
        )
        verdict_line = f"Of {len(checked)} cells over {names}: {tally}. Not agreeing: {shown}."

    k, n = int((clean["pred_clean"] == clean["label"]).sum()), len(clean)
    low, high = clopper_pearson_ci(k, n) if n else (math.nan, math.nan)
    robustness = (
        f"Clean accuracy {100 * k / max(n, 1):.1f} % (95 % CI {100 * low:.1f}–{100 * high:.1f} %, n = {n})"
    )
    arbiter = cells[
        cells["library"] == (REFERENCE if (cells["library"] == REFERENCE).any() else cells["library"].iloc[0])
    ]
    at_eps = arbiter[np.isclose(arbiter["eps"], eps, rtol=1e-9, atol=0)]
    if len(at_eps):
        robustness += (
            f"; at eps {eps_label(eps)} {_arbiter_name(str(at_eps['library'].iloc[0]))} leaves "
            + ", ".join(f"{100 * r.acc:.1f} % under {r.attack_label}" for r in at_eps.itertuples())
        )
    top = arbiter[np.isclose(arbiter["eps"], arbiter["eps"].max(), rtol=1e-9, atol=0)]
    if len(top) and not np.isclose(top["eps"].iloc[0], eps, rtol=1e-9, atol=0):
        robustness += f"; at the largest eps {eps_label(float(top['eps'].iloc[0]))}, " + ", ".join(
            f"{100 * r.acc:.1f} % under {r.attack_label}" for r in top.itertuples()
        )
    robustness += "."

    flagged = [f.name for f in findings if f.tested and not f.passed and f.severity != "info"]
    passed = sum(1 for f in findings if f.tested and f.passed)
    untested = sum(1 for f in findings if not f.tested)
    notes = sum(1 for f in findings if f.tested and not f.passed and f.severity == "info")
    sanity = f"Sanity checks: {passed} pass, {len(flagged)} flagged" + (
        f" ({', '.join(flagged)})" if flagged else ""
    )
    sanity += (
        (f", {notes} note(s)" if notes else "")
        + (f", {untested} not tested by this grid" if untested else "")
        + "."
    )
    if libraries_not_run:
        sanity += (
            " Not run: "
            + "; ".join(
                f"{library_label(lib)} ("
                + ("installed but cannot run" if status.get("state") == "unavailable" else "not installed")
                + f": {_short_reason(str(status.get('reason', '')))})"
                for lib, status in libraries_not_run.items()
            )
            + "."
        )
    return [verdict_line, robustness, sanity]
