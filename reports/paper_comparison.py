"""This run's reference library beside the paper's published numbers: the ``paper_comparison`` table.

One of the tables :func:`reports.tables.build_tables` returns (only for the paper's classes); the
published numbers themselves are in :mod:`reports.paper`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from advparity.reports import paper
from advparity.reports.schema import REFERENCE, check_clean, eps_label, ordered_libraries
from advparity.reports.stats import mean_confidence, per_class_prf, wald_ci
from advparity.reports.summary import cell_summary, lowest_seed
from advparity.reports.tablestats import _clean_rows, _condition_stats


def _paper_pgd_label(cells: pd.DataFrame) -> str | None:
    """The PGD variant to set beside the paper's: 10 steps with random start if it ran, else the closest."""
    pgd = cells[cells["attack"] == "pgd"]
    if pgd.empty:
        return None
    for wanted in (
        (pgd["steps"] == 10) & pgd["random_start"],
        pgd["random_start"],
        pgd["steps"] == 10,
        pd.Series(True, index=pgd.index),
    ):
        if wanted.any():
            return str(pgd.loc[wanted, "attack_label"].iloc[0])
    return None


PAPER_COMPARISON_COLUMNS: list[str] = [
    "quantity",
    "condition",
    "eps",
    "class",
    "paper",
    "this run",
    "difference",
    "note",
]


