"""Verdicts on hand-built frames: judged on x_adv (exact cells), pass counts, model state, bounds, and
the statistical rule for starts that cannot be reproduced."""

from __future__ import annotations

import math

import advparity.reports.crosscheck as crosscheck
import advparity.reports.rules as rules
import numpy as np
import pandas as pd
import pytest
from advparity.adapters import expected
from advparity.reports.crosscheck import (
    FLIP_BUDGET_SHARE,
    RULES,
    flip_budget,
    mismatches,
    smallest_detectable_shift,
    verdicts,
)
from advparity.reports.stats import mcnemar_exact
from scipy.stats import binomtest
from support.report_frames import FGSM_FLIPS, LABELS, PIXELS, N, cell, flipped_preds, replace_cell
from support.report_frames import clean_frame as clean_frame_for_tests

EPS1 = 0.1 / 255
EPS3 = 0.3 / 255


def _row(v: pd.DataFrame, library: str, attack: str, eps: float) -> pd.Series:
    hit = v[(v["library"] == library) & (v["attack"] == attack) & np.isclose(v["eps"], eps)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def _fgsm_differing(library: str, pixels: np.ndarray, near_zero: np.ndarray | None = None) -> pd.DataFrame:
    """FGSM @ 0.3/255 with the reference's predictions, but x_adv off by ``pixels`` per sample."""
    linf = np.where(np.asarray(pixels) > 0, 2 * EPS3, 0.0)
    return cell(
        library,
        "fgsm",
        EPS3,
        flipped_preds(FGSM_FLIPS[EPS3]),
        linf_to_ref=linf,
        pixels_differ=pixels,
        pixels_differ_near_zero=near_zero,
    )


def test_rules_are_exported_for_the_report() -> None:
    assert FLIP_BUDGET_SHARE == 0.001
    assert any("McNemar" in rule for rule in RULES)
    assert any("x_adv" in rule for rule in RULES)
    # reports may not import adapters: the runner's near-zero threshold is restated here, so check it.
    assert crosscheck.NEAR_ZERO_GRADIENT == expected.NEAR_ZERO_GRADIENT
    assert flip_budget(PIXELS) == 12 and flip_budget(3 * 32 * 32) == 3 and flip_budget(100) == 1


def test_identical_libraries_agree_everywhere(agreeing: pd.DataFrame) -> None:
    v = verdicts(agreeing)
    # 4 libraries × (FGSM + PGD) × 3 eps, the reference included as its own rows.
    assert len(v) == 24
    assert set(v["verdict"]) == {"agree"}
    assert set(v["judged_on"]) == {"x_adv"}
    art = _row(v, "art", "fgsm", EPS1)
    assert (art["n_differ"], art["n"], art["delta_acc_pp"], art["samples_xadv_differ"]) == (0, 200, 0.0, 0)
    assert art["acc_library"] == pytest.approx(0.75) == art["acc_reference"]
    assert "ART FGSM @ 0.1/255: x_adv equals the expected one on 200 of 200 samples" in art["reason"]
    assert (art["forward_passes"], art["backward_passes"], art["seconds"]) == (1.0, 1.0, 2.0)
    assert list(v["library"].unique()) == ["reference", "art", "torchattacks", "foolbox"]
    pgd = _row(v, "torchattacks", "pgd", EPS1)
    assert "from the library's own random start for seed(s) 0,1" in pgd["reason"]


def test_a_different_x_adv_disagrees_although_every_prediction_is_the_reference_s(
    agreeing: pd.DataFrame,
) -> None:
    """What predictions alone missed: at a small eps, a wrong attack flips no prediction."""
    pixels = np.full(N, 1207)
    pixels[100:] = 0
    v = verdicts(replace_cell(agreeing, _fgsm_differing("torchattacks", pixels, near_zero=np.zeros(N))))
    row = _row(v, "torchattacks", "fgsm", EPS3)
    assert row["verdict"] == "disagree"
    assert (row["n_differ"], row["delta_acc_pp"], row["samples_xadv_differ"]) == (0, 0.0, 100)
    reason = row["reason"]
    for text in (
        "torchattacks FGSM @ 0.3/255",
        "x_adv differs from the expected one in 1,207 of 12,288 pixels",
        "on 100 of 200 samples",
        "0.6/255 (2·eps)",
        "although both took one step from the same x: a different attack",
        "mismatches(results, 'torchattacks', 'fgsm', 0.3/255)",
    ):
        assert text in reason, (text, reason)
    # Other cells of the same library are untouched.
    assert _row(v, "torchattacks", "fgsm", EPS1)["verdict"] == "agree"


@pytest.mark.parametrize(
    ("pixels", "near_zero", "verdict"),
    [
        (12, 12, "agree"),  # the budget: 0.1 % of 12,288 pixels, each a near-zero-gradient flip
        (13, 13, "disagree"),  # one flip over the budget
        (3, 2, "disagree"),  # a differing pixel whose gradient was not near zero
    ],
)
def test_near_zero_gradient_flips_within_the_budget_agree(
    agreeing: pd.DataFrame, pixels: int, near_zero: int, verdict: str
) -> None:
    differ = np.zeros(N, dtype=int)
    differ[:5] = pixels
    zeros = np.zeros(N, dtype=int)
    zeros[:5] = near_zero
    row = _row(verdicts(replace_cell(agreeing, _fgsm_differing("art", differ, zeros))), "art", "fgsm", EPS3)
    assert row["verdict"] == verdict, row["reason"]
    if verdict == "agree":
        assert row["samples_near_zero_flips"] == 5
        assert "the other 5 differ only in isolated sign flips (at most 12 of 12,288 pixels" in row["reason"]
        assert "x_adv equals the expected one on 195 of 200 samples" in row["reason"]
    else:
        assert row["samples_xadv_differ"] == 5


def test_an_unchanged_input_is_named(agreeing: pd.DataFrame) -> None:
    noop = _fgsm_differing("foolbox", np.full(N, PIXELS), np.zeros(N)).assign(linf=0.0)
    row = _row(verdicts(replace_cell(agreeing, noop)), "foolbox", "fgsm", EPS3)
    assert row["verdict"] == "disagree"
    assert "every x_adv equals x: the library returned its input unchanged" in row["reason"]


def test_a_reversed_fgsm_is_named(agreeing: pd.DataFrame) -> None:
    reversed_sign = _fgsm_differing("art", np.full(N, PIXELS - 40), np.zeros(N))
    row = _row(verdicts(replace_cell(agreeing, reversed_sign)), "art", "fgsm", EPS3)
    assert row["verdict"] == "disagree"
    assert "the step goes the other way" in row["reason"]


def test_pass_counts_other_than_declared_disagree(agreeing: pd.DataFrame) -> None:
    """One PGD step fewer: x_adv would show it too, but the counts alone must already disagree."""
    fewer = cell("art", "pgd", EPS1, flipped_preds(100), random_start=True, seed=0, passes=(9.0, 9.0))
    row = _row(verdicts(replace_cell(agreeing, fewer)), "art", "pgd", EPS1)
    assert row["verdict"] == "disagree"
    assert (
        "it spent 9 forward and 9 backward passes per sample (seed 0) where its adapter documents 10 and 10"
        in (row["reason"])
    )
    assert (row["forward_passes"], row["forward_passes_expected"]) == (9.5, 10.0)  # seeds 0 (9) and 1 (10)


def test_a_model_left_changed_is_invalid(agreeing: pd.DataFrame) -> None:
    changed = cell(
        "foolbox", "fgsm", EPS1, flipped_preds(FGSM_FLIPS[EPS1]), state_changes="buffers values changed"
    )
    row = _row(verdicts(replace_cell(agreeing, changed)), "foolbox", "fgsm", EPS1)
    assert row["verdict"] == "invalid"
    assert "It left the model or its inputs changed: buffers values changed" in row["reason"]


def test_mismatches_lists_the_differing_samples(agreeing: pd.DataFrame) -> None:
    differ = np.zeros(N, dtype=int)
    differ[90:93] = 2  # near-zero flips
    differ[93:110] = 500
    near_zero = np.where(differ == 2, 2, 0)
    m = mismatches(
        replace_cell(agreeing, _fgsm_differing("torchattacks", differ, near_zero)),
        "torchattacks",
        "fgsm",
        EPS3,
    )
    assert m["sample"].tolist() == list(range(90, 110))
    assert (m["pred_reference"] == LABELS[90:110]).all() and (m["pred_library"] == LABELS[90:110]).all()
    assert m["kind"].tolist() == ["near-zero flips"] * 3 + ["different"] * 17
    assert m["pixels_differ"].tolist() == [2] * 3 + [500] * 17
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


def test_missing_reference_is_invalid() -> None:
    only_art = cell("art", "fgsm", EPS1, flipped_preds(10))
    row = verdicts(only_art).iloc[0]
    assert row["verdict"] == "invalid"
    assert "no reference cell" in row["reason"]
    assert math.isnan(row["acc_reference"])


def _pgd(library: str, flips: int, seed: int, start: int = 10, expectation: str = "exact") -> pd.DataFrame:
    return cell(
        library,
        "pgd",
        EPS1,
        flipped_preds(flips, start=start),
        random_start=True,
        seed=seed,
        expectation=expectation,
    )


def test_random_start_reference_row_reports_its_spread(agreeing: pd.DataFrame) -> None:
    row = _row(verdicts(agreeing), "reference", "pgd", EPS1)
    assert row["verdict"] == "agree"
    # Seed 0 flips 100, seed 1 flips 102: accuracies 45 % and 44 %.
    assert row["ref_seed_spread_pp"] == pytest.approx(1.0)
    assert "the random start alone moves it by 1.00 pp over seeds 0,1" in row["reason"]
    assert row["seeds"] == "0,1"


def _statistical(
    results: pd.DataFrame, library: str, flips: tuple[int, int], start: int = 10
) -> pd.DataFrame:
    for seed, k in enumerate(flips):
        results = replace_cell(results, _pgd(library, k, seed, start=start, expectation="statistical"))
    return results


def test_statistical_cell_that_cannot_see_a_meaningful_shift_is_inconclusive(agreeing: pd.DataFrame) -> None:
    # ART's starts flip other samples (20–119 vs 10–109): 10 discordant pairs each way per seed, p = 1.
    row = _row(verdicts(_statistical(agreeing, "art", (100, 102), start=20)), "art", "pgd", EPS1)
    assert row["judged_on"] == "statistics"
    assert row["pvalue"] == pytest.approx(1.0)
    assert (row["n_differ"], row["n"]) == (40, 400)
    # One statistical cell in the run: level 0.01; 8 one-way pairs reach it (2·0.5**8 < 0.01 < 2·0.5**7).
    assert row["detectable_shift_pp"] == pytest.approx(100 * 8 / 400)
    assert row["verdict"] == "inconclusive"
    for text in ("cannot be reproduced", "level 0.01 / 1 cell(s)", "400 sample-seed pairs", "2 pp"):
        assert text in row["reason"], (text, row["reason"])


def test_statistical_cell_agrees_when_the_test_could_see_the_shift(
    agreeing: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules, "MEANINGFUL_SHIFT_PP", 2.0)  # where the table's condition reads it
    row = _row(verdicts(_statistical(agreeing, "art", (100, 102), start=20)), "art", "pgd", EPS1)
    assert row["verdict"] == "agree", row["reason"]


def test_statistical_much_weaker_library_disagrees(agreeing: pd.DataFrame) -> None:
    # Foolbox flips 70 where the reference flips 100 (seed 0) and 102 (seed 1): b = 30 + 32, c = 0.
    row = _row(verdicts(_statistical(agreeing, "foolbox", (70, 70))), "foolbox", "pgd", EPS1)
    assert row["verdict"] == "disagree"
    assert row["pvalue"] == pytest.approx(mcnemar_exact(62, 0))
    assert row["delta_acc_pp"] == pytest.approx(100 * ((120 + 120) - (90 + 88)) / 400)
    for text in ("Foolbox PGD-10 @ 0.1/255", "measurably weaker", "on 62 pairs, the reverse on 0"):
        assert text in row["reason"], (text, row["reason"])


def test_statistical_level_is_corrected_for_the_cells_tested(agreeing: pd.DataFrame) -> None:
    """b = 8, c = 0 (p = 0.0078): significant alone at 0.01, not once three cells share the 0.01."""
    one = _statistical(agreeing, "art", (92, 102))
    assert _row(verdicts(one), "art", "pgd", EPS1)["verdict"] == "disagree"
    three = _statistical(_statistical(one, "torchattacks", (100, 102)), "foolbox", (100, 102))
    row = _row(verdicts(three), "art", "pgd", EPS1)
    assert row["pvalue"] == pytest.approx(binomtest(8, 8).pvalue)
    assert row["verdict"] == "inconclusive"
    assert "level 0.01 / 3 cell(s) = 0.00333" in row["reason"]


def test_more_seeds_never_loosen_the_statistical_rule(agreeing: pd.DataFrame) -> None:
    """The old rule's tolerance was a range over reference seeds; now a third seed adds pairs, not slack."""
    two = _statistical(agreeing, "art", (92, 94))  # b = 8 + 8
    extra_ref = _pgd("reference", 140, 2)  # a wildly different reference seed would have widened a range
    three = _statistical(pd.concat([two, extra_ref], ignore_index=True), "art", (92, 94))
    three = replace_cell(three, _pgd("art", 132, 2, expectation="statistical"))
    p_two = _row(verdicts(two), "art", "pgd", EPS1)["pvalue"]
    row = _row(verdicts(three), "art", "pgd", EPS1)
    assert row["verdict"] == "disagree"
    assert row["pvalue"] <= p_two


def test_smallest_detectable_shift_matches_scipy() -> None:
    for n, level in ((64, 0.01), (200, 0.01 / 30), (2117, 0.05)):
        k = round(smallest_detectable_shift(n, level) * n)
        assert binomtest(k, k).pvalue < level <= binomtest(k - 1, k - 1).pvalue


def test_a_run_without_x_adv_evidence_is_judged_statistically_and_says_so(agreeing: pd.DataFrame) -> None:
    old = agreeing.drop(
        columns=["expectation", "pixels_differ", "pixels_differ_near_zero", "pixels_total", "state_changes"]
    )
    row = _row(verdicts(old), "art", "fgsm", EPS1)
    assert row["judged_on"] == "statistics"
    assert "recorded no x_adv evidence" in row["reason"]


def test_random_start_library_seed_without_reference_seed_is_invalid(agreeing: pd.DataFrame) -> None:
    results = pd.concat([agreeing, _pgd("art", 100, 2)], ignore_index=True)
    row = _row(verdicts(results), "art", "pgd", EPS1)
    assert row["verdict"] == "invalid"
    assert "seeds [2]" in row["reason"]


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
    from advparity.reports.sanity import run_all
    from advparity.reports.summary import cell_summary

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
