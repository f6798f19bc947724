"""The paper's statistics, done right: small pure functions, arrays in, numbers out.

Units: confidence intervals and accuracies are *proportions* in [0, 1] (docs/design.md, Contracts); the two
attack-success rates are *percent*, because the paper defines its ASR as ``100 − adversarial accuracy (%)``
and the field's rate is shown beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

ArrayLike = npt.ArrayLike


def _check_counts(k: int, n: int) -> None:
    if n < 1:
        raise ValueError(f"expected n >= 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n, got k={k}, n={n}")


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"expected level in (0, 1), got {level}")


def wald_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Normal-approximation (Wald) interval ``p ± z·sqrt(p(1−p)/n)``, clipped to [0, 1].

    This is what the paper calls its "exact binomial" interval (95.42 % → 94.53–96.31 % at n = 2,117
    is Wald). It collapses to a point at k = 0 and k = n, which is why Clopper-Pearson is shown beside it.
    """
    _check_counts(k, n)
    _check_level(level)
    p = k / n
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    half = z * math.sqrt(p * (1 - p) / n)
    return (max(0.0, p - half), min(1.0, p + half))


def clopper_pearson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval from beta quantiles.

    The bounds at k = 0 (low) and k = n (high) are exactly 0 and 1: the beta quantile formula has a
    zero shape parameter there, so they are set directly rather than left to ``beta.ppf`` (which gives NaN).
    """
    _check_counts(k, n)
    _check_level(level)
    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(sps.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(sps.beta.ppf(1 - tail, k + 1, n - k))
    return (low, high)


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's χ² test on the discordant pair counts ``b`` and ``c``."""

    statistic: float
    pvalue: float
    b: int
    c: int
    correction: bool


def mcnemar(b: int, c: int, correction: bool = True) -> McNemarResult:
    """χ² = (|b − c| − 1)² / (b + c) with Edwards' continuity correction, (b − c)² / (b + c) without; 1 df.

    ``b`` and ``c`` are the discordant counts (e.g. clean-correct & attacked-wrong, and the reverse).
    With the correction the numerator is ``max(0, |b − c| − 1)²`` so b = c gives χ² = 0, p = 1 (the
    textbook formula would give a positive χ² for no difference at all). b = c = 0 gives χ² = 0, p = 1.
    """
    if b < 0 or c < 0:
        raise ValueError(f"expected non-negative discordant counts, got b={b}, c={c}")
    if b + c == 0:
        return McNemarResult(statistic=0.0, pvalue=1.0, b=b, c=c, correction=correction)
    diff = abs(b - c)
    if correction:
        diff = max(0, diff - 1)
    statistic = diff**2 / (b + c)
    pvalue = float(sps.chi2.sf(statistic, df=1))
    return McNemarResult(statistic=float(statistic), pvalue=pvalue, b=b, c=c, correction=correction)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar p-value: two-sided binomial test of ``min(b, c)`` in ``b + c`` trials at p = ½.

    b = c = 0 (no discordant pairs) gives 1.0: nothing contradicts the null.
    """
    if b < 0 or c < 0:
        raise ValueError(f"expected non-negative discordant counts, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(sps.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue)


def discordant(correct_a: ArrayLike, correct_b: ArrayLike) -> tuple[int, int]:
    """``(b, c)``: samples correct under A but not B, and correct under B but not A (paired, same order)."""
    a = np.asarray(correct_a, dtype=bool)
    bb = np.asarray(correct_b, dtype=bool)
    if a.shape != bb.shape:
        raise ValueError(f"expected paired arrays of one shape, got {a.shape} and {bb.shape}")
    return int(np.sum(a & ~bb)), int(np.sum(~a & bb))


def accuracy(labels: ArrayLike, preds: ArrayLike) -> float:
    """Share of predictions equal to the label (a proportion)."""
    y = np.asarray(labels)
    p = np.asarray(preds)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"expected two non-empty arrays of one shape, got {y.shape} and {p.shape}")
    return float(np.mean(y == p))


def attack_success_rate_paper(adv_acc: float) -> float:
    """The paper's ASR: ``100 − adversarial accuracy``, both in percent (Tables 3–6).

    It counts samples the model got wrong *before* the attack as attack successes, so it overstates
    what the attack did whenever clean accuracy is below 100 %.
    """
    if not 0 <= adv_acc <= 100:
        raise ValueError(f"expected adversarial accuracy in percent [0, 100], got {adv_acc}")
    return 100.0 - adv_acc


def attack_success_rate_flips(labels: ArrayLike, pred_clean: ArrayLike, pred_adv: ArrayLike) -> float:
    """The field's ASR, in percent: of the samples classified correctly when clean, the share the attack flips.

    NaN when no sample was correct to begin with (there is nothing to flip).
    """
    y = np.asarray(labels)
    pc = np.asarray(pred_clean)
    pa = np.asarray(pred_adv)
    if not (y.shape == pc.shape == pa.shape):
        raise ValueError(f"expected arrays of one shape, got {y.shape}, {pc.shape}, {pa.shape}")
    correct = pc == y
    if not correct.any():
        return float("nan")
    return float(100.0 * np.mean(pa[correct] != y[correct]))


def mean_confidence(conf: ArrayLike) -> float:
    """Mean max-softmax probability (a proportion); the paper's "average confidence" (Table 4)."""
    values = np.asarray(conf, dtype=float)
    if values.size == 0:
        raise ValueError("expected at least one confidence value, got none")
    return float(np.mean(values))


def per_class_prf(labels: ArrayLike, preds: ArrayLike, classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (scikit-learn), indexed by class name.

    ``labels=range(len(classes))`` is passed explicitly so a class absent from both labels and
    predictions still gets a row (with zeros, ``zero_division=0``) instead of silently vanishing.
    """
    label_ids = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        np.asarray(labels), np.asarray(preds), labels=label_ids, zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support},
        index=pd.Index(list(classes), name="class"),
    )


def confusion(labels: ArrayLike, preds: ArrayLike, classes: Sequence[str]) -> pd.DataFrame:
    """Confusion matrix of counts: rows are true classes, columns predicted classes, every class present."""
    label_ids = list(range(len(classes)))
    matrix = confusion_matrix(np.asarray(labels), np.asarray(preds), labels=label_ids)
    return pd.DataFrame(
        matrix,
        index=pd.Index(list(classes), name="true"),
        columns=pd.Index(list(classes), name="predicted"),
    )
