"""Cross-check verdicts: does each library compute the attack it claims? (docs/design.md, Cross-check rules)

One verdict per library × attack variant × eps, the reference included as its own row. The evidence
is x_adv itself: for every call the runner computed the exact x_adv the library must return — the
attack's reference run with the loss reduction the library's offer declares and from the very start
point the library draws (``adapters/expected.py``) — and recorded, per sample, how many pixels of the
library's x_adv differ from it beyond float32 round-off. ``reports/evidence.py`` gathers a cell's facts;
the verdict is the first rule of the table in ``reports/rules.py`` whose condition holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from advparity.reports import evidence as cell_evidence
from advparity.reports.evidence import (
    FLIP_BUDGET_SHARE,
    MEANINGFUL_SHIFT_PP,
    MISMATCH_KINDS,
    NEAR_ZERO_GRADIENT,
    PASS_TOLERANCE,
    STATISTICAL_ALPHA,
    CellEvidence,
    cell_name,
    classify_samples,
    count_statistical_tests,
    flip_budget,
    pair,
    smallest_detectable_shift,
)
from advparity.reports.load import Run
from advparity.reports.rules import NOTE_TEXTS, RULE_TEXTS, VERDICTS, judge
from advparity.reports.schema import (
    ATTACK_ORDER,
    REFERENCE,
    check_results,
    eps_label,
    library_sort_key,
    naming_libraries,
    ordered_libraries,
)

__all__ = [
    "FAILING_VERDICTS",
    "FLIP_BUDGET_SHARE",
    "GROUP_KEYS",
    "MEANINGFUL_SHIFT_PP",
    "MISMATCH_KINDS",
    "NEAR_ZERO_GRADIENT",
    "PASS_TOLERANCE",
    "RULES",
    "STATISTICAL_ALPHA",
    "VERDICTS",
    "classify_samples",
    "counts_text",
    "flip_budget",
    "mismatches",
    "run_verdicts",
    "smallest_detectable_shift",
    "verdicts",
]

# What the report prints as the rules: the table's sentences (reports/rules.py), then its notes'.
RULES: tuple[str, ...] = RULE_TEXTS + NOTE_TEXTS

FAILING_VERDICTS: tuple[str, ...] = ("disagree", "invalid")


def counts_text(counts: Mapping[str, int]) -> str:
    """``12 agree, 0 inconclusive, 0 disagree, 0 invalid`` — and ``, 2 unavailable`` only when there are any."""
    return ", ".join(
        f"{int(counts.get(v, 0))} {v}" for v in VERDICTS if v != "unavailable" or counts.get(v, 0)
    )


# One verdict per attack variant (its label tells the variants apart: the attack's definition names
# them) and eps.
GROUP_KEYS: list[str] = ["attack", "attack_label", "eps"]


def _row(e: CellEvidence, departures: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    verdict, reason, _rule = judge(e, departures)
    return {
        "library": e.library,
        "attack": e.attack,
        "attack_label": e.label,
        "eps": e.eps,
        "eps_label": eps_label(e.eps, e.norm),
        "norm": e.norm,
        "steps": e.steps,
        "random_start": e.random_start,
        "seeds": e.seeds,
        "verdict": verdict,
        "reason": reason,
        **e.columns,
    }


def verdicts(
    results: pd.DataFrame,
    unavailable: Mapping[str, str] | None = None,
    departures: Mapping[tuple[str, str], str] | None = None,
) -> pd.DataFrame:
    """One verdict row per library × attack variant × eps, decided by the rules of ``reports/rules.py``.

    ``unavailable`` maps libraries that are installed but could not run to their error
    (``Run.unavailable``): each gets the verdict ``unavailable`` at every attack and eps of the run,
    with the error as the reason — not a failure of the library's arithmetic, and not silence either.
    ``departures`` maps (library, attack) to how the library's adapter documents that its attack departs
    from the definition (``Run.departures``, recorded in the run's manifest): a disagreeing cell's
    reason quotes it, and it stays a disagreement.

    Columns: ``library, attack, attack_label, eps, eps_label, steps, random_start, seeds, verdict``
    (one of :data:`VERDICTS`), ``reason, judged_on`` (``x_adv`` or ``statistics``),
    ``samples_xadv_differ, samples_near_zero_flips, max_pixels_differ`` (the x_adv evidence),
    ``acc_library, acc_reference`` (proportions, mean over seeds), ``delta_acc_pp, n_differ, n``
    (predictions that differ from the reference's own, rows compared: samples × seeds),
    ``max_linf_to_ref`` (to the expected x_adv), ``forward_passes, backward_passes`` and their
    ``_expected`` (per sample), ``seconds`` (per cell, mean over seeds), ``pvalue`` (exact McNemar
    over every sample-seed pair against the reference's same seed, uncorrected: information for exact
    cells, the criterion for statistical ones), ``detectable_shift_pp`` (statistical cells),
    ``ref_seed_spread_pp`` (random start: how much the reference's accuracy moves between its seeds).
    """
    frame = check_results(results)
    n_tests = count_statistical_tests(frame, GROUP_KEYS)
    departures = departures or {}
    rows = []
    for key, cell in frame.groupby(GROUP_KEYS, sort=False):
        ref = cell[cell["library"] == REFERENCE]
        for library in ordered_libraries(cell["library"]):
            lib = cell[cell["library"] == library]
            rows.append(_row(cell_evidence.gather(library, key, lib, ref, n_tests), departures))
        for library, error in (unavailable or {}).items():
            rows.append(_row(cell_evidence.unavailable(library, key, cell, error), departures))
    out = pd.DataFrame(rows)
    order = (
        out["library"].map(lambda s: library_sort_key(s)[0]),
        out["attack"].map(lambda a: ATTACK_ORDER.index(a) if a in ATTACK_ORDER else len(ATTACK_ORDER)),
    )
    out = (
        out.assign(_lib=order[0], _att=order[1])
        .sort_values(["_lib", "library", "_att", "attack", "random_start", "steps", "eps"])
        .drop(columns=["_lib", "_att"])
        .reset_index(drop=True)
    )
    return out


def run_verdicts(run: Run) -> pd.DataFrame:
    """:func:`verdicts` of a loaded run, with its libraries that were installed but could not run.

    A run holding a library's cell without the reference's is unfinished, not a library's fault: that is
    a ``ValueError`` saying how to finish it, rather than an "invalid" verdict blaming the library.
    """
    with naming_libraries(run.libraries):  # the reasons name libraries
        _check_reference_cells(run)
        return verdicts(run.results, run.unavailable, run.departures)


def _check_reference_cells(run: Run) -> None:
    keys = GROUP_KEYS
    cells = check_results(run.results)[["library", *keys, "norm"]].drop_duplicates()
    judged = set(cells.loc[cells["library"] == REFERENCE, keys].itertuples(index=False, name=None))
    orphans = [
        c for c in cells.itertuples(index=False) if c.library != REFERENCE and tuple(c[1:-1]) not in judged
    ]
    if orphans:
        first = orphans[0]
        cell = cell_name(first.library, first.attack_label, first.eps, first.norm)
        more = f" and {len(orphans) - 1} more cell(s)" if len(orphans) > 1 else ""
        raise ValueError(
            f"{run.run_dir} is unfinished: it holds {cell}{more} but not the reference's cell for it, the "
            "arbiter every library is judged against; run the reference into the same folder (the same `run` "
            "command with --libraries reference, or without --libraries) and report again"
        )


def mismatches(
    results: pd.DataFrame,
    library: str,
    attack: str,
    eps: float,
    random_start: bool | None = None,
    steps: int | None = None,
    norm: str | None = None,
) -> pd.DataFrame:
    """The samples where ``library``'s x_adv differs from the expected one, or its prediction from the
    reference's own.

    Columns: ``random_start, steps, seed, sample, label, pred_reference, pred_library, kind`` (see
    ``MISMATCH_KINDS``), ``pixels_differ, pixels_differ_near_zero, pixels_total, linf_to_ref``
    (to the expected x_adv), ``linf_to_ref_over_eps, zero_grad``. ``random_start``/``steps`` narrow
    the cells when several variants of the attack ran at that eps, ``norm`` when it ran in both norms.
    """
    frame = check_results(results)
    mask = (frame["attack"] == attack) & np.isclose(frame["eps"], eps, rtol=1e-9, atol=0)
    if norm is not None:
        mask &= frame["norm"] == norm
    if random_start is not None:
        mask &= frame["random_start"] == random_start
    if steps is not None:
        mask &= frame["steps"] == steps
    cells = frame[mask]
    lib = cells[cells["library"] == library]
    if lib.empty:
        raise ValueError(
            f"expected rows for library {library!r}, attack {attack!r}, eps {eps_label(eps)}; "
            f"libraries there: {ordered_libraries(cells['library'])}"
        )
    parts = []
    for (rs, st), sub in lib.groupby(["random_start", "steps"]):
        ref = cells[(cells["library"] == REFERENCE) & (cells["random_start"] == rs) & (cells["steps"] == st)]
        paired = pair(sub, ref, not bool(sub["seeded"].iloc[0])).reset_index(drop=True)
        kinds = classify_samples(paired)
        keep = (paired["pred_adv"] != paired["pred_ref"]) | ((kinds != "same") & (kinds != "not compared"))
        parts.append(paired[keep].assign(kind=kinds[keep.to_numpy()]))
    differ = pd.concat(parts, ignore_index=True)
    out = pd.DataFrame(
        {
            "random_start": differ["random_start"].astype(bool),
            "steps": differ["steps"].astype(int),
            "seed": differ["seed"].astype(int),
            "sample": differ["sample"].astype(int),
            "label": differ["label"].astype(int),
            "pred_reference": differ["pred_ref"],
            "pred_library": differ["pred_adv"].astype(int),
            "kind": differ["kind"].astype(str),
            "pixels_differ": differ["pixels_differ"],
            "pixels_differ_near_zero": differ["pixels_differ_near_zero"],
            "pixels_total": differ["pixels_total"],
            "linf_to_ref": differ["linf_to_ref"].astype(float),
            "linf_to_ref_over_eps": differ["linf_to_ref"].astype(float) / eps,
            "zero_grad": differ["zero_grad"],
        }
    )
    return out.sort_values(["random_start", "steps", "seed", "sample"]).reset_index(drop=True)
