"""``harness/gradcam.py`` end to end on a smoke run: the files, the reproduction check, the summary, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from advparity.harness.cli import EXIT_BAD_INPUT, EXIT_DISAGREE, main
from advparity.harness.gradcam import GradcamRequest, choose_samples, choose_settings, compute
from advparity.reports.gradcam import ROW_COLUMNS, summarize
from advparity.reports.pipeline import report


@pytest.fixture(scope="module")
def smoke_run(smoke_demo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m advparity demo --preset smoke``: train, attack, Grad-CAM (reference only), report.

    The session's demo, copied: the tests here write Grad-CAM output into it."""
    out = tmp_path_factory.mktemp("gradcam") / "demo"
    shutil.copytree(smoke_demo[0], out)
    return out / "run"


def test_the_demo_maps_and_reports(smoke_run: Path) -> None:
    rows = pd.read_parquet(smoke_run / "gradcam" / "gradcam.parquet")
    assert set(rows["library"]) == {"reference"}
    document = (smoke_run / "report.html").read_text(encoding="utf-8")
    start = document.index('id="gradcam"')
    section = document[start : document.index("</div>", start)]
    assert "Not computed" not in section and section.count("<img") == rows["label"].nunique()
    assert "equal the run's" in section


def test_compute_writes_checked_rows_and_summary(smoke_run: Path) -> None:
    outcome = compute(
        GradcamRequest(smoke_run, per_class=2, libraries=("reference", "torchattacks")), progress=False
    )
    # Default eps: the grid's nearest to 0.1/255 (FGSM) and the largest PGD eps (2/255 in smoke).
    assert [(s.library, s.attack, round(s.eps * 255, 6)) for s in outcome.settings] == [
        ("reference", "fgsm", 0.1),
        ("torchattacks", "fgsm", 0.1),
        ("reference", "pgd", 2.0),
        ("torchattacks", "pgd", 2.0),
    ]
    rows = pd.read_parquet(smoke_run / "gradcam" / "gradcam.parquet")
    assert set(ROW_COLUMNS) | {"conf_adv", "conf_adv_run"} == set(rows.columns)
    clean = pd.read_parquet(smoke_run / "clean.parquet")
    expected = clean.sort_values("sample").groupby("label").head(2)
    assert sorted(rows["sample"].unique()) == sorted(expected["sample"])
    assert len(rows) == len(expected) * 4
    # Every regenerated prediction equals the run's, and the confidences agree to float round-off.
    assert outcome.reproducible and rows["reproduced"].all()
    assert np.abs(rows["conf_adv"] - rows["conf_adv_run"]).max() < 1e-5
    results = pd.concat([pd.read_parquet(p) for p in (smoke_run / "cells").glob("*.parquet")])
    pgd = results[
        (results["library"] == "torchattacks") & (results["attack"] == "pgd") & (results["seed"] == 0)
    ]
    ours = rows[(rows["library"] == "torchattacks") & (rows["attack"] == "pgd")]
    assert ours["pred_adv"].tolist() == pgd.set_index("sample").loc[ours["sample"], "pred_adv"].tolist()
    # 32 px: DenseNet's last block is 1x1, so every map is zero (documented); Sc is then 1, never NaN.
    meta = json.loads((smoke_run / "gradcam" / "meta.json").read_text())
    assert meta["feature_shape"] == [1, 1] and meta["reproduction"]["differ"] == 0
    assert rows["zero_map_clean"].all() and (rows["sc"] == 1.0).all()
    assert rows["lung_share_clean"].isna().all()
    summary = pd.read_csv(smoke_run / "gradcam" / "summary.csv")
    pd.testing.assert_frame_equal(
        summary, summarize(rows), check_dtype=False, check_exact=False, check_like=False
    )
    assert set(summary["subset"]) <= {"all", "flipped", "not flipped"}
    assert (summary[summary["subset"] == "all"]["n"].sum()) == len(rows)
    assert len(outcome.figures) == rows["label"].nunique()
    assert meta["seconds"]["total"] > 0 and meta["run_attack_seconds"] > 0


