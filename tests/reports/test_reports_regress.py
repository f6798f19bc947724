"""`regress`: a baseline of a run, and the tolerance rule that decides what counts as drift.

Runs are the hand-built scene of report_frames.py (200 samples, so one sample is 0.5 pp); expected
McNemar p-values come from scipy's binomial test, independently of reports.stats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.stats as sps
from advparity.harness.cli import DEFAULT_BASELINE, main
from advparity.harness.config import eps_label, load_preset
from advparity.harness.store import Cell, RunStore, params_json, params_of
from advparity.reports.load import Run, load_run
from advparity.reports.regress import Tolerance, build_baseline, compare, read_baseline, write_baseline
from advparity.reports.schema import check_results
from support.report_frames import (
    EPS_GRID,
    FGSM_FLIPS,
    MANIFEST,
    PGD_FLIPS,
    agreeing_run,
    cell,
    clean_frame,
    flipped_preds,
)

LIBRARIES = ("reference", "art", "torchattacks", "foolbox")


def _run(results: pd.DataFrame) -> Run:
    return Run(results=results, clean=clean_frame(), manifest=dict(MANIFEST), run_dir=Path("hand"))


def _with_pgd(results: pd.DataFrame, eps: float, seed: int, pred: np.ndarray) -> pd.DataFrame:
    """Every library's random-start PGD cell at (eps, seed) replaced by the same predictions."""
    keep = ~((results["attack"] == "pgd") & (results["eps"] == eps) & (results["seed"] == seed))
    new = [cell(lib, "pgd", eps, pred, random_start=True, seed=seed) for lib in LIBRARIES]
    return pd.concat([results[keep], *new], ignore_index=True)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return build_baseline(_run(agreeing_run()))


def test_the_same_run_passes_with_nothing_to_say(baseline: dict[str, Any]) -> None:
    result = compare(baseline, build_baseline(_run(agreeing_run())))
    assert result.passed and result.changes == []
    # 1 clean + 4 libraries x 3 eps x (1 FGSM + 2 PGD seeds) accuracies, and 4 x 3 x 2 verdicts.
    assert result.checked == 1 + 36 + 24
    assert baseline["numbers"]["clean"]["k"] == 190
    assert baseline["numbers"]["art FGSM @ 1/255 seed 0"]["k"] == 190 - FGSM_FLIPS[1 / 255]


def test_keys_name_the_variant_by_the_rows_attack_label(baseline: dict[str, Any]) -> None:
    """The runner's label (from the attack's definition) names a cell, so an L2 PGD beside the L∞ one with
    the same steps and start is a cell of its own; rows without the label get the names baselines have."""
    legacy = check_results(agreeing_run())  # the label every FGSM/PGD row of a run carries
    assert build_baseline(_run(legacy))["numbers"].keys() == baseline["numbers"].keys()
    l2 = legacy[legacy["attack"] == "pgd"].assign(attack_label="PGD-L2-10")
    document = build_baseline(_run(pd.concat([legacy, l2], ignore_index=True)))
    assert "art PGD-L2-10 @ 1/255 seed 1" in document["numbers"]
    assert "art PGD-10 @ 1/255 seed 1" in document["numbers"]
    assert len(document["numbers"]) == len(baseline["numbers"]) + 4 * 3 * 2
    assert document["verdicts"]["art PGD-L2-10 @ 1/255"] == "agree"
    assert len(document["verdicts"]) == len(baseline["verdicts"]) + 4 * 3


def test_a_planted_drift_fails_with_a_readable_diff(baseline: dict[str, Any]) -> None:
    # Every library (so the verdicts still agree) loses 4 more samples to PGD at 0.3/255, seed 0: -2 pp.
    eps = 0.3 / 255
    drifted = _with_pgd(agreeing_run(), eps, 0, flipped_preds(PGD_FLIPS[eps] + 4))
    result = compare(baseline, build_baseline(_run(drifted)))
    assert not result.passed
    failed = {c.where for c in result.failures}
    assert failed == {f"{lib} PGD-10 @ 0.3/255 seed 0" for lib in LIBRARIES}
    p = sps.binomtest(0, 4, 0.5).pvalue  # b = 4 became wrong, c = 0 became right
    text = result.text("ci.json")
    assert f"accuracy {100 * (190 - 160) / 200:.2f}% -> {100 * (190 - 164) / 200:.2f}% (-2.00 pp" in text
    assert f"4 sample(s) became wrong, 0 became right; exact McNemar p = {p:.3g}" in text
    assert "|Δ| ≥ 1 pp" in text and text.splitlines()[-1].startswith("FAIL: 4 regression(s)")


