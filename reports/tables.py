"""The paper's Tables 2–6 for every library, the agreement table and a paper comparison — as DataFrames.

Layout: Tables 2, 5 and 6 have one column block per library (``"<library> <attack>"`` or
``"<library> acc %"``: flat names, no two-level headers). Tables 3 and 4 have one *row* block per library,
because a dozen statistics × four libraries side by side would not be readable. Percentages are
columns ending in ``_pct`` or ``%``; proportions are not scaled. Random-start cells follow
:data:`reports.summary.SEED_POLICY` (lowest seed; seed mean and range shown beside accuracy).

The paper comparison is built in :mod:`reports.paper_comparison`, the numbers the tables share in
:mod:`reports.tablestats`; :mod:`reports.tablefiles` prints and writes the tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from advparity.reports import paper
from advparity.reports.crosscheck import verdicts as compute_verdicts
from advparity.reports.paper_comparison import PAPER_COMPARISON_COLUMNS, paper_comparison
from advparity.reports.sanity import eight_bit_survival_table
from advparity.reports.schema import (
    LibraryNames,
    check_clean,
    check_manifest,
    check_results,
    eps_label,
    library_label,
    naming_libraries,
    ordered_libraries,
)
from advparity.reports.stats import (
    attack_success_rate_flips,
    attack_success_rate_paper,
    confusion,
    per_class_prf,
)
from advparity.reports.summary import cell_summary, lowest_seed, on_target
from advparity.reports.tablestats import _cells_at, _clean_rows, _condition_stats

TABLE_TITLES: dict[str, str] = {
    "agreement": "Agreement with the reference (library × attack × eps)",
    "table2_per_class": "Table 2 — per-class precision / recall / F1, clean vs attacked",
    "table3_asr": "Table 3 — attack success rate, the paper's way (100 − accuracy) and the field's (flips)",
    "table4_accuracy": "Table 4 — accuracy with 95 % CIs, McNemar clean vs attacked, mean confidence",
    "table5_fgsm_sweep": "Table 5 — FGSM eps sweep",
    "table6_pgd_sweep": "Table 6 — PGD eps sweep",
    "paper_comparison": "This run's reference library beside the paper's published numbers",
    "eight_bit_survival": "8-bit survival — attack flips still wrong after rounding x_adv to 1/255",
}


def choose_eps(results: pd.DataFrame, preferred: float = paper.PAPER_EPS) -> float:
    """The eps for Tables 2–4: the paper's 0.1/255 when the run has it, else the grid value nearest in log scale."""
    grid = np.unique(check_results(results)["eps"].to_numpy(dtype=float))
    close = grid[np.isclose(grid, preferred, rtol=1e-9, atol=0)]
    if close.size:
        return float(close[0])
    return float(grid[np.argmin(np.abs(np.log(grid) - math.log(preferred)))])


def table2_per_class(results: pd.DataFrame, classes: Sequence[str], eps: float) -> pd.DataFrame:
    """Per-class precision/recall/F1 (+ an accuracy row) on the attacked samples: clean, then each library × attack."""
    cells = _cells_at(results, eps)
    clean_rows = _clean_rows(cells)
    columns: dict[str, pd.DataFrame] = {
        "clean": per_class_prf(clean_rows["label"], clean_rows["pred_clean"], classes)
    }
    accuracies = {"clean": float(np.mean(clean_rows["label"] == clean_rows["pred_clean"]))}
    for library in ordered_libraries(cells["library"]):
        lib = cells[cells["library"] == library]
        for label, cell in lib.groupby("attack_label", sort=True):
            name = f"{library_label(library)} {label}"
            columns[name] = per_class_prf(cell["label"], cell["pred_adv"], classes)
            accuracies[name] = float(np.mean(cell["label"] == cell["pred_adv"]))
    rows = []
    for cls in classes:
        for metric in ("precision", "recall", "f1"):
            row: dict[str, Any] = {"class": cls, "metric": metric}
            row.update({name: float(prf.loc[cls, metric]) for name, prf in columns.items()})
            rows.append(row)
    rows.append({"class": "overall", "metric": "accuracy", **accuracies})
    return pd.DataFrame(rows)


