"""Verdicts on hand-built frames: agree, disagree on 10 % of samples, out-of-ball → invalid, random start."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from report_frames import FGSM_FLIPS, LABELS, N, cell, flipped_preds, replace_cell
from report_frames import clean_frame as clean_frame_for_tests

from reports.crosscheck import (
    DETERMINISTIC_MAX_DELTA_PP,
    DETERMINISTIC_MIN_SHARE_EQUAL,
    RULES,
    classify_linf_to_ref,
    mismatches,
    verdicts,
)
from reports.stats import mcnemar_exact

EPS1 = 0.1 / 255
EPS3 = 0.3 / 255


def _row(v: pd.DataFrame, library: str, attack: str, eps: float) -> pd.Series:
    hit = v[(v["library"] == library) & (v["attack"] == attack) & np.isclose(v["eps"], eps)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def _torchattacks_flips_20_more(results: pd.DataFrame) -> pd.DataFrame:
    """torchattacks FGSM @ 0.3/255 flips samples 10–109 where the reference flips 10–89: 20 of 200 differ.

    Of the 20, samples 90–92 are sign flips (linf_to_ref = 2·eps), 93–109 differ by 0.6·eps.
    """
    linf = np.zeros(N)
    linf[90:93] = 2 * EPS3
    linf[93:110] = 0.6 * EPS3
    new = cell("torchattacks", "fgsm", EPS3, flipped_preds(FGSM_FLIPS[EPS3] + 20), linf_to_ref=linf)
    return replace_cell(results, new)


def test_rules_are_exported_for_the_report() -> None:
    assert DETERMINISTIC_MIN_SHARE_EQUAL == 0.995
    assert DETERMINISTIC_MAX_DELTA_PP == 0.5
    assert any("McNemar" in rule for rule in RULES)


def test_identical_libraries_agree_everywhere(agreeing: pd.DataFrame) -> None:
    v = verdicts(agreeing)
    # 4 libraries × (FGSM + PGD) × 3 eps, the reference included as its own rows.
    assert len(v) == 24
    assert set(v["verdict"]) == {"agree"}
    art = _row(v, "art", "fgsm", EPS1)
    assert (art["n_differ"], art["n"], art["delta_acc_pp"]) == (0, 200, 0.0)
    assert art["acc_library"] == pytest.approx(0.75) == art["acc_reference"]
    assert "ART FGSM @ 0.1/255" in art["reason"]
    assert (art["forward_passes"], art["backward_passes"], art["seconds"]) == (1.0, 1.0, 2.0)
    assert list(v["library"].unique()) == ["reference", "art", "torchattacks", "foolbox"]


def test_ten_percent_differing_disagrees_with_an_explained_reason(agreeing: pd.DataFrame) -> None:
    v = verdicts(_torchattacks_flips_20_more(agreeing))
    row = _row(v, "torchattacks", "fgsm", EPS3)
    assert row["verdict"] == "disagree"
    assert (row["n_differ"], row["n"]) == (20, 200)
    assert row["delta_acc_pp"] == pytest.approx(-10.0)
    assert row["max_linf_to_ref"] == pytest.approx(2 * EPS3)
    reason = row["reason"]
    for text in (
        "torchattacks",
        "FGSM",
        "0.3/255",
        "20 of 200",
        "-10.00 pp",
        "3 have linf_to_ref = 2·eps",
        "17 differ by other amounts",
    ):
        assert text in reason, (text, reason)
    # Other cells of the same library are untouched.
    assert _row(v, "torchattacks", "fgsm", EPS1)["verdict"] == "agree"


def test_mismatches_lists_the_differing_samples(agreeing: pd.DataFrame) -> None:
    m = mismatches(_torchattacks_flips_20_more(agreeing), "torchattacks", "fgsm", EPS3)
    assert m["sample"].tolist() == list(range(90, 110))
    assert (m["pred_reference"] == LABELS[90:110]).all()
    assert (m["pred_library"] == (LABELS[90:110] + 1) % 4).all()
    assert m["kind"].tolist() == ["2eps"] * 3 + ["other"] * 17
    assert m["linf_to_ref_over_eps"].iloc[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="expected rows for library 'nope'"):
        mismatches(agreeing, "nope", "fgsm", EPS3)


def test_out_of_ball_output_is_invalid_whatever_the_accuracy(agreeing: pd.DataFrame) -> None:
    in_bounds = np.ones(N, dtype=bool)
    in_bounds[5] = False
    error = np.full(N, "", dtype=object)
    error[5] = "x_adv is 3.1e-03 outside the eps-ball"
    # Predictions identical to the reference's: the verdict must still be invalid.
    bad = cell("foolbox", "fgsm", EPS1, flipped_preds(FGSM_FLIPS[EPS1]), in_bounds=in_bounds, error=error)
    v = verdicts(replace_cell(agreeing, bad))
    row = _row(v, "foolbox", "fgsm", EPS1)
    assert row["verdict"] == "invalid"
    for text in ("Foolbox", "FGSM", "0.1/255", "1 of 200", "outside the eps-ball"):
        assert text in row["reason"], (text, row["reason"])
    assert (v["verdict"] == "invalid").sum() == 1


def test_error_string_alone_makes_a_cell_invalid(agreeing: pd.DataFrame) -> None:
    bad = cell("art", "fgsm", EPS1, flipped_preds(FGSM_FLIPS[EPS1]), error="RuntimeError: boom")
    row = _row(verdicts(replace_cell(agreeing, bad)), "art", "fgsm", EPS1)
    assert row["verdict"] == "invalid"
    assert "RuntimeError: boom" in row["reason"]


def test_invalid_reference_makes_every_library_invalid_there(agreeing: pd.DataFrame) -> None:
    bad = cell("reference", "fgsm", EPS1, flipped_preds(FGSM_FLIPS[EPS1]), in_bounds=False)
    v = verdicts(replace_cell(agreeing, bad))
    at_eps = v[(v["attack"] == "fgsm") & np.isclose(v["eps"], EPS1)]
    assert set(at_eps["verdict"]) == {"invalid"}
    assert "reference cell itself is invalid" in _row(v, "art", "fgsm", EPS1)["reason"]


@pytest.mark.parametrize(("n_extra", "verdict"), [(1, "agree"), (2, "disagree")])
def test_the_99_5_percent_boundary(agreeing: pd.DataFrame, n_extra: int, verdict: str) -> None:
    # 1 of 200 differing is exactly 99.5 % equal and Δacc = 0.5 pp: still agree; 2 of 200 is not.
    linf = np.zeros(N)
    linf[90 : 90 + n_extra] = 2 * EPS3
    new = cell("art", "fgsm", EPS3, flipped_preds(FGSM_FLIPS[EPS3] + n_extra), linf_to_ref=linf)
    row = _row(verdicts(replace_cell(agreeing, new)), "art", "fgsm", EPS3)
    assert row["verdict"] == verdict
    assert f"{n_extra} of 200" in row["reason"]
    assert "2·eps" in row["reason"]


def test_missing_reference_is_invalid() -> None:
    only_art = cell("art", "fgsm", EPS1, flipped_preds(10))
    row = verdicts(only_art).iloc[0]
    assert row["verdict"] == "invalid"
    assert "no reference cell" in row["reason"]
    assert math.isnan(row["acc_reference"])


def _pgd(library: str, flips: int, seed: int, start: int = 10) -> pd.DataFrame:
    return cell(library, "pgd", EPS1, flipped_preds(flips, start=start), random_start=True, seed=seed)


def test_random_start_reference_row_reports_its_spread(agreeing: pd.DataFrame) -> None:
    row = _row(verdicts(agreeing), "reference", "pgd", EPS1)
    assert row["verdict"] == "agree"
    # Seed 0 flips 100, seed 1 flips 102: accuracies 45 % and 44 %.
    assert row["ref_seed_spread_pp"] == pytest.approx(1.0)
    assert "seed-to-seed spread 1.00 pp" in row["reason"]
    assert row["seeds"] == "0,1"


def test_random_start_different_samples_same_strength_agrees(agreeing: pd.DataFrame) -> None:
    # ART's starts flip other samples (20–119 vs 10–109): 10 discordant each way, McNemar p = 1.
    results = replace_cell(
        replace_cell(agreeing, _pgd("art", 100, 0, start=20)), _pgd("art", 102, 1, start=20)
    )
    row = _row(verdicts(results), "art", "pgd", EPS1)
    assert row["verdict"] == "agree"
    assert row["pvalue"] == pytest.approx(1.0)
    assert row["n_differ"] == 40
    assert row["n"] == 400
    assert "ART PGD-10 @ 0.1/255" in row["reason"]


def test_random_start_much_weaker_library_disagrees_on_mcnemar(agreeing: pd.DataFrame) -> None:
    # Foolbox flips 70 where the reference flips 100 (seed 0) and 102 (seed 1): b = 30 and 32, c = 0.
    results = replace_cell(replace_cell(agreeing, _pgd("foolbox", 70, 0)), _pgd("foolbox", 70, 1))
    row = _row(verdicts(results), "foolbox", "pgd", EPS1)
    assert row["verdict"] == "disagree"
    assert row["pvalue"] == pytest.approx(mcnemar_exact(32, 0))
    assert row["delta_acc_pp"] == pytest.approx(100 * ((120 + 120) - (90 + 88)) / 400)
    for text in ("Foolbox PGD-10 @ 0.1/255", "weaker", "seed 0: exact McNemar", "seed 1: exact McNemar"):
        assert text in row["reason"], (text, row["reason"])


def test_random_start_delta_beyond_spread_and_noise_disagrees(agreeing: pd.DataFrame) -> None:
    # 6 fewer flips per seed: b = 6, c = 0 → exact p = 2/64 = 0.031 passes McNemar, but Δacc = +3 pp
    # exceeds max(spread 1 pp, noise 1.96·sqrt(6)/200 = 2.40 pp, 0.5 pp).
    results = replace_cell(replace_cell(agreeing, _pgd("art", 94, 0)), _pgd("art", 96, 1))
    row = _row(verdicts(results), "art", "pgd", EPS1)
    assert row["pvalue"] == pytest.approx(2 / 64)
    assert row["tolerance_pp"] == pytest.approx(100 * 1.96 * math.sqrt(6) / 200)
    assert row["delta_acc_pp"] == pytest.approx(3.0)
    assert row["verdict"] == "disagree"
    assert "outside ±2.40 pp" in row["reason"]


def test_random_start_library_seed_without_reference_seed_is_invalid(agreeing: pd.DataFrame) -> None:
    results = pd.concat([agreeing, _pgd("art", 100, 2)], ignore_index=True)
    row = _row(verdicts(results), "art", "pgd", EPS1)
    assert row["verdict"] == "invalid"
    assert "seeds [2]" in row["reason"]


def test_classify_linf_to_ref() -> None:
    eps = EPS1
    kinds = classify_linf_to_ref([0.0, 1e-8, eps, 2 * eps + 1e-7, 0.5 * eps, float("nan")], eps)
    assert kinds.tolist() == ["round-off", "round-off", "eps", "2eps", "other", "no reference"]


def test_missing_column_is_a_clear_error(agreeing: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing \['linf_to_ref'\]"):
        verdicts(agreeing.drop(columns="linf_to_ref"))


def _crashed(library: str, eps: float) -> pd.DataFrame:
    """What the runner writes for a library that raised: no image, pred -1, NaN distances, counts -1."""
    frame = cell(
        library, "fgsm", eps, np.full(N, -1), in_bounds=False, error="RuntimeError: CUDA error", zero_grad=-1
    )
    return frame.assign(conf_adv=np.nan, linf=np.nan, linf_to_ref=np.nan, pred_adv_8bit=-1, linf_8bit=np.nan)


def test_a_crashed_library_is_invalid_and_left_out_of_the_robustness_numbers(agreeing: pd.DataFrame) -> None:
    from reports.sanity import run_all
    from reports.summary import cell_summary

    results = replace_cell(agreeing, _crashed("art", EPS3))
    row = _row(verdicts(results), "art", "fgsm", EPS3)
    assert row["verdict"] == "invalid"
    assert "RuntimeError: CUDA error" in row["reason"]
    summary = cell_summary(results)
    assert summary[(summary["library"] == "art") & (summary["attack"] == "fgsm")][
        "eps"
    ].tolist() == pytest.approx([EPS1, 1 / 255])
    findings = {f.name: f for f in run_all(results, clean_frame_for_tests())}
    assert not findings["outputs_in_bounds"].passed
    # -1 in zero_grad / pred_adv_8bit means "not recorded", not a count or a prediction.
    assert findings["zero_gradient_pixels"].passed
    assert findings["eight_bit_survival"].passed
    assert findings["accuracy_monotone_in_eps"].passed


def test_library_seed_zero_pairs_with_reference_seed_zero(agreeing: pd.DataFrame) -> None:
    # The presets run the reference with seeds [0, 1] and each library with seed [0] only.
    results = agreeing[
        ~((agreeing["library"] == "art") & (agreeing["attack"] == "pgd") & (agreeing["seed"] == 1))
    ]
    row = _row(verdicts(results), "art", "pgd", EPS1)
    assert row["verdict"] == "agree"
    assert (row["seeds"], row["n"], row["ref_seed_spread_pp"]) == ("0", 200, pytest.approx(1.0))
