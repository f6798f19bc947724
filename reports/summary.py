"""Per-cell accuracy summaries shared by the tables, figures and sanity checks — and the seed policy.

**Seed policy.** Random-start PGD runs several seeds. Every statistic in the robustness tables
(accuracy and its CIs, McNemar clean vs attacked, P/R/F1, confusion matrices, curves) is computed on the
cell of the *lowest seed* — one real attack run, so each interval and test is about one set of
predictions, as in the paper. Averaging predictions over seeds would give a number no single attack
produced, and pooling seeds as if they were more images would shrink the CIs dishonestly. The mean,
min and max accuracy over seeds are shown beside it (``acc_seed_mean/min/max``); the seed-to-seed
spread is judged in the cross-check verdicts.
"""

from __future__ import annotations

import pandas as pd
from advparity.reports.schema import ATTACK_ORDER, check_results, eps_label, library_sort_key
from advparity.reports.stats import clopper_pearson_ci, mean_confidence, wald_ci

SEED_POLICY = (
    "Random-start PGD: statistics are computed on the lowest seed's cell (one real attack run); the mean, "
    "min and max accuracy over seeds are shown beside it. The seed-to-seed spread — how much the random "
    "start alone moves accuracy — is reported beside the verdicts as information; the verdicts compare "
    "each library's x_adv with the one it must return from its own start."
)

CELL_KEYS: list[str] = ["library", "attack", "norm", "steps", "random_start", "eps"]
SUMMARY_COLUMNS: list[str] = [
    *CELL_KEYS[:5],
    "attack_label",
    "eps",
    "eps_label",
    "seed",
    "n",
    "k",
    "acc",
    "cp_low",
    "cp_high",
    "wald_low",
    "wald_high",
    "mean_conf",
    "n_seeds",
    "acc_seed_mean",
    "acc_seed_min",
    "acc_seed_max",
    "targeted",
    "on_target",
]


def lowest_seed(results: pd.DataFrame) -> pd.DataFrame:
    """Only the rows of each cell's lowest seed (the seed policy above), without cells that produced no image.

    A library that raised has ``pred_adv = -1`` on every row: its cell is invalid in the verdicts and
    left out of the robustness numbers, where a 0 % accuracy would read as a very strong attack.
    """
    frame = check_results(results)  # with its attack_label column
    frame = frame[frame["pred_adv"] >= 0]
    first = frame.groupby(CELL_KEYS)["seed"].transform("min")
    return frame[frame["seed"] == first]


def on_target(cell: pd.DataFrame) -> float:
    """A targeted cell's success: the share of its rows predicted as their target (NaN untargeted)."""
    if not (cell["target"] >= 0).any():
        return float("nan")
    return float((cell["pred_adv"] == cell["target"]).mean())


def cell_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per library × attack variant × eps: accuracy on the lowest seed with both 95 % CIs.

    Columns: ``library, attack, attack_label, norm, steps, random_start, eps, eps_label, seed, n, k, acc,
    cp_low, cp_high, wald_low, wald_high, mean_conf, n_seeds, acc_seed_mean, acc_seed_min,
    acc_seed_max, targeted, on_target`` (accuracies and bounds as proportions; ``on_target``: a targeted
    attack's share of samples predicted as their target).
    """
    frame = check_results(results)  # with its attack_label column
    frame = frame[frame["pred_adv"] >= 0]
    frame = frame.assign(correct=frame["pred_adv"] == frame["label"])
    per_seed = (
        frame.groupby([*CELL_KEYS, "attack_label", "seed"])["correct"].mean().rename("acc_seed").reset_index()
    )
    rows = []
    for key, cell in lowest_seed(frame).groupby([*CELL_KEYS, "attack_label"]):
        library, attack, norm, steps, random_start, eps, label = key
        n = len(cell)
        k = int(cell["correct"].sum())
        cp = clopper_pearson_ci(k, n)
        wd = wald_ci(k, n)
        seeds = per_seed[
            (per_seed["library"] == library) & (per_seed["attack_label"] == label) & (per_seed["eps"] == eps)
        ]["acc_seed"]
        rows.append(
            {
                "library": library,
                "attack": attack,
                "attack_label": label,
                "norm": str(norm),
                "steps": int(steps),
                "random_start": bool(random_start),
                "eps": float(eps),
                "eps_label": eps_label(float(eps), str(norm)),
                "seed": int(cell["seed"].iloc[0]),
                "n": n,
                "k": k,
                "acc": k / n,
                "cp_low": cp[0],
                "cp_high": cp[1],
                "wald_low": wd[0],
                "wald_high": wd[1],
                "mean_conf": mean_confidence(cell["conf_adv"]),
                "n_seeds": len(seeds),
                "acc_seed_mean": float(seeds.mean()),
                "acc_seed_min": float(seeds.min()),
                "acc_seed_max": float(seeds.max()),
                # A targeted attack's success: the share predicted as their target (NaN untargeted).
                "targeted": bool((cell["target"] >= 0).any()),
                "on_target": on_target(cell),
            }
        )
    if not rows:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    return sort_cells(pd.DataFrame(rows))


def sort_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows by library (reference first), attack (FGSM, PGD), variant and eps."""
    return (
        frame.assign(
            _lib=frame["library"].map(lambda s: library_sort_key(s)[0]),
            _att=frame["attack"].map(lambda a: ATTACK_ORDER.index(a) if a in ATTACK_ORDER else 99),
        )
        .sort_values(["_lib", "library", "_att", "attack_label", "eps"])
        .drop(columns=["_lib", "_att"])
        .reset_index(drop=True)
    )
