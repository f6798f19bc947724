"""The runner and its store: rows per cell, gradient reuse, resume after a kill, refusal of a changed config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from advparity.harness.cli import EXIT_BAD_INPUT, EXIT_OK, main
from advparity.harness.config import load_preset
from advparity.harness.judge import judge
from advparity.harness.plan import plan_cells
from advparity.harness.runner import RunRequest, ordered_test_rows, run
from advparity.harness.store import RunDirError, RunStore
from advparity.model.data import load_split
from advparity.reports.load import load_run

from advparity import adapters

TIMING = ["seconds", "eval_seconds"]

# Heavier PGD than the smoke preset, so a run can be killed while cells are still being computed.
RESUME_PRESET = """
name = "resume-test"
[data]
source = "synthetic"
synthetic_total = 160
[train]
image_size = 32
weights = "none"
lr = 1e-3
max_epochs = 1
batch_size = 16
[attack]
fgsm_eps = ["0.5/255", "1/255", "2/255"]
pgd_eps = ["1/255", "2/255"]
pgd_steps = 5
reference_seeds = [0, 1]
library_seeds = [0]
test_limit = 8
batch_size = 4
"""


def _request(checkpoint: Path, root: Path, out: Path, preset: str = "smoke", **kwargs: object) -> RunRequest:
    return RunRequest(preset=load_preset(preset), checkpoint=checkpoint, data_root=root, out=out, **kwargs)  # type: ignore[arg-type]


def _comparable(results: pd.DataFrame) -> pd.DataFrame:
    keys = ["attack", "eps", "seed", "library", "sample"]
    return results.drop(columns=TIMING).sort_values(keys).reset_index(drop=True)


def test_smoke_run_writes_every_row_and_the_manifest(trained: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, root = trained
    summary = run(_request(checkpoint, root, tmp_path / "run"), progress=False)
    preset = load_preset("smoke")
    cells = plan_cells(preset.attack)
    # 3 FGSM eps x 4 libraries + 1 PGD eps x (3 libraries x 1 seed + reference x 2 seeds) + APGD-CE-10
    # (torchattacks x 1 seed + reference x 2 seeds)
    assert len(cells) == summary.cells_total == summary.cells_run == 20
    store = RunStore(tmp_path / "run")
    results = store.read_results()
    # The run summary's cost of checking, per attack, is the cells' own seconds summed.
    per_cell = results.drop_duplicates(["library", "attack", "eps", "seed"])
    assert set(summary.seconds_by_attack) == {"FGSM", "PGD-3", "APGD-CE-10"}
    for label, (attack, check) in summary.seconds_by_attack.items():
        cells_of = per_cell[per_cell["attack_label"] == label]
        assert attack == pytest.approx(cells_of["seconds"].sum()) and attack > 0
        assert check == pytest.approx(cells_of["eval_seconds"].sum()) and check > 0
    assert len(results) == 20 * 8
    assert not results.duplicated(["library", "attack", "eps", "seed", "sample"]).any()
    assert results["in_bounds"].all() and (results["error"] == "").all()
    reference = results[results["library"] == "reference"]
    assert (reference["linf_to_ref"] == 0).all()
    # Deterministic attacks: every library's FGSM is the reference's, bit for bit (issue 4's finding).
    fgsm = results[results["attack"] == "fgsm"]
    assert (fgsm["linf_to_ref"] == 0).all()
    assert (results["linf"] <= results["eps"] + 1.2e-7).all()
    # Below 0.5/255 every perturbation rounds back to the clean 8-bit image.
    small = results[results["eps"] < 0.5 / 255]
    assert (small["pred_adv_8bit"] == small["pred_clean"]).all() and (small["linf_8bit"] == 0).all()

    manifest = store.manifest()
    assert len(manifest["config_hash"]) == 64 and manifest["n_samples"] == 8
    assert manifest["checkpoint"]["sha256"] == manifest["config"]["checkpoint_sha256"]
    for library in ("torch", "adversarial-robustness-toolbox", "torchattacks", "foolbox"):
        assert manifest["versions"][library] != "not installed"
    # Every adapter in adapters.names() order with its display name: how reports order and name libraries.
    assert manifest["libraries"] == [
        {"name": n, "display": adapters.display_name(n)} for n in adapters.names()
    ]
    assert load_run(tmp_path / "run").libraries.label("art") == "ART"
    clean = store.read_clean()
    assert list(clean["sample"]) == list(range(8))
    merged = results.merge(clean, on="sample", suffixes=("", "_c"))
    assert (merged["pred_clean"] == merged["pred_clean_c"]).all() and (
        merged["label"] == merged["label_c"]
    ).all()


def test_reference_fgsm_pays_one_gradient_for_the_whole_grid(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, root = trained
    run(_request(checkpoint, root, tmp_path / "run", attacks=("fgsm",)), progress=False)
    results = RunStore(tmp_path / "run").read_results()
    per_cell = results.groupby(["library", "eps"])[["forward_passes", "backward_passes"]].first()
    reference = per_cell.loc["reference"]
    assert len(reference) == 3
    assert reference["backward_passes"].sum() == pytest.approx(1.0)  # one backward per image, not 3
    assert reference["forward_passes"].sum() == pytest.approx(1.0)
    assert (per_cell.loc["art"]["backward_passes"] == 1.0).all()


def test_fgsm_checks_eps_0_once_per_library_for_the_whole_grid(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FGSM's call at eps = 0 does not depend on the cell's eps: one per library, recorded in every cell."""
    import json

    from advparity.adapters import invariants

    calls: list[str] = []
    real = invariants.zero_budget

    def counted(adapter, model, x, y, spec):  # type: ignore[no-untyped-def]
        calls.append(adapter.name)
        return real(adapter, model, x, y, spec)

    monkeypatch.setattr(invariants, "zero_budget", counted)
    checkpoint, root = trained
    libraries = ("reference", "torchattacks", "foolbox")
    run(_request(checkpoint, root, tmp_path / "run", attacks=("fgsm",), libraries=libraries), progress=False)
    assert sorted(calls) == sorted(libraries)
    results = RunStore(tmp_path / "run").read_results()
    per_cell = results.groupby(["library", "eps"])["invariants"].first()
    assert len(per_cell) == 3 * len(libraries)
    for recorded in per_cell:
        zero = next(c for c in json.loads(recorded)["checks"] if c["name"] == invariants.ZERO_BUDGET)
        assert zero["passed"] is True, zero


