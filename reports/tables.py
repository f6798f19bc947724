"""The paper's Tables 2–6 for every library, the agreement table and a paper comparison — as DataFrames.

Layout: Tables 2, 5 and 6 have one column block per library (``"<library> <attack>"`` or
``"<library> acc %"``: flat names, no two-level headers). Tables 3 and 4 have one *row* block per library,
because a dozen statistics × four libraries side by side would not be readable. Percentages are
columns ending in ``_pct`` or ``%``; proportions are not scaled. Random-start cells follow
:data:`reports.summary.SEED_POLICY` (lowest seed; seed mean and range shown beside accuracy).

Writers: :func:`write_tables` writes each table as CSV, Markdown (own formatter — ``DataFrame.to_markdown``
needs ``tabulate``) and JSON records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from advparity.reports import paper
from advparity.reports.crosscheck import verdicts as compute_verdicts
from advparity.reports.sanity import eight_bit_survival_table
from advparity.reports.schema import (
    REFERENCE,
    check_clean,
    check_manifest,
    check_results,
    eps_label,
    library_label,
    ordered_libraries,
)
from advparity.reports.stats import (
    attack_success_rate_flips,
    attack_success_rate_paper,
    clopper_pearson_ci,
    confusion,
    discordant,
    mcnemar,
    mcnemar_exact,
    mean_confidence,
    per_class_prf,
    wald_ci,
)
from advparity.reports.summary import cell_summary, lowest_seed

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


def _pct(x: float) -> float:
    return 100.0 * x if x == x else math.nan


def _cells_at(results: pd.DataFrame, eps: float) -> pd.DataFrame:
    frame = lowest_seed(results)
    return frame[np.isclose(frame["eps"], eps, rtol=1e-9, atol=0)]


def _clean_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """The attacked samples' clean label, prediction and confidence, one row per sample."""
    return cells.drop_duplicates("sample")[["sample", "label", "pred_clean", "conf_clean"]].sort_values(
        "sample"
    )


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


def _condition_stats(
    labels: pd.Series, pred_clean: pd.Series, pred: pd.Series, conf: pd.Series, is_clean: bool
) -> dict[str, Any]:
    """Table 4's numbers for one set of predictions; McNemar pairs them with the clean predictions."""
    n = len(labels)
    correct = (pred == labels).to_numpy()
    k = int(correct.sum())
    cp = clopper_pearson_ci(k, n)
    wd = wald_ci(k, n)
    out: dict[str, Any] = {
        "n": n,
        "k": k,
        "acc_pct": 100 * k / n,
        "cp_low_pct": 100 * cp[0],
        "cp_high_pct": 100 * cp[1],
        "wald_low_pct": 100 * wd[0],
        "wald_high_pct": 100 * wd[1],
        "mcnemar_b": math.nan,
        "mcnemar_c": math.nan,
        "mcnemar_chi2": math.nan,
        "mcnemar_p": math.nan,
        "mcnemar_exact_p": math.nan,
        "mean_conf_pct": 100 * mean_confidence(conf),
    }
    if not is_clean:
        b, c = discordant((pred_clean == labels).to_numpy(), correct)
        test = mcnemar(b, c, correction=True)
        out.update(
            mcnemar_b=b,
            mcnemar_c=c,
            mcnemar_chi2=test.statistic,
            mcnemar_p=test.pvalue,
            mcnemar_exact_p=mcnemar_exact(b, c),
        )
    return out


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


def build_tables(
    results: pd.DataFrame,
    clean: pd.DataFrame,
    manifest: Mapping[str, Any],
    eps: float | None = None,
    verdict_frame: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table, keyed as in :data:`TABLE_TITLES`. ``eps`` for Tables 2–4 defaults to :func:`choose_eps`."""
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


def format_value(value: Any) -> str:
    """How a cell is printed in Markdown and HTML: 4 significant digits, blank for NaN, p-values in e-notation."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return ""
        if x.is_integer() and abs(x) < 1e6:
            return str(int(x))
        return f"{x:.4g}"
    return str(value)


def to_markdown(frame: pd.DataFrame, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped), with an optional ``## title``."""
    header = [str(c) for c in frame.columns]
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in frame.itertuples(index=False):
        lines.append(
            "| " + " | ".join(format_value(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |"
        )
    return "\n".join(lines) + "\n"


def write_tables(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each table as ``<name>.csv``, ``<name>.md`` and ``<name>.json`` (records) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in tables.items():
        csv_path = out / f"{name}.csv"
        frame.to_csv(csv_path, index=False)
        md_path = out / f"{name}.md"
        md_path.write_text(to_markdown(frame, TABLE_TITLES.get(name, name)), encoding="utf-8")
        json_path = out / f"{name}.json"
        json_path.write_text(frame.to_json(orient="records", indent=2, force_ascii=False), encoding="utf-8")
        paths += [csv_path, md_path, json_path]
    return paths
