"""The numbers the report's tables share: the attacked cells at one eps, their clean rows, and Table 4's
statistics for one set of predictions.

Package-private helpers of :mod:`reports.tables` and :mod:`reports.paper_comparison` (both build on them,
so they live apart from either).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from advparity.reports.stats import (
    clopper_pearson_ci,
    discordant,
    mcnemar,
    mcnemar_exact,
    mean_confidence,
    wald_ci,
)
from advparity.reports.summary import lowest_seed


def _cells_at(results: pd.DataFrame, eps: float) -> pd.DataFrame:
    frame = lowest_seed(results)
    return frame[np.isclose(frame["eps"], eps, rtol=1e-9, atol=0)]


def _clean_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """The attacked samples' clean label, prediction and confidence, one row per sample."""
    return cells.drop_duplicates("sample")[["sample", "label", "pred_clean", "conf_clean"]].sort_values(
        "sample"
    )


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
