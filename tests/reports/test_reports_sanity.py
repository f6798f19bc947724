"""Sanity checks: each must fire on a hand-made frame built to trip it, and stay quiet otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from advparity.reports.sanity import (
    EXPLANATIONS,
    Finding,
    accuracy_monotone_in_eps,
    clean_predictions_consistent,
    eight_bit_survival,
    eight_bit_survival_table,
    large_eps_near_zero,
    more_steps_at_least_as_strong,
    outputs_in_bounds,
    pgd_at_least_fgsm,
    run_all,
    zero_gradient_pixels,
)
from support.report_frames import LABELS, PRED_CLEAN, N, cell, clean_frame, flipped_preds, replace_cell


def _one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1
    return findings[0]


def test_every_check_has_an_explanation(agreeing: pd.DataFrame, clean: pd.DataFrame) -> None:
    findings = run_all(agreeing, clean)
    assert {f.name for f in findings} == set(EXPLANATIONS)
    assert all(f.explanation.endswith(".") for f in findings)
    # The agreeing scene is built to pass every check that can fail.
    assert all(f.passed for f in findings), [f for f in findings if not f.passed]


def test_rising_sweep_is_flagged() -> None:
    # Accuracy 20 % → 50 % → 80 % with eps: far above the CI of the smaller eps.
    sweep = pd.concat(
        [
            cell("reference", "fgsm", 0.1 / 255, flipped_preds(150)),
            cell("reference", "fgsm", 0.3 / 255, flipped_preds(90)),
            cell("reference", "fgsm", 1 / 255, flipped_preds(30)),
        ]
    )
    finding = _one(accuracy_monotone_in_eps(sweep))
    assert not finding.passed
    assert finding.severity == "warning"
    # The worst rise: 20 % at 0.1/255 to 80 % at 1/255.
    assert "rises from 20.0 % at 0.1/255 to 80.0 % at 1/255" in finding.message


def test_a_rise_within_noise_is_not_flagged() -> None:
    # 75 % → 76 % is inside the Clopper-Pearson interval of 75 % at n = 200 (68.4–80.8 %).
    sweep = pd.concat(
        [
            cell("reference", "fgsm", 0.1 / 255, flipped_preds(40)),
            cell("reference", "fgsm", 0.3 / 255, flipped_preds(38)),
        ]
    )
    assert _one(accuracy_monotone_in_eps(sweep)).passed


def test_pgd_weaker_than_fgsm_is_flagged() -> None:
    eps = 0.3 / 255
    frame = pd.concat(
        [
            cell("art", "fgsm", eps, flipped_preds(120)),  # 35 %
            cell("art", "pgd", eps, flipped_preds(40), random_start=True),  # 75 %
        ]
    )
    finding = _one(pgd_at_least_fgsm(frame))
    assert not finding.passed
    assert "ART PGD-10 at 0.3/255: 75.0 % vs FGSM 35.0 %" in finding.message


def test_more_steps_weaker_is_flagged_and_single_step_count_is_not_tested(agreeing: pd.DataFrame) -> None:
    assert "not tested" in _one(more_steps_at_least_as_strong(agreeing)).message
    eps = 0.3 / 255
    frame = pd.concat(
        [
            cell("reference", "pgd", eps, flipped_preds(150), steps=10, random_start=True),
            cell("reference", "pgd", eps, flipped_preds(50), steps=40, random_start=True),
        ]
    )
    finding = _one(more_steps_at_least_as_strong(frame))
    assert not finding.passed
    assert "40 steps 70.0 % vs 10 steps 20.0 %" in finding.message


def test_out_of_bounds_rows_fail_with_severity_error(agreeing: pd.DataFrame) -> None:
    mask = np.ones(N, dtype=bool)
    mask[:3] = False
    frame = replace_cell(agreeing, cell("torchattacks", "fgsm", 1 / 255, flipped_preds(150), in_bounds=mask))
    finding = _one(outputs_in_bounds(frame))
    assert (finding.passed, finding.severity) == (False, "error")
    assert "torchattacks FGSM @ 1/255: 3 rows" in finding.message


def test_large_eps_not_tested_below_8_over_255(agreeing: pd.DataFrame) -> None:
    finding = _one(large_eps_near_zero(agreeing))
    assert finding.passed and finding.message.startswith("not tested")
    assert "1/255" in finding.message


def test_large_eps_with_accuracy_left_is_flagged() -> None:
    frame = pd.concat(
        [
            cell("reference", "pgd", 8 / 255, flipped_preds(190), random_start=True),  # 5 %: at the limit
            cell("art", "pgd", 8 / 255, flipped_preds(150), random_start=True),  # 20 %
        ]
    )
    finding = _one(large_eps_near_zero(frame))
    assert not finding.passed
    assert "ART PGD-10 at 8/255: 20.0 %" in finding.message
    assert "reference" not in finding.message


def _survival_scene(survivors_small_eps: int) -> pd.DataFrame:
    """1/255: 10 flips (samples 10–19), 6 still wrong after rounding; 0.1/255: 8 flips, ``survivors_small_eps`` survive."""
    big = flipped_preds(10)
    big_8bit = PRED_CLEAN.copy()
    big_8bit[10:16] = big[10:16]
    small = flipped_preds(8)
    small_8bit = PRED_CLEAN.copy()
    small_8bit[10 : 10 + survivors_small_eps] = small[10 : 10 + survivors_small_eps]
    return pd.concat(
        [
            cell("reference", "fgsm", 1 / 255, big, pred_adv_8bit=big_8bit),
            cell("reference", "fgsm", 0.1 / 255, small, pred_adv_8bit=small_8bit),
        ]
    )


def test_eight_bit_survival_by_hand() -> None:
    table = eight_bit_survival_table(_survival_scene(0)).set_index("eps_label")
    assert table.loc["1/255", ["n_flips", "n_survive"]].tolist() == [10, 6]
    assert table.loc["1/255", "survival"] == pytest.approx(0.6)
    assert table.loc["0.1/255", "survival"] == 0.0
    finding = _one(eight_bit_survival(_survival_scene(0)))
    assert finding.passed
    assert "1/255: 6/10 (60 %)" in finding.message


def test_eight_bit_survival_below_half_a_level_is_flagged() -> None:
    finding = _one(eight_bit_survival(_survival_scene(1)))
    assert not finding.passed
    assert "reference FGSM @ 0.1/255: 1 of 8" in finding.message


def test_eight_bit_survival_ignores_samples_wrong_before_the_attack() -> None:
    # Samples 0–9 are wrong when clean; rounding cannot "fix" or "keep" them as flips.
    frame = cell("reference", "fgsm", 1 / 255, PRED_CLEAN, pred_adv_8bit=(LABELS + 2) % 4)
    table = eight_bit_survival_table(frame)
    assert table["n_flips"].tolist() == [0]
    assert np.isnan(table["survival"].iloc[0])


def test_zero_gradient_share() -> None:
    zero = np.zeros(N, dtype=int)
    zero[:50] = 7
    frame = cell("reference", "fgsm", 1 / 255, flipped_preds(10), zero_grad=zero)
    finding = _one(zero_gradient_pixels(frame))
    assert not finding.passed and finding.severity == "info"
    assert "reference FGSM: 25.0 %" in finding.message


def test_clean_predictions_must_match_clean_parquet(agreeing: pd.DataFrame) -> None:
    tampered = clean_frame()
    tampered.loc[tampered["sample"] == 20, "pred_clean"] = 3
    finding = _one(clean_predictions_consistent(agreeing, tampered))
    assert not finding.passed
    # Sample 20 appears once per cell: 4 libraries × (3 FGSM + 6 PGD cells) = 36 rows.
    assert "36 rows disagree" in finding.message


def test_untested_checks_say_so(agreeing: pd.DataFrame) -> None:
    untested = {f.name for f in run_all(agreeing, clean_frame()) if not f.tested}
    assert untested == {"more_steps_at_least_as_strong", "large_eps_near_zero"}