def table4_accuracy(results: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Per library: clean and each attack at ``eps`` — accuracy, Clopper-Pearson and Wald 95 % CIs, McNemar, confidence.

    McNemar pairs clean and attacked predictions on the same samples: ``b`` = correct when clean and
    wrong after the attack, ``c`` = the reverse; χ² with continuity correction plus the exact p.
    """
    cells = _cells_at(results, eps)
    summary = cell_summary(results)
    rows = []
    for library in ordered_libraries(cells["library"]):
        lib = cells[cells["library"] == library]
        clean_rows = _clean_rows(lib)
        base = {
            "library": library_label(library),
            "condition": "clean",
            "eps_label": "",
            "n_seeds": 1,
            "acc_seed_mean_pct": math.nan,
        }
        rows.append(
            base
            | _condition_stats(
                clean_rows["label"],
                clean_rows["pred_clean"],
                clean_rows["pred_clean"],
                clean_rows["conf_clean"],
                True,
            )
        )
        for label, cell in lib.groupby("attack_label", sort=True):
            info = summary[
                (summary["library"] == library)
                & (summary["attack_label"] == label)
                & np.isclose(summary["eps"], eps, rtol=1e-9, atol=0)
            ].iloc[0]
            rows.append(
                {
                    "library": library_label(library),
                    "condition": label,
                    "eps_label": eps_label(eps),
                    "n_seeds": int(info["n_seeds"]),
                    "acc_seed_mean_pct": 100 * float(info["acc_seed_mean"]),
                }
                | _condition_stats(
                    cell["label"], cell["pred_clean"], cell["pred_adv"], cell["conf_adv"], False
                )
            )
    return pd.DataFrame(rows)


def table3_asr(results: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Per library × attack at ``eps``: accuracy, the paper's ASR (100 − acc) and the field's ASR (share of correct samples flipped)."""
    cells = _cells_at(results, eps)
    rows = []
    for library in ordered_libraries(cells["library"]):
        lib = cells[cells["library"] == library]
        for label, cell in lib.groupby("attack_label", sort=True):
            acc_pct = 100 * float(np.mean(cell["pred_adv"] == cell["label"]))
            correct_clean = cell["pred_clean"] == cell["label"]
            rows.append(
                {
                    "library": library_label(library),
                    "attack": label,
                    "eps_label": eps_label(eps),
                    "n": len(cell),
                    "acc_pct": acc_pct,
                    "asr_paper_pct": attack_success_rate_paper(acc_pct),
                    "n_correct_clean": int(correct_clean.sum()),
                    "n_flipped": int((correct_clean & (cell["pred_adv"] != cell["label"])).sum()),
                    "asr_flips_pct": attack_success_rate_flips(
                        cell["label"], cell["pred_clean"], cell["pred_adv"]
                    ),
                    # A targeted attack's own success: predicted as its target (NaN untargeted).
                    "on_target_pct": 100 * on_target(cell),
                }
            )
    return pd.DataFrame(rows)


def sweep_table(results: pd.DataFrame, attack: str) -> pd.DataFrame:
    """Tables 5/6: one row per attack variant × eps; per library ``acc %`` and ``flips %``; the paper's accuracy beside.

    ``<library> flips %`` is the field's ASR (share of clean-correct samples flipped); the paper's ASR is
    100 − ``acc %``. ``<library> seed range %`` appears for random-start PGD: min–max accuracy over seeds.
    """
    frame = lowest_seed(results)
    frame = frame[frame["attack"] == attack]
    if frame.empty:
        return pd.DataFrame(columns=["attack", "eps_label", "eps", "paper acc %"])
    summary = cell_summary(results)
    summary = summary[summary["attack"] == attack]
    libraries = ordered_libraries(frame["library"])
    rows = []
    for (label, eps), group in frame.groupby(["attack_label", "eps"], sort=True):
        published = paper.sweep_accuracy_pct(attack, float(eps))
        row: dict[str, Any] = {
            "attack": label,
            "eps_label": eps_label(float(eps)),
            "eps": float(eps),
            "paper acc %": math.nan if published is None else published,
        }
        for library in libraries:
            cell = group[group["library"] == library]
            name = library_label(library)
            if cell.empty:
                row[f"{name} acc %"] = math.nan
                row[f"{name} flips %"] = math.nan
                continue
            row[f"{name} acc %"] = 100 * float(np.mean(cell["pred_adv"] == cell["label"]))
            row[f"{name} flips %"] = attack_success_rate_flips(
                cell["label"], cell["pred_clean"], cell["pred_adv"]
            )
            info = summary[
                (summary["library"] == library) & (summary["attack_label"] == label) & (summary["eps"] == eps)
            ]
            if len(info) and int(info["n_seeds"].iloc[0]) > 1:
                row[f"{name} seed range %"] = (
                    f"{100 * info['acc_seed_min'].iloc[0]:.1f}–{100 * info['acc_seed_max'].iloc[0]:.1f}"
                )
        rows.append(row)
    return pd.DataFrame(rows)


def agreement_table(verdict_frame: pd.DataFrame) -> pd.DataFrame:
    """The verdicts as a table a person reads: the x_adv evidence first, then predictions and accuracy
    (reported, not the criterion), percentages, L∞ in units of 1/255, the reason last."""
    v = verdict_frame
    return pd.DataFrame(
        {
            "library": v["library"].map(library_label),
            "attack": v["attack_label"],
            "eps": v["eps_label"],
            "seeds": v["seeds"],
            "verdict": v["verdict"],
            "judged on": v["judged_on"],
            "x_adv differ": v["samples_xadv_differ"],
            "near-zero flips": v["samples_near_zero_flips"],
            "max pixels differ": v["max_pixels_differ"],
            "acc %": 100 * v["acc_library"],
            "reference acc %": 100 * v["acc_reference"],
            "Δacc pp": v["delta_acc_pp"],
            "predictions differ": v["n_differ"],
            "n": v["n"],
            "max linf_to_ref ×255": 255 * v["max_linf_to_ref"],
            "fwd/sample": v["forward_passes"],
            "fwd declared": v["forward_passes_expected"],
            "bwd/sample": v["backward_passes"],
            "bwd declared": v["backward_passes_expected"],
            "seconds": v["seconds"],
            "McNemar p": v["pvalue"],
            "detectable shift pp": v["detectable_shift_pp"],
            "ref seed spread pp": v["ref_seed_spread_pp"],
            "reason": v["reason"],
        }
    )


def build_tables(
    results: pd.DataFrame,
    clean: pd.DataFrame,
    manifest: Mapping[str, Any],
    eps: float | None = None,
    verdict_frame: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table, keyed as in :data:`TABLE_TITLES`. ``eps`` for Tables 2–4 defaults to :func:`choose_eps`."""
    with naming_libraries(LibraryNames.from_manifest(manifest)):
        frame = check_results(results)
        check_clean(clean)
        classes = list(check_manifest(manifest)["classes"])
        chosen = choose_eps(frame) if eps is None else float(eps)
        v = compute_verdicts(frame) if verdict_frame is None else verdict_frame
        return {
            "agreement": agreement_table(v),
            "table2_per_class": table2_per_class(frame, classes, chosen),
            "table3_asr": table3_asr(frame, chosen),
            "table4_accuracy": table4_accuracy(frame, chosen),
            "table5_fgsm_sweep": sweep_table(frame, "fgsm"),
            "table6_pgd_sweep": sweep_table(frame, "pgd"),
            # Only for the paper's task: another set of classes is not comparable with its numbers.
            "paper_comparison": paper_comparison(frame, clean, classes)
            if paper.applies_to(classes)
            else pd.DataFrame(columns=PAPER_COMPARISON_COLUMNS),
            "eight_bit_survival": eight_bit_survival_table(frame).rename(columns={"attack_label": "attack"}),
        }


def confusion_at(results: pd.DataFrame, classes: Sequence[str], eps: float) -> dict[str, pd.DataFrame]:
    """Confusion matrices at ``eps`` keyed ``"clean"`` and ``"<library> <attack>"`` (lowest seed)."""
    cells = _cells_at(results, eps)
    clean_rows = _clean_rows(cells)
    out = {"clean": confusion(clean_rows["label"], clean_rows["pred_clean"], classes)}
    for library in ordered_libraries(cells["library"]):
        for label, cell in cells[cells["library"] == library].groupby("attack_label", sort=True):
            out[f"{library_label(library)} {label}"] = confusion(cell["label"], cell["pred_adv"], classes)
    return out