def test_a_move_inside_the_tolerance_passes_and_is_listed(baseline: dict[str, Any]) -> None:
    # One more sample wrong in every library: -0.5 pp, p = 1 — noise by the rule, but shown.
    eps = 0.1 / 255
    moved = _with_pgd(agreeing_run(), eps, 1, flipped_preds(PGD_FLIPS[eps] + 2 + 1))
    result = compare(baseline, build_baseline(_run(moved)))
    assert result.passed
    assert [c.severity for c in result.changes] == ["note"] * 4
    assert (
        "-0.50 pp; 1 sample(s) became wrong, 0 became right; exact McNemar p = 1)" in result.changes[0].what
    )
    # The same move fails under a tighter tolerance.
    assert not compare(baseline, build_baseline(_run(moved)), Tolerance(pp=0.5)).passed


def test_a_swap_keeps_the_accuracy_but_is_noted(baseline: dict[str, Any]) -> None:
    eps = 1 / 255
    pred = flipped_preds(FGSM_FLIPS[eps])
    # An exact swap: sample 10 (flipped, wrong) becomes right, sample 199 (right) becomes wrong.
    pred[10], pred[199] = 10 % 4, (199 % 4 + 1) % 4
    swapped = pd.concat(
        [agreeing_run()[lambda f: ~((f["attack"] == "fgsm") & (f["eps"] == eps))]]
        + [cell(lib, "fgsm", eps, pred) for lib in LIBRARIES],
        ignore_index=True,
    )
    result = compare(baseline, build_baseline(_run(swapped)))
    assert result.passed
    notes = [c for c in result.changes if c.where == "art FGSM @ 1/255 seed 0"]
    assert (
        len(notes) == 1
        and "(+0.00 pp; 1 sample(s) became wrong, 1 became right; exact McNemar p = 1)" in notes[0].what
    )


def test_a_verdict_change_fails_even_when_the_numbers_barely_move(baseline: dict[str, Any]) -> None:
    # ART's FGSM at 0.1/255 swaps two samples with the reference: same accuracy, but its x_adv is not
    # the expected one there, so the cross-check now says disagree.
    eps = 0.1 / 255
    pred = flipped_preds(FGSM_FLIPS[eps])
    pred[10], pred[60] = 10 % 4, (60 % 4 + 1) % 4
    results = agreeing_run()
    same = (results["library"] == "art") & (results["attack"] == "fgsm") & (results["eps"] == eps)
    results = pd.concat(
        [results[~same], cell("art", "fgsm", eps, pred, linf_to_ref=2 * eps, pixels_differ=40)],
        ignore_index=True,
    )
    result = compare(baseline, build_baseline(_run(results)))
    assert [(c.where, c.what) for c in result.failures] == [
        ("verdict art FGSM @ 0.1/255", "agree -> disagree")
    ]


def test_significant_but_small_moves_fail_on_large_test_sets() -> None:
    n = 2000

    def doc(correct: np.ndarray) -> dict[str, Any]:
        bits = "".join("1" if c else "0" for c in correct)
        entry = {"n": n, "k": int(correct.sum()), "accuracy_pct": 100 * correct.mean(), "correct": bits}
        return {
            "preset": "x",
            "experiment": {},
            "numbers": {"clean": {**entry, "fingerprint": bits}},
            "verdicts": {},
        }

    old = np.ones(n, dtype=bool)
    old[:4] = False
    # 8 samples that all became wrong: -0.4 pp (< 1 pp) but p = 2 * 0.5**8 = 0.0078 < 0.05.
    drift = old.copy()
    drift[4:12] = False
    result = compare(doc(old), doc(drift))
    assert [c.where for c in result.failures] == ["clean"]
    assert f"p = {sps.binomtest(0, 8, 0.5).pvalue:.3g}) — p < 0.05" in result.failures[0].what
    # 8 that moved both ways (4 right -> wrong, 4 wrong -> right): no change of accuracy, p = 1, a note.
    both_ways = old.copy()
    both_ways[:4], both_ways[4:8] = True, False
    result = compare(doc(old), doc(both_ways))
    assert result.passed and [c.severity for c in result.changes] == ["note"]


def test_a_changed_grid_or_experiment_fails(baseline: dict[str, Any]) -> None:
    results = agreeing_run()
    fewer = results[~((results["attack"] == "fgsm") & (results["eps"] == EPS_GRID[0]))]
    failed = {c.where for c in compare(baseline, build_baseline(_run(fewer))).failures}
    assert {f"{lib} FGSM @ 0.1/255 seed 0" for lib in LIBRARIES} <= failed
    assert "verdict art FGSM @ 0.1/255" in failed

    other = build_baseline(_run(agreeing_run()))
    other["preset"] = "demo"
    other["experiment"] = {**other["experiment"], "test_limit": 64}
    failed = {c.where for c in compare(baseline, other).failures}
    assert failed == {"preset", "experiment test_limit"}


