"""Statistics against scipy and against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from advparity.reports import paper
from advparity.reports.stats import (
    accuracy,
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
from scipy import stats as sps
from sklearn.metrics import f1_score

Z95 = 1.959963984540054  # Φ⁻¹(0.975)


def test_wald_by_hand() -> None:
    # p = 0.95, SE = sqrt(0.95 · 0.05 / 100) = 0.0217945
    low, high = wald_ci(95, 100)
    half = Z95 * math.sqrt(0.95 * 0.05 / 100)
    assert low == pytest.approx(0.95 - half, abs=1e-12)
    assert high == pytest.approx(0.95 + half, abs=1e-12)
    assert (low, high) == pytest.approx((0.907284, 0.992716), abs=1e-6)


def test_wald_reproduces_the_papers_intervals() -> None:
    # The paper's "exact binomial" CIs are Wald: 95.42 % and 59.28 % of n = 2,117.
    for acc, (low, high) in ((95.42, paper.CI_PCT["clean"]), (59.28, paper.CI_PCT["fgsm"])):
        k = round(acc / 100 * paper.N_TEST)
        ci = wald_ci(k, paper.N_TEST)
        assert 100 * ci[0] == pytest.approx(low, abs=0.01)
        assert 100 * ci[1] == pytest.approx(high, abs=0.01)


def test_wald_at_the_edges_collapses_to_a_point() -> None:
    assert wald_ci(0, 10) == (0.0, 0.0)
    assert wald_ci(10, 10) == (1.0, 1.0)


def test_clopper_pearson_k0_and_kn_exact() -> None:
    # k = 0: upper bound solves (1 − p)^n = α/2 → 1 − 0.025^(1/n); k = n mirrors it.
    n = 10
    assert clopper_pearson_ci(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n), abs=1e-12))
    assert clopper_pearson_ci(n, n) == (pytest.approx(0.025 ** (1 / n), abs=1e-12), 1.0)
    assert clopper_pearson_ci(0, n)[1] == pytest.approx(0.308497, abs=1e-6)


@pytest.mark.parametrize(("k", "n"), [(1, 7), (37, 50), (190, 200), (2020, 2117), (3, 1000)])
def test_clopper_pearson_matches_scipy(k: int, n: int) -> None:
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson_ci(k, n) == pytest.approx((ci.low, ci.high), abs=1e-10)
    assert clopper_pearson_ci(k, n, level=0.99)[1] > clopper_pearson_ci(k, n)[1]


def test_interval_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wald_ci(11, 10)
    with pytest.raises(ValueError, match="n >= 1"):
        clopper_pearson_ci(0, 0)
    with pytest.raises(ValueError, match="level"):
        wald_ci(1, 2, level=1.5)


def test_mcnemar_by_hand() -> None:
    # b = 10, c = 2: without correction (10 − 2)² / 12 = 5.3333; with it (8 − 1)² / 12 = 4.0833.
    # χ²(1 df) survival = erfc(sqrt(x / 2)).
    plain = mcnemar(10, 2, correction=False)
    assert plain.statistic == pytest.approx(64 / 12, abs=1e-12)
    assert plain.pvalue == pytest.approx(math.erfc(math.sqrt(64 / 12 / 2)), abs=1e-12)
    assert plain.pvalue == pytest.approx(0.020921, abs=1e-6)
    corrected = mcnemar(10, 2)
    assert corrected.statistic == pytest.approx(49 / 12, abs=1e-12)
    assert corrected.pvalue == pytest.approx(math.erfc(math.sqrt(49 / 12 / 2)), abs=1e-12)
    assert corrected.pvalue > plain.pvalue


def test_mcnemar_degenerate_cases() -> None:
    none = mcnemar(0, 0)
    assert (none.statistic, none.pvalue) == (0.0, 1.0)
    # b = c: no difference, so the corrected statistic is 0, not 1/(b + c).
    tie = mcnemar(3, 3)
    assert (tie.statistic, tie.pvalue) == (0.0, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar(-1, 2)


def test_mcnemar_exact_by_hand() -> None:
    # b = 1, c = 5: two-sided binomial, n = 6 → 2 · (C(6,0) + C(6,1)) / 2⁶ = 14 / 64.
    assert mcnemar_exact(1, 5) == pytest.approx(14 / 64, abs=1e-12)
    assert mcnemar_exact(5, 1) == pytest.approx(14 / 64, abs=1e-12)
    # b = 0, c = 7: 2 / 2⁷.
    assert mcnemar_exact(0, 7) == pytest.approx(2 / 128, abs=1e-12)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)


def test_discordant_counts() -> None:
    a = [True, True, False, False, True]
    b = [True, False, True, False, False]
    assert discordant(a, b) == (2, 1)
    with pytest.raises(ValueError, match="one shape"):
        discordant([True], [True, False])


def test_attack_success_rates() -> None:
    assert attack_success_rate_paper(59.28) == pytest.approx(40.72)
    with pytest.raises(ValueError, match="percent"):
        attack_success_rate_paper(0.5928 * 1000)
    # 3 samples correct when clean (0, 1, 2); the attack flips 0 and 2 → 2/3.
    labels = [0, 1, 2, 3]
    pred_clean = [0, 1, 2, 0]
    pred_adv = [1, 1, 0, 0]
    assert attack_success_rate_flips(labels, pred_clean, pred_adv) == pytest.approx(200 / 3)
    # The paper's rate on the same data counts the clean error too: accuracy 1/4 → ASR 75 %.
    assert attack_success_rate_paper(100 * accuracy(labels, pred_adv)) == pytest.approx(75.0)
    assert math.isnan(attack_success_rate_flips([0], [1], [1]))


def test_mean_confidence_and_accuracy() -> None:
    assert mean_confidence([0.5, 1.0, 0.9]) == pytest.approx(0.8)
    assert accuracy([0, 1, 2], [0, 1, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        mean_confidence([])


def test_per_class_prf_keeps_absent_classes() -> None:
    classes = ["a", "b", "c", "d"]
    labels = [0, 0, 1, 1, 1]
    preds = [0, 1, 1, 1, 0]
    table = per_class_prf(labels, preds, classes)
    assert list(table.index) == classes
    # class a: TP 1, FP 1 (sample 4), FN 1 → P = R = 0.5; class b: TP 2, FP 1, FN 1 → P = R = 2/3.
    assert table.loc["a", "precision"] == pytest.approx(0.5)
    assert table.loc["b", "recall"] == pytest.approx(2 / 3)
    assert table.loc["b", "f1"] == pytest.approx(f1_score(labels, preds, labels=[1], average=None)[0])
    assert table.loc["d"].tolist() == [0.0, 0.0, 0.0, 0]


def test_confusion_counts_every_class() -> None:
    matrix = confusion([0, 0, 1, 3], [0, 1, 1, 0], ["a", "b", "c", "d"])
    assert matrix.shape == (4, 4)
    assert matrix.loc["a", "b"] == 1
    assert matrix.loc["d", "a"] == 1
    assert int(np.trace(matrix.to_numpy())) == 2
    assert matrix.loc["c"].sum() == 0