def paper_comparison(results: pd.DataFrame, clean: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """The paper's published numbers beside the reference library's (lowest seed); NaN where this run lacks the eps."""
    frame = lowest_seed(results)
    ref = frame[frame["library"] == REFERENCE]
    if ref.empty:
        ref = frame[frame["library"] == ordered_libraries(frame["library"])[0]]
    summary = cell_summary(results)
    summary = summary[summary["library"] == ref["library"].iloc[0]]
    pgd_label = _paper_pgd_label(summary)
    labels_for = {"fgsm": "FGSM", "pgd": pgd_label}
    n_run = int(ref["sample"].nunique())
    rows: list[dict[str, Any]] = []

    def add(
        quantity: str, condition: str, eps: float | None, cls: str, published: float, ours: float, note: str
    ) -> None:
        rows.append(
            {
                "quantity": quantity,
                "condition": condition,
                "eps": "" if eps is None else eps_label(eps),
                "class": cls,
                "paper": published,
                "this run": ours,
                "difference": ours - published if ours == ours else math.nan,
                "note": note,
            }
        )

    def cell_at(attack: str, eps: float) -> pd.DataFrame:
        label = labels_for.get(attack)
        if label is None:
            return ref.iloc[0:0]
        return ref[(ref["attack_label"] == label) & np.isclose(ref["eps"], eps, rtol=1e-9, atol=0)]

    check_clean(clean)
    clean_acc = 100 * float(np.mean(clean["label"] == clean["pred_clean"]))
    add(
        "accuracy %",
        "clean",
        None,
        "",
        paper.CLEAN_ACCURACY_PCT,
        clean_acc,
        f"whole test split: paper n = {paper.N_TEST}, this run n = {len(clean)}",
    )
    clean_attacked = _clean_rows(ref)
    clean_ci = wald_ci(
        int((clean_attacked["label"] == clean_attacked["pred_clean"]).sum()), len(clean_attacked)
    )
    add(
        "Wald 95 % CI low %",
        "clean",
        None,
        "",
        paper.CI_PCT["clean"][0],
        100 * clean_ci[0],
        f"attacked samples, n = {n_run}",
    )
    add(
        "Wald 95 % CI high %",
        "clean",
        None,
        "",
        paper.CI_PCT["clean"][1],
        100 * clean_ci[1],
        f"attacked samples, n = {n_run}",
    )
    add(
        "mean confidence %",
        "clean",
        None,
        "",
        paper.MEAN_CONFIDENCE_PCT["clean"],
        100 * mean_confidence(clean["conf_clean"]),
        "whole test split",
    )
    eps0 = paper.PAPER_EPS
    missing = "not in this run's grid"
    for attack, published_acc in (("fgsm", paper.FGSM_ACCURACY_PCT), ("pgd", paper.PGD_ACCURACY_PCT)):
        cell = cell_at(attack, eps0)
        condition = labels_for.get(attack) or attack.upper()
        if cell.empty:
            for quantity, value in (
                ("accuracy %", published_acc),
                ("Wald 95 % CI low %", paper.CI_PCT[attack][0]),
                ("Wald 95 % CI high %", paper.CI_PCT[attack][1]),
                ("ASR (100 − acc) %", paper.ASR_PCT[attack]),
                ("mean confidence %", paper.MEAN_CONFIDENCE_PCT[attack]),
                ("McNemar χ² clean vs attacked", paper.MCNEMAR_CHI2[attack]),
            ):
                add(quantity, condition, eps0, "", value, math.nan, missing)
            continue
        stats = _condition_stats(cell["label"], cell["pred_clean"], cell["pred_adv"], cell["conf_adv"], False)
        note = f"n = {stats['n']}"
        add("accuracy %", condition, eps0, "", published_acc, stats["acc_pct"], note)
        add("Wald 95 % CI low %", condition, eps0, "", paper.CI_PCT[attack][0], stats["wald_low_pct"], note)
        add("Wald 95 % CI high %", condition, eps0, "", paper.CI_PCT[attack][1], stats["wald_high_pct"], note)
        add("ASR (100 − acc) %", condition, eps0, "", paper.ASR_PCT[attack], 100 - stats["acc_pct"], note)
        add(
            "mean confidence %",
            condition,
            eps0,
            "",
            paper.MEAN_CONFIDENCE_PCT[attack],
            stats["mean_conf_pct"],
            note,
        )
        add(
            "McNemar χ² clean vs attacked",
            condition,
            eps0,
            "",
            paper.MCNEMAR_CHI2[attack],
            stats["mcnemar_chi2"],
            f"χ² grows with n: paper n = {paper.N_TEST}, this run n = {stats['n']}",
        )
    # Table 2, per class.
    clean_prf = per_class_prf(clean_attacked["label"], clean_attacked["pred_clean"], classes)
    attacked_prf = {}
    for attack in ("fgsm", "pgd"):
        cell = cell_at(attack, eps0)
        attacked_prf[attack] = None if cell.empty else per_class_prf(cell["label"], cell["pred_adv"], classes)
    for cls, by_condition in paper.TABLE2.items():
        if cls not in classes:
            continue
        for condition, prf in by_condition.items():
            ours = clean_prf if condition == "clean" else attacked_prf[condition]
            shown = "clean" if condition == "clean" else (labels_for.get(condition) or condition.upper())
            eps = None if condition == "clean" else eps0
            for metric in ("precision", "recall", "f1"):
                value = math.nan if ours is None else float(ours.loc[cls, metric])
                add(
                    metric,
                    shown,
                    eps,
                    cls,
                    getattr(prf, metric),
                    value,
                    "Table 2" if ours is not None else missing,
                )
    # Tables 5 and 6: every eps the paper published.
    for attack, table, source in (
        ("fgsm", paper.TABLE5_FGSM_ACCURACY_PCT, "Table 5"),
        ("pgd", paper.TABLE6_PGD_ACCURACY_PCT, "Table 6"),
    ):
        for level, published_acc in table.items():
            cell = cell_at(attack, level / 255)
            ours = math.nan if cell.empty else 100 * float(np.mean(cell["pred_adv"] == cell["label"]))
            add(
                "accuracy %",
                labels_for.get(attack) or attack.upper(),
                level / 255,
                "",
                published_acc,
                ours,
                source if not cell.empty else f"{source}; {missing}",
            )
    return pd.DataFrame(rows)
