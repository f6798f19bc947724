"""The command line: each step end to end on the smoke preset, reuse, and exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from advparity.harness.cli import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, main
from advparity.model.checkpoint import load_checkpoint


def test_help_for_every_command() -> None:
    for command in ([], ["synth"], ["train"], ["demo"]):
        result = subprocess.run(
            [sys.executable, "-m", "advparity", *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "usage: python -m advparity" in result.stdout


def test_synth_writes_the_kaggle_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth"
    assert (
        main(["-q", "synth", "--out", str(out), "--total", "200", "--size", "32", "--seed", "1"]) == EXIT_OK
    )
    assert "200 images 32x32" in capsys.readouterr().out
    assert len(list((out / "Normal" / "images").glob("*.png"))) == 96
    assert main(["-q", "synth", "--out", str(tmp_path / "b"), "--per-class", "3", "--size", "32"]) == EXIT_OK
    assert len(list((tmp_path / "b" / "Viral Pneumonia" / "masks").glob("*.png"))) == 3


def test_demo_smoke_end_to_end_then_reuse(
    smoke_demo: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first run: `demo --preset smoke --out OUT --device cpu`, shared with the Grad-CAM tests.
    demo, printed = smoke_demo
    assert "trained DenseNet-121 (smoke preset, 32 px, cpu)" in printed
    for name in ("model.safetensors", "model.json", "split.csv", "history.csv", "training_curves.png"):
        assert (demo / "model" / name).is_file(), name
    card = json.loads((demo / "model" / "model.json").read_text())
    assert card["recipe"]["image_size"] == 32 and card["data"]["split_seed"] == 42
    assert sum(card["data"]["counts"]["test"].values()) == card["metrics"]["test_n"] == 16
    model, _ = load_checkpoint(demo / "model" / "model.safetensors")
    assert model.num_classes == 4

    # A second run reuses the data and the checkpoint instead of training again: in a copy of OUT, which
    # it writes to, so the shared one stays as the first run left it.
    out = tmp_path / "run"
    shutil.copytree(demo, out)
    assert main(["-q", "demo", "--preset", "smoke", "--out", str(out), "--device", "cpu"]) == EXIT_OK
    assert "reused DenseNet-121" in capsys.readouterr().out


def test_train_on_a_data_folder(tmp_path: Path, synthetic_root: Path) -> None:
    out = tmp_path / "trained"
    args = ["-q", "train", "--preset", "smoke", "--data", str(synthetic_root), "--out", str(out)]
    assert main(args) == EXIT_OK
    assert (out / "model.safetensors").is_file() and (out / "training_curves.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--preset", "nope", "--out", "{tmp}/x"], "unknown preset 'nope'"),
        (["train", "--preset", "smoke", "--data", "{tmp}/missing", "--out", "{tmp}/x"], "does not exist"),
        (["demo", "--preset", "paper", "--out", "{tmp}/x"], "pass --data"),
        (["demo", "--preset", "smoke", "--out", "{tmp}/x", "--device", "potato"], "unknown device 'potato'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["-q", *[a.replace("{tmp}", str(tmp_path)) for a in args]])
    assert code == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["synth"])  # --out is required
    assert exit_info.value.code == 2


def test_a_negative_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--limit -5 used to slice off the last 5 test images silently."""
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--preset", "smoke", "--checkpoint", "m.safetensors", "--out", "r", "--limit", "-5"])
    assert exit_info.value.code == 2
    assert "expected an integer >= 0, got -5" in capsys.readouterr().err


def test_a_failure_of_the_tool_itself_exits_3_not_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """1 means "a library disagrees / numbers drifted"; a crash must not read as that."""
    from advparity.harness import cli

    def broken(args: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "_dispatch", broken)
    assert main(["report", "somewhere"]) == EXIT_INTERNAL == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error: RuntimeError: disk on fire" in err
    assert "advparity itself failed (exit code 3), not a check" in err


def test_skip_corrupt_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main(["-q", "synth", "--out", str(data), "--total", "160", "--size", "32"]) == EXIT_OK
    (data / "Normal" / "images" / "Normal-3.png").write_bytes(b"not an image")
    args = ["-q", "train", "--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "a")]
    assert main(args) == EXIT_BAD_INPUT
    assert "Normal-3.png" in capsys.readouterr().err
    args = [
        "-q",
        "train",
        "--preset",
        "smoke",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "b"),
        "--skip-corrupt",
    ]
    assert main(args) == EXIT_OK
    assert (tmp_path / "b" / "skipped.txt").read_text() == "Normal/images/Normal-3.png\n"