def test_a_run_that_does_not_reproduce_is_reported(smoke_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(smoke_run, copy, ignore=shutil.ignore_patterns("gradcam"))
    cell = next((copy / "cells").glob("fgsm__eps00000.100000-255__*__reference.parquet"))
    frame = pd.read_parquet(cell)
    first = int(pd.read_parquet(copy / "clean.parquet").sort_values("sample")["sample"].iloc[0])
    frame.loc[frame["sample"] == first, "pred_adv"] = (
        frame.loc[frame["sample"] == first, "pred_adv"] + 1
    ) % 4
    frame.to_parquet(cell)
    cell.with_suffix(".json").unlink()  # edited by hand: no checksum record, so read unverified
    clean = pd.read_parquet(copy / "clean.parquet")
    other = int(clean[clean["label"] != clean.loc[clean["sample"] == first, "label"].iloc[0]]["sample"].min())
    clean.loc[clean["sample"] == other, "pred_clean"] = (
        clean.loc[clean["sample"] == other, "pred_clean"] + 1
    ) % 4
    clean.to_parquet(copy / "clean.parquet")

    outcome = compute(
        GradcamRequest(copy, per_class=1, libraries=("reference",), attacks=("fgsm",)), progress=False
    )
    assert not outcome.reproducible
    assert outcome.mismatches["sample"].tolist() == [first]
    assert outcome.clean_mismatches == [other]
    meta = json.loads((copy / "gradcam" / "meta.json").read_text())
    assert meta["reproduction"]["differ"] == 1 and f"sample {first}" in meta["reproduction"]["examples"][0]
    args = ["-q", "gradcam", str(copy), "--per-class", "1", "--libraries", "reference", "--attacks", "fgsm"]
    assert main(args) == EXIT_DISAGREE
    html = report(copy).html.read_text(encoding="utf-8")
    assert "Reproduction check failed" in html and "Clean predictions differ" in html


def test_bad_choices_are_errors(smoke_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "gradcam", str(smoke_run), "--eps", "3/255"]) == EXIT_BAD_INPUT
    assert "not in this run's grid" in capsys.readouterr().err
    assert main(["-q", "gradcam", str(smoke_run), "--libraries", "advbox"]) == EXIT_BAD_INPUT
    assert main(["-q", "gradcam", str(smoke_run.parent)]) == EXIT_BAD_INPUT  # not a run directory


def _cells(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"library": lib, "attack": a, "eps": e / 255, "steps": 1 if a == "fgsm" else 10,
             "alpha": e / 255 / 4, "random_start": a == "pgd", "seed": s}
            for lib, a, e in rows
            for s in (0, 1)
        ]
    )  # fmt: skip


def test_default_eps_and_sample_choice() -> None:
    results = _cells(
        [(lib, "fgsm", e) for lib in ("reference", "art") for e in (0.3, 1.0, 4.0)]
        + [(lib, "pgd", e) for lib in ("reference", "art") for e in (0.5, 2.0)]
    )
    settings = choose_settings(results)
    assert {(s.attack, round(s.eps * 255, 6)) for s in settings} == {("fgsm", 0.3), ("pgd", 2.0)}
    assert all(s.seed == 0 for s in settings) and len(settings) == 4
    picked = choose_settings(results, eps=[1 / 255], libraries=["art"])
    assert [(s.library, s.attack) for s in picked] == [("art", "fgsm")]
    with pytest.raises(ValueError, match="no finished cells"):
        choose_settings(results, attacks=["cw"])

    clean = pd.DataFrame({"sample": [5, 1, 3, 0, 2, 4], "label": [0, 1, 0, 1, 0, 2]})
    chosen = choose_samples(clean, ["a", "b", "c", "d"], per_class=2)
    assert chosen[["label", "sample"]].values.tolist() == [[0, 2], [0, 3], [1, 0], [1, 1], [2, 4]]


def test_settings_take_the_attack_label_from_the_rows() -> None:
    results = _cells([("reference", "pgd", 2.0)])
    # A run recorded before rows carried the label: its PGD could only be the L∞ one.
    assert [s.label for s in choose_settings(results)] == ["reference PGD-10 @ 2/255"]
    two = pd.concat([results.assign(attack_label="PGD-10"), results.assign(attack_label="PGD-L2-10")])
    assert [s.attack_label for s in choose_settings(two)] == ["PGD-10", "PGD-L2-10"]


def test_l2_cells_are_left_to_an_explicit_eps_and_labelled_as_numbers() -> None:
    """An L2 eps (0.5) is no pixel level: the default picks the paper's L∞ settings, and an L2
    setting asked for by its eps is written as the number it is, not as 127.5/255."""
    linf = _cells([("reference", "fgsm", 0.1), ("reference", "pgd", 2.0)]).assign(norm="linf")
    linf = linf.assign(attack_label=linf["attack"].map({"fgsm": "FGSM", "pgd": "PGD-10"}))
    l2 = _cells([("reference", "fgsm", 0.5 * 255), ("reference", "pgd", 0.5 * 255)]).assign(norm="l2")
    l2 = l2.assign(attack_label=l2["attack"].map({"fgsm": "FGM-L2", "pgd": "PGD-L2-10"}))
    results = pd.concat([linf, l2], ignore_index=True)
    assert sorted(s.label for s in choose_settings(results)) == [
        "reference FGSM @ 0.1/255",
        "reference PGD-10 @ 2/255",
    ]
    assert sorted(s.label for s in choose_settings(results, eps=[0.5])) == [
        "reference FGM-L2 @ 0.5",
        "reference PGD-L2-10 @ 0.5",
    ]