def test_the_cli_updates_then_checks_and_fails_on_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    clean_frame().to_parquet(run_dir / "clean.parquet")
    keys = ["library", "attack", "eps", "steps", "random_start", "seed"]
    for i, (_, part) in enumerate(agreeing_run().groupby(keys, sort=False)):
        part.to_parquet(run_dir / "cells" / f"cell-{i:03d}.parquet")
    baseline_path = tmp_path / "baselines" / "hand.json"

    assert main(["regress", str(run_dir), "--baseline", str(baseline_path)]) == 2  # none yet: says how
    assert "--update" in capsys.readouterr().err
    assert main(["regress", str(run_dir), "--baseline", str(baseline_path), "--update"]) == 0
    assert main(["regress", str(run_dir), "--baseline", str(baseline_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("PASS")

    # Plant a drift in one cell file on disk: ART's FGSM at 1/255 loses 10 samples.
    eps = 1 / 255
    victim = next(
        p
        for p in (run_dir / "cells").glob("*.parquet")
        if (lambda f: (f["library"].iloc[0], f["attack"].iloc[0], f["eps"].iloc[0]) == ("art", "fgsm", eps))(
            pd.read_parquet(p)
        )
    )
    cell("art", "fgsm", eps, flipped_preds(FGSM_FLIPS[eps] + 10), pixels_differ=500).to_parquet(victim)
    assert main(["regress", str(run_dir), "--baseline", str(baseline_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  art FGSM @ 1/255 seed 0: accuracy 20.00% -> 15.00% (-5.00 pp" in out
    assert "FAIL  verdict art FGSM @ 1/255: agree -> disagree" in out
    assert load_run(run_dir).results["library"].nunique() == 4  # the check read the run, did not change it


def test_write_and_read_round_trip_and_errors(baseline: dict[str, Any], tmp_path: Path) -> None:
    path = write_baseline(baseline, tmp_path / "b.json")
    assert read_baseline(path) == json.loads(json.dumps(baseline))
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_baseline(path)
    path.write_text(json.dumps({"schema": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="expected schema 1, got 99"):
        read_baseline(path)
    with pytest.raises(ValueError, match="tolerance"):
        Tolerance(pp=0)


def test_the_committed_ci_baseline_matches_the_ci_preset() -> None:
    """Editing the ci preset without re-baselining fails here, before `make regress` trains anything."""
    committed = read_baseline(DEFAULT_BASELINE)
    attack = load_preset("ci").attack
    assert committed["preset"] == "ci"
    assert committed["experiment"]["attack"]["fgsm_eps"] == [eps_label(e) for e in attack.fgsm_eps]
    assert committed["experiment"]["attack"]["pgd_eps"] == [eps_label(e) for e in attack.pgd_eps]
    assert committed["experiment"]["test_limit"] == attack.test_limit
    n_cells = len(attack.libraries) * len(attack.fgsm_eps) + len(attack.pgd_eps) * (
        len(attack.reference_seeds) + (len(attack.libraries) - 1) * len(attack.library_seeds)
    )
    assert len(committed["numbers"]) == 1 + n_cells
    assert all(len(e["correct"]) == e["n"] == attack.test_limit for e in committed["numbers"].values())


def _on(hardware: dict[str, Any], results: pd.DataFrame | None = None) -> dict[str, Any]:
    """A baseline document of ``results`` (the agreeing scene) made on ``hardware``."""
    document = build_baseline(_run(agreeing_run() if results is None else results))
    document["provenance"]["hardware"] = hardware
    return document


AVX2 = {"machine": "x86_64", "cpu": "AMD EPYC", "cpu_capability": "AVX2", "torch_threads": 2, "gpu": None}


def test_numbers_that_move_on_other_kernels_are_not_called_regressions() -> None:
    """What an AVX-512 host did to an AVX2 baseline: many numbers moved, none of them a regression."""
    drifted = _with_pgd(agreeing_run(), 0.3 / 255, 0, flipped_preds(PGD_FLIPS[0.3 / 255] + 4))
    result = compare(_on(AVX2), _on({**AVX2, "cpu_capability": "AVX512"}, drifted))
    assert result.environment == ["CPU kernels: this run AVX512, the baseline AVX2"]
    assert result.failures == [] and len(result.uncheckable) == 4  # the four libraries' cells
    assert (result.passed, result.exit_code) == (False, 2)
    text = result.text()
    assert "not made where the baseline was, in what decides round-off: CPU kernels" in text
    assert "CANNOT CHECK HERE: 0 regression(s), 4 number(s) not checkable here" in text
    assert "--update" in text and "cpu_isa" in text


def test_many_uncheckable_numbers_are_summarised() -> None:
    drifted = agreeing_run()
    for eps in EPS_GRID:
        drifted = _with_pgd(drifted, eps, 0, flipped_preds(PGD_FLIPS[eps] - 6))
    result = compare(_on(AVX2), _on({**AVX2, "torch_threads": 16}, drifted))
    assert len(result.uncheckable) == 12
    text = result.text()
    assert text.count("UNCHECKABLE") == 3 and "... and 9 more numbers that moved" in text


def test_same_environment_still_fails_and_a_verdict_change_fails_anywhere() -> None:
    drifted = _with_pgd(agreeing_run(), 0.3 / 255, 0, flipped_preds(PGD_FLIPS[0.3 / 255] + 4))
    assert compare(_on(AVX2), _on(AVX2, drifted)).exit_code == 1
    eps = 0.1 / 255
    results = agreeing_run()
    same = (results["library"] == "art") & (results["attack"] == "fgsm") & (results["eps"] == eps)
    differs = cell("art", "fgsm", eps, flipped_preds(FGSM_FLIPS[eps]), pixels_differ=40)
    changed = pd.concat([results[~same], differs], ignore_index=True)
    result = compare(_on(AVX2), _on({**AVX2, "cpu_capability": "AVX512"}, changed))
    assert [c.where for c in result.failures] == ["verdict art FGSM @ 0.1/255"]
    assert result.exit_code == 1


def test_an_old_baseline_without_kernels_gets_a_note_and_a_changed_split_fails() -> None:
    old = _on({"machine": "x86_64", "cpu": "AMD EPYC", "torch_threads": 2})
    result = compare(old, _on(AVX2))
    assert result.passed
    assert [(c.where, c.severity) for c in result.changes] == [("baseline", "note")]
    assert "does not record CPU kernels, GPU" in result.changes[0].what
    made, other_split = _on(AVX2), _on(AVX2)
    made["provenance"]["split_sha256"], other_split["provenance"]["split_sha256"] = "a" * 64, "0" * 64
    assert [c.where for c in compare(made, other_split).failures] == ["test split"]


def _write_run(run_dir: Path, results: pd.DataFrame, manifest: dict[str, Any]) -> Path:
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    clean_frame().to_parquet(run_dir / "clean.parquet")
    keys = ["library", "attack", "eps", "steps", "alpha", "random_start", "seed"]
    store = RunStore(run_dir)
    for (library, attack, eps, steps, alpha, random_start, seed), part in results.groupby(keys, sort=False):
        columns = {"steps": int(steps), "alpha": alpha, "random_start": bool(random_start)}
        cell_ = Cell(library, attack, eps, int(seed), params_of(attack, "", columns))
        # check_results fills the attack's columns a hand-made frame lacks, as for an older run.
        store.write_cell(
            cell_, check_results(part).assign(eval_seconds=0.0, params=params_json(cell_.params))
        )
    return run_dir


def test_update_refuses_a_run_whose_libraries_disagree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eps = 0.1 / 255
    results = agreeing_run()
    same = (results["library"] == "art") & (results["attack"] == "fgsm") & (results["eps"] == eps)
    bad = pd.concat(
        [results[~same], cell("art", "fgsm", eps, flipped_preds(FGSM_FLIPS[eps]), pixels_differ=40)],
        ignore_index=True,
    )
    run_dir = _write_run(tmp_path / "run", bad, dict(MANIFEST))
    path = tmp_path / "b.json"
    assert main(["regress", str(run_dir), "--baseline", str(path), "--update"]) == 2
    assert "1 verdict(s)" in capsys.readouterr().err and not path.exists()
    assert main(["regress", str(run_dir), "--baseline", str(path), "--update", "--accept-disagreements"]) == 0
    assert read_baseline(path)["verdicts"]["art FGSM @ 0.1/255"] == "disagree"


def test_update_refuses_a_run_with_missing_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = dict(MANIFEST)
    # The grid this run was planned with (what `run` records): the scene has PGD at 3 eps, 2 seeds.
    manifest["config"] = {
        "attack": {
            "libraries": list(LIBRARIES),
            "fgsm_eps": [eps_label(e) for e in EPS_GRID],
            "pgd_eps": [eps_label(e) for e in EPS_GRID],
            "pgd_steps": 10,
            "reference_seeds": [0, 1],
            "library_seeds": [0, 1],
        }
    }
    results = agreeing_run()
    unfinished = results[~((results["library"] == "art") & (results["attack"] == "pgd"))]  # 6 cells short
    run_dir = _write_run(tmp_path / "run", unfinished, manifest)
    assert main(["regress", str(run_dir), "--baseline", str(tmp_path / "b.json"), "--update"]) == 2
    assert "is missing 6 of its cells (e.g. pgd__eps" in capsys.readouterr().err
    # The complete run is accepted.
    complete = _write_run(tmp_path / "complete", results, manifest)
    assert main(["regress", str(complete), "--baseline", str(tmp_path / "b.json"), "--update"]) == 0
