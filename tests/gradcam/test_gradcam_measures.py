"""Sc (cosine similarity), lung share, the bootstrap CI, the per-image rows, the summary and the HTML part."""

from __future__ import annotations

import base64
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from advparity.reports.gradcam import (
    ROW_COLUMNS,
    SUMMARY_COLUMNS,
    Setting,
    bootstrap_mean_ci,
    cosine_similarity,
    image_rows,
    lung_share,
    summarize,
)
from advparity.reports.gradcam_figures import CamPanel, figure_grid, panel_titles
from advparity.reports.gradcam_html import gradcam_section, report_block
from scipy import stats
from scipy.spatial.distance import cosine

CLASSES = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")


# --- cosine similarity (paper Eq. 12) ----------------------------------------------------------------


def test_cosine_identical_scaled_and_disjoint() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((8, 8))
    assert cosine_similarity(a, a) == pytest.approx(1.0, abs=1e-12)
    assert cosine_similarity(a, 3.5 * a) == pytest.approx(1.0, abs=1e-12)
    left, right = np.zeros((4, 4)), np.zeros((4, 4))
    left[:, :2], right[:, 2:] = 1.0, 0.7
    assert cosine_similarity(left, right) == 0.0


def test_cosine_matches_scipy_on_random_maps() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        a, b = rng.random((6, 5)), rng.random((6, 5))
        assert cosine_similarity(a, b) == pytest.approx(1.0 - cosine(a.ravel(), b.ravel()), abs=1e-12)
    # A hand case: (1, 0) and (1, 1) are 45 degrees apart.
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(math.sqrt(0.5))


def test_cosine_zero_maps_are_not_nan() -> None:
    zero, some = np.zeros((4, 4)), np.eye(4)
    assert cosine_similarity(zero, zero) == 1.0  # identical maps
    assert cosine_similarity(zero, some) == 0.0  # no shared location
    assert cosine_similarity(some, zero) == 0.0