def test_test_images_are_a_fixed_class_mixed_subset(trained: tuple[Path, Path]) -> None:
    checkpoint, _ = trained
    split = load_split(checkpoint.parent / "split.csv")
    ordered = ordered_test_rows(split)
    assert list(ordered_test_rows(split)["image"]) == list(ordered["image"])
    assert ordered.iloc[:8]["class_name"].nunique() >= 2  # not the first class's images only
    assert sorted(ordered["image"]) == sorted(split[split["split"] == "test"]["image"])


def test_filters_outside_the_grid_are_errors() -> None:
    attack = load_preset("smoke").attack
    with pytest.raises(ValueError, match=r"--eps: \['3/255'\] not in this preset's grid"):
        plan_cells(attack, eps=(3 / 255,))
    with pytest.raises(ValueError, match=r"--libraries: \['advbox'\]"):
        plan_cells(attack, libraries=("advbox",))
    assert {c.library for c in plan_cells(attack, libraries=("reference", "art"))} == {"reference", "art"}


def test_a_negative_limit_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, root = trained
    with pytest.raises(
        ValueError, match=r"expected limit to be an integer >= 0 \(0 = all test images\), got -5"
    ):
        run(_request(checkpoint, root, tmp_path / "run", limit=-5), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_changed_config_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, root = trained
    run(_request(checkpoint, root, tmp_path / "run", attacks=("fgsm",)), progress=False)
    with pytest.raises(RunDirError, match="another configuration"):
        run(_request(checkpoint, root, tmp_path / "run", limit=4), progress=False)
    code = main(
        [
            "-q",
            "run",
            "--preset",
            "smoke",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "run"),
            "--limit",
            "4",
        ]
    )
    assert code == EXIT_BAD_INPUT