def test_a_saved_split_with_another_seed_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    preset = tmp_path / "other_seed.toml"
    smoke = (Path(__file__).parents[2] / "harness" / "presets" / "smoke.toml").read_text()
    preset.write_text(smoke.replace("split_seed = 42", "split_seed = 7"))
    # `train` writes the split demo would reuse (OUT/model/split.csv) without demo's attacks and report.
    assert main(["-q", "train", "--preset", "smoke", "--out", str(out / "model")]) == EXIT_OK
    assert main(["-q", "demo", "--preset", str(preset), "--out", str(out)]) == EXIT_BAD_INPUT
    assert "not made with split_seed=7" in capsys.readouterr().err


def test_the_paper_preset_runs_end_to_end_on_a_data_folder_with_local_weights(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --preset paper --data PATH --weights FILE`: the paper's recipe (Adam 1e-4, constant rate,
    ImageNet-format local backbone, folder data, 3 reference and 2 library seeds) shrunk only in cost —
    32 px, 1 epoch, 4 test images, 2 PGD steps, no loader workers, and 2 FGSM + 1 PGD eps of its grids
    (test_config checks the full grids) — through to a report with the paper-comparison table."""
    from advparity.harness.config import load_preset
    from safetensors.torch import save_file
    from torchvision.models import densenet121

    text = (Path(__file__).parents[2] / "harness" / "presets" / "paper.toml").read_text()
    for old, new in [
        ("image_size = 224", "image_size = 32"),
        ("max_epochs = 50", "max_epochs = 1"),
        ("num_workers = 4 ", "num_workers = 0 "),
        ("test_limit = 0 ", "test_limit = 4 "),
        ("batch_size = 64", "batch_size = 4"),
        ("pgd_steps = 10", "pgd_steps = 2"),
    ]:
        assert old in text, old  # the paper preset still reads as this test expects
        text = text.replace(old, new)
    # The core libraries only: the optional ones cost time here and are run end to end by the mutation
    # suite (whose unmutated run also checks that the documented departures, and only they, disagree).
    text = re.sub(
        r"\nlibraries = \[[^\]]*\]", '\nlibraries = ["reference", "art", "torchattacks", "foolbox"]', text
    )
    text = re.sub(r"fgsm_eps = \[[^\]]*\]", 'fgsm_eps = ["0.1/255", "0.3/255"]', text)
    text = re.sub(r"pgd_eps = \[[^\]]*\]", 'pgd_eps = ["0.1/255"]', text)
    # Its APGD tables: one eps, 2 of the original's 100 iterations, from torchattacks' port (ART's own
    # APGD is a documented disagreement, which would make the run exit 1).
    assert text.count("\nsteps = 100\n") == 2
    text = re.sub(r"\neps = \[[^\]]*\]", '\neps = ["0.1/255"]', text)
    text = text.replace("\nsteps = 100\n", '\nsteps = 2\nlibraries = ["torchattacks"]\n')
    preset_path = tmp_path / "paper-shrunk.toml"
    preset_path.write_text(text)
    paper, shrunk = load_preset("paper"), load_preset(preset_path)
    assert shrunk.train.lr == paper.train.lr and shrunk.attack.reference_seeds == paper.attack.reference_seeds
    assert shrunk.attack.pgd_eps == (0.1 / 255,) and shrunk.data.source == "folder"
    assert shrunk.attack.libraries == ("reference", "art", "torchattacks", "foolbox")

    weights = tmp_path / "densenet121-imagenet.safetensors"
    save_file(densenet121(weights=None).state_dict(), str(weights))  # ImageNet format: 1000-way head
    out = tmp_path / "paper"
    args = ["-q", "demo", "--preset", str(preset_path), "--data", str(synthetic_root), "--out", str(out)]
    assert main([*args, "--weights", str(weights), "--device", "cpu"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "clean test accuracy" in printed and "Cross-check:" in printed
    card = json.loads((out / "model" / "model.json").read_text())
    assert card["recipe"]["weights"] == str(weights) and card["recipe"]["lr"] == 1e-4
    # FGSM: 2 eps x 4 libraries; PGD: 3 reference seeds + 3 libraries x 2; APGD-CE and -DLR: 3 + 2 of
    # torchattacks.
    assert len(list((out / "run" / "cells").glob("*.parquet"))) == 2 * 4 + 1 * (3 + 3 * 2) + 2 * (3 + 2)
    comparison = (out / "run" / "tables" / "paper_comparison.md").read_text()
    assert "95.42" in comparison and "59.28" in comparison and "25.32" in comparison