def test_cosine_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equal size"):
        cosine_similarity(np.ones((2, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        cosine_similarity(np.array([1.0, np.nan]), np.ones(2))


# --- lung share ---------------------------------------------------------------------------------------


def test_lung_share_inside_outside_and_a_hand_case() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    inside = np.where(mask, 0.8, 0.0)
    outside = np.where(mask, 0.0, 0.3)
    assert lung_share(inside, mask) == 1.0
    assert lung_share(outside, mask) == 0.0
    mixed = np.zeros((4, 4))
    mixed[1, 1], mixed[0, 0] = 3.0, 1.0
    assert lung_share(mixed, mask) == pytest.approx(0.75)
    assert lung_share(np.ones((4, 4)), mask) == pytest.approx(mask.mean())  # a uniform map: chance


def test_lung_share_zero_map_and_bad_input() -> None:
    mask = np.eye(3, dtype=bool)
    assert math.isnan(lung_share(np.zeros((3, 3)), mask))
    with pytest.raises(ValueError, match="shape"):
        lung_share(np.ones((3, 3)), np.ones((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="non-negative"):
        lung_share(-np.ones((3, 3)), mask)


# --- bootstrap ----------------------------------------------------------------------------------------


def test_bootstrap_hand_cases() -> None:
    assert bootstrap_mean_ci([0.4, 0.4, 0.4]) == (pytest.approx(0.4), pytest.approx(0.4))
    # Two values: a resample's mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4 -> 95 % CI (0, 1).
    assert bootstrap_mean_ci([0.0, 1.0]) == (0.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_mean_ci([0.7]))
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))
    assert bootstrap_mean_ci([0.1, np.nan, 0.1]) == (pytest.approx(0.1), pytest.approx(0.1))
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci([0.1, 0.2], level=95)


def test_bootstrap_is_seeded_and_agrees_with_scipy() -> None:
    values = np.random.default_rng(2).normal(0.6, 0.2, size=200)
    ours = bootstrap_mean_ci(values, seed=3)
    assert ours == bootstrap_mean_ci(values, seed=3)
    theirs = stats.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=2000, rng=4
    ).confidence_interval
    assert ours[0] == pytest.approx(theirs.low, abs=0.01)
    assert ours[1] == pytest.approx(theirs.high, abs=0.01)


# --- rows and summary -----------------------------------------------------------------------------


def _samples(labels: list[int], preds: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample": np.arange(len(labels)) * 3,
            "image": [f"{CLASSES[i]}/images/{k}.png" for k, i in enumerate(labels)],
            "label": labels,
            "class_name": [CLASSES[i] for i in labels],
            "pred_clean": preds,
        }
    )


def _maps() -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """Four 4x4 images: clean maps inside the mask; adversarial maps the same, moved out, zero, same."""
    mask = np.zeros((4, 4), dtype=bool)
    mask[:, :2] = True
    inside, outside = np.where(mask, 1.0, 0.0), np.where(mask, 0.0, 1.0)
    clean = np.stack([inside, inside, inside, np.zeros((4, 4))])
    adv = np.stack([inside, outside, np.zeros((4, 4)), np.zeros((4, 4))])
    return clean, adv, [mask, mask, mask, None]


SETTING = Setting("reference", "pgd", 2 / 255, 10, 0.5 / 255, True, 0, attack_label="PGD-10")


def test_image_rows() -> None:
    clean, adv, masks = _maps()
    rows = image_rows(
        SETTING, _samples([0, 0, 2, 2], [0, 0, 2, 1]), np.array([0, 2, 1, 1]), clean, adv, masks,
        pred_adv_run=np.array([0, 2, 1, 3]),
    )  # fmt: skip
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert rows["flipped"].tolist() == [False, True, True, False]
    assert rows["sc"].tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0], abs=1e-12)
    assert rows["lung_share_clean"].tolist()[:3] == [1.0, 1.0, 1.0]
    assert rows["lung_share_adv"].tolist()[:2] == [1.0, 0.0]
    assert rows["lung_share_adv"].isna().tolist()[2:] == [True, True]  # zero map; no mask
    assert rows["mask_area"].tolist()[:3] == [0.5, 0.5, 0.5] and math.isnan(rows["mask_area"][3])
    assert rows["zero_map_adv"].tolist() == [False, False, True, True]
    assert rows["reproduced"].tolist() == [True, True, True, False]
    assert rows["eps"].iloc[0] == 2 / 255 and rows["library"].iloc[0] == "reference"
    unchecked = image_rows(SETTING, _samples([0], [0]), np.array([0]), clean[:1], adv[:1], masks[:1])
    assert unchecked["reproduced"].isna().all() and unchecked["pred_adv_run"].isna().all()
    with pytest.raises(ValueError, match="expected 2"):
        image_rows(SETTING, _samples([0, 1], [0, 1]), np.array([0]), clean[:1], adv[:1], masks[:1])


def test_summarize_by_class_and_flip() -> None:
    clean, adv, masks = _maps()
    rows = image_rows(
        SETTING, _samples([0, 0, 2, 2], [0, 0, 2, 1]), np.array([0, 2, 1, 1]), clean, adv, masks,
        pred_adv_run=np.array([0, 2, 1, 3]),
    )  # fmt: skip
    summary = summarize(rows)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary[["class_name", "subset", "n"]].values.tolist() == [
        ["COVID", "all", 2],
        ["COVID", "flipped", 1],
        ["COVID", "not flipped", 1],
        ["Normal", "all", 2],
        ["Normal", "flipped", 1],
        ["Normal", "not flipped", 1],
    ]
    covid = summary.iloc[0]
    assert covid["sc_mean"] == pytest.approx(0.5)
    assert (covid["sc_ci_low"], covid["sc_ci_high"]) == (0.0, pytest.approx(1.0))
    assert covid["lung_share_clean"] == 1.0 and covid["lung_share_adv"] == 0.5
    assert covid["lung_delta"] == -0.5 and covid["eps_label"] == "2/255"
    normal = summary.iloc[3]
    # Image 3 has a zero adversarial map (lung share undefined), image 4 no mask: no lung share at all.
    assert math.isnan(normal["lung_share_adv"]) and normal["lung_share_clean"] == 1.0
    assert normal["zero_maps"] == 2 and normal["not_reproduced"] == 1
    assert math.isnan(summary.iloc[4]["sc_ci_low"])  # one image: no interval
    with pytest.raises(ValueError, match="missing"):
        summarize(rows.drop(columns="sc"))