def test_resume_after_a_kill_gives_the_uninterrupted_results(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, root = trained
    preset = tmp_path / "resume.toml"
    preset.write_text(RESUME_PRESET)
    args = [
        "run",
        "--preset",
        str(preset),
        "--checkpoint",
        str(checkpoint),
        "--data",
        str(root),
        "--device",
        "cpu",
    ]

    straight = tmp_path / "straight"
    assert main(["-q", *args, "--out", str(straight)]) == EXIT_OK

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "advparity", "-q", *args, "--out", str(killed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    cells = killed / "cells"
    deadline = time.monotonic() + 120
    while not (cells.is_dir() and any(cells.glob("*.parquet"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = len(list(cells.glob("*.parquet")))
    assert 0 < finished_before < 22, "the kill should land part-way through the run"
    for finished in cells.glob("*.parquet"):  # whatever has a real name is complete
        assert len(pd.read_parquet(finished)) == 8

    assert main(["-q", *args, "--out", str(killed)]) == EXIT_OK
    resumed = RunStore(killed).read_results()
    pd.testing.assert_frame_equal(_comparable(resumed), _comparable(RunStore(straight).read_results()))
    # 3 FGSM eps x 4 libraries + 2 PGD eps x (3 libraries + the reference's 2 seeds)
    assert len(resumed) == 22 * 8
    assert not list(killed.rglob("*.tmp"))  # the killed run's temporary file was cleaned up
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["config_hash"] == json.loads((straight / "manifest.json").read_text())["config_hash"]


def test_a_partly_finished_fgsm_grid_resumes_to_the_same_numbers(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    # Deterministic version of the kill test's hardest case: some cells of the reference's shared
    # FGSM gradient are already on disk, so the rest must still be amortised over the whole grid.
    checkpoint, root = trained
    run(_request(checkpoint, root, tmp_path / "straight", attacks=("fgsm",)), progress=False)
    partial = tmp_path / "partial"
    run(_request(checkpoint, root, partial, attacks=("fgsm",), eps=(1 / 255,)), progress=False)
    assert len(list((partial / "cells").glob("*.parquet"))) == 4
    summary = run(_request(checkpoint, root, partial, attacks=("fgsm",)), progress=False)
    assert (summary.cells_run, summary.cells_skipped, summary.resumed) == (8, 4, True)
    pd.testing.assert_frame_equal(
        _comparable(RunStore(partial).read_results()),
        _comparable(RunStore(tmp_path / "straight").read_results()),
    )


def test_judge_reuses_the_reference_only_for_identical_images() -> None:
    torch.manual_seed(0)
    from advparity.model.network import build_densenet121

    model = build_densenet121(num_classes=4).eval()
    x = torch.round(torch.rand(6, 3, 32, 32) * 255) / 255
    eps = 2 / 255
    x_ref = (x + eps * torch.randn_like(x).sign()).clamp(0, 1)
    x_adv = x_ref.clone()
    x_adv[3:] = (x[3:] - eps * torch.randn_like(x[3:]).sign()).clamp(0, 1)  # the last three differ
    pred_clean = model(x).argmax(1)
    reference = judge(model, x, x_ref, x_ref, eps, pred_clean)
    reused = judge(model, x, x_adv, x_ref, eps, pred_clean, reference)
    full = judge(model, x, x_adv, x_ref, eps, pred_clean)
    assert (reused.pred == full.pred).all() and (reused.pred_8bit == full.pred_8bit).all()
    assert reused.conf == pytest.approx(full.conf, abs=1e-6)  # batch composition may move the last bits
    assert (reused.linf_to_x_ref[:3] == 0).all() and (reused.linf_to_x_ref[3:] > 0).all()
    # A "reference" with deliberately wrong predictions is used only where the images are identical.
    wrong = replace(reference, pred=(reference.pred + 1) % 4)
    tricked = judge(model, x, x_adv, x_ref, eps, pred_clean, wrong)
    assert (tricked.pred[:3] == wrong.pred[:3]).all() and (tricked.pred[3:] == full.pred[3:]).all()