def test_figure_and_html_section(tmp_path: Path) -> None:
    clean, adv, masks = _maps()
    rows = image_rows(
        SETTING, _samples([0, 0, 2, 2], [0, 0, 2, 1]), np.array([0, 2, 1, 1]), clean, adv, masks
    )
    panels = [
        CamPanel(
            image=np.full((4, 4), 0.5),
            cam_clean=clean[i],
            cam_adv=adv[i],
            perturbation=np.sign(np.random.default_rng(i).normal(size=(4, 4))),
            mask=masks[i],
            titles=panel_titles(row, CLASSES),
        )
        for i, row in enumerate(rows.to_dict("records"))
    ]
    assert "Sc 0.00" in panels[1].titles[3] and "lung 0.00" in panels[1].titles[2]
    assert "zero map" in panels[2].titles[2]
    path = figure_grid(panels, "COVID", tmp_path / "0__COVID.png")
    assert path.read_bytes().startswith(b"\x89PNG")

    meta = {
        "target_layer": "backbone.features.norm5",
        "feature_shape": [2, 2],
        "image_size": 64,
        "per_class": 2,
        "n_images": 4,
        "reproduction": {
            "compared": 4,
            "differ": 1,
            "examples": ["reference pgd 2/255 sample 9: 3 in the run, 1 now"],
        },
        "seconds": {"total": 3.0, "attacks": 2.0, "cam": 0.5, "figures": 0.5},
        "run_attack_seconds": 100.0,
    }
    document = gradcam_section(summarize(rows), [path], meta)
    assert document.count("<img") == 1 and base64.b64decode(document.split("base64,")[1].split('"')[0])
    assert "Reproduction check failed" in document and "sample 9" in document
    assert "Coarse maps" in document and "2×2" in document
    assert "<h4>COVID</h4>" in document and "Normal" in document
    fine = gradcam_section(summarize(rows), [], {**meta, "reproduction": {"compared": 4, "differ": 0}})
    assert "equal the run's for all 4" in fine and "<img" not in fine


def test_rows_summary_titles_and_table_name_the_variant_as_the_run_did() -> None:
    """The label comes from the run's rows (the attack's definition), not from attack, steps and start."""
    clean, adv, masks = _maps()
    l2 = replace(SETTING, attack_label="PGD-L2-10")
    rows = image_rows(l2, _samples([0, 0, 2, 2], [0, 0, 2, 1]), np.array([0, 2, 1, 1]), clean, adv, masks)
    assert set(rows["attack_label"]) == {"PGD-L2-10"} and l2.label == "reference PGD-L2-10 @ 2/255"
    assert panel_titles(rows.iloc[0].to_dict(), CLASSES)[3].startswith("PGD-L2-10 2/255")
    both = pd.concat(
        [rows, image_rows(SETTING, _samples([0], [0]), np.array([0]), clean[:1], adv[:1], masks[:1])]
    )
    summary = summarize(both)
    assert set(summary["attack_label"]) == {"PGD-L2-10", "PGD-10"}  # two variants, two groups
    document = gradcam_section(summary, [])
    assert all(f'<td class="text">{label}</td>' in document for label in ("PGD-L2-10", "PGD-10"))


def test_report_block_without_gradcam(tmp_path: Path) -> None:
    block = report_block(tmp_path)
    assert "Not computed" in block and f"python -m advparity gradcam {tmp_path}" in block


def test_report_block_with_an_unreadable_file(tmp_path: Path) -> None:
    folder = tmp_path / "gradcam"
    folder.mkdir()
    pd.DataFrame({"sample": [0], "sc": [1.0]}).to_parquet(folder / "gradcam.parquet")
    block = report_block(tmp_path)
    assert "Could not be read" in block and "missing" in block
