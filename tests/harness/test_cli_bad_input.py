"""A new user's mistakes, fed to every subcommand: each is exit 2 with one message naming the argument or file.

Exit 1 means "a library disagrees" and exit 3 "advparity has a bug": a bad path, a damaged file or a typo
must be neither, and must never print a traceback. Each case below once was one of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from advparity.harness import cli as harness_cli
from advparity.harness import commands as harness_commands
from advparity.harness.cli import EXIT_BAD_INPUT, EXIT_OK, main
from advparity.model.checkpoint import card_path
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scene(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A checkpoint, a small finished run, and damaged copies of each: the paths the cases use."""
    checkpoint, _ = trained
    tmp = tmp_path_factory.mktemp("bad_input")
    run = tmp / "run"
    argv = ["-q", "run", "--preset", "smoke", "--checkpoint", str(checkpoint), "--out", str(run)]
    assert main([*argv, "--libraries", "reference,art", "--attacks", "fgsm", "--eps", "1/255"]) == EXIT_OK
    paths = {"ck": checkpoint, "run": run, "tmp": tmp, "file": tmp / "a-file.txt"}
    paths["file"].write_text("not a folder\n")
    card = json.loads(card_path(checkpoint).read_text())

    def checkpoint_copy(
        name: str, weights: bytes, card_edit: dict[str, object], drop: tuple[str, ...]
    ) -> Path:
        path = tmp / f"{name}.safetensors"
        path.write_bytes(weights)
        edited = {k: v for k, v in {**card, **card_edit}.items() if k not in drop}
        card_path(path).write_text(json.dumps(edited))
        return path

    weights = checkpoint.read_bytes()
    # A truncated file whose card has no sha256 (the loader allows such cards) must not reach safetensors.
    paths["ck_truncated"] = checkpoint_copy("truncated", weights[:4000], {}, ("weights_sha256",))
    paths["ck_no_classes"] = checkpoint_copy("no_classes", weights, {}, ("classes",))
    paths["ck_bad_card"] = tmp / "bad_card.safetensors"
    paths["ck_bad_card"].write_bytes(weights)
    card_path(paths["ck_bad_card"]).write_text(json.dumps(card)[:50])
    paths["weights_corrupt"] = tmp / "corrupt_weights.safetensors"
    paths["weights_corrupt"].write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    paths["weights_foreign"] = tmp / "foreign_weights.safetensors"
    import torch

    save_file({"fc.weight": torch.zeros(2, 2)}, str(paths["weights_foreign"]))

    for name, edit in {
        "run_cut_manifest": lambda p: p.write_text((run / "manifest.json").read_text()[:80]),
        "run_empty_manifest": lambda p: p.write_text(""),
        "run_no_clean": None,
    }.items():
        copy = tmp / name
        subprocess.run(["cp", "-r", str(run), str(copy)], check=True)
        if edit is not None:
            edit(copy / "manifest.json")
        else:
            (copy / "clean.parquet").unlink()
        paths[name] = copy
    orphan = tmp / "run_without_reference"
    subprocess.run(["cp", "-r", str(run), str(orphan)], check=True)
    for cell in (orphan / "cells").glob("*reference*"):
        cell.unlink()
    paths["run_without_reference"] = orphan

    baseline = json.loads((REPO / "reports" / "baselines" / "ci.json").read_text())
    paths["baseline_ci"] = tmp / "ci_copy.json"
    paths["baseline_ci"].write_text(json.dumps(baseline))
    paths["baseline_not_utf8"] = tmp / "not_utf8.json"
    paths["baseline_not_utf8"].write_bytes(json.dumps(baseline).encode()[:-1] + b"\xff\xfe}")
    paths["preset_not_utf8"] = tmp / "latin1.toml"
    paths["preset_not_utf8"].write_bytes('name = "r\xe9sum\xe9"\n'.encode("latin-1"))
    factories = tmp / "factories"
    factories.mkdir()
    (factories / "two_argument_factory.py").write_text("def build(num_classes, width):\n    return None\n")
    paths["factories"] = factories
    return paths


# (case id, argv with {name} standing for a scene path, a phrase the message must contain)
CASES = [
    ("synth --out FILE", ["synth", "--out", "{file}", "--total", "200"], "--out '{file}' is a file"),
    (
        "train --out FILE",
        ["train", "--preset", "smoke", "--out", "{file}"],
        "--out '{file}' is a file",
    ),
    ("demo --out FILE", ["demo", "--preset", "smoke", "--out", "{file}"], "--out '{file}' is a file"),
    (
        "run --out FILE",
        ["run", "--preset", "smoke", "--checkpoint", "{ck}", "--out", "{file}"],
        "--out '{file}' is a file",
    ),
    ("synth --out under a FILE", ["synth", "--out", "{file}/sub"], "'{file}' is a file, expected a folder"),
    ("report --out FILE", ["report", "{run}", "--out", "{file}"], "--out '{file}' is a file"),
    (
        "regress --update --baseline DIR",
        ["regress", "{run}", "--update", "--baseline", "{tmp}"],
        "--baseline '{tmp}' is a folder",
    ),
    (
        "bench --json DIR",
        ["bench", "--json", "{tmp}", "--size", "32", "--batch", "1", "--repeats", "1"],
        "--json '{tmp}' is a folder",
    ),
    (
        "regress against another preset's baseline",
        ["regress", "{run}", "--baseline", "{baseline_ci}"],
        "is a run of preset 'smoke', but baseline",
    ),
    (
        "regress --update over another preset's baseline",
        ["regress", "{run}", "--update", "--baseline", "{baseline_ci}"],
        "the baseline of preset 'ci'",
    ),
    (
        "truncated checkpoint, card without sha256",
        ["run", "--preset", "smoke", "--checkpoint", "{ck_truncated}", "--out", "{tmp}/r1"],
        "checkpoint '{ck_truncated}' cannot be read",
    ),
    (
        "card without classes",
        ["run", "--preset", "smoke", "--checkpoint", "{ck_no_classes}", "--out", "{tmp}/r2"],
        "expected 'classes'",
    ),
    (
        "card cut short",
        ["run", "--preset", "smoke", "--checkpoint", "{ck_bad_card}", "--out", "{tmp}/r3"],
        "checkpoint card '{tmp}/bad_card.json' is not valid JSON",
    ),
    (
        "missing checkpoint",
        ["run", "--preset", "smoke", "--checkpoint", "{tmp}/nope.safetensors", "--out", "{tmp}/r4"],
        "checkpoint '{tmp}/nope.safetensors' does not exist",
    ),
    (
        "--weights a corrupt file",
        ["train", "--preset", "smoke", "--weights", "{weights_corrupt}", "--out", "{tmp}/t1"],
        "weights '{weights_corrupt}': cannot be read",
    ),
    (
        "--weights another model's file",
        ["train", "--preset", "smoke", "--weights", "{weights_foreign}", "--out", "{tmp}/t2"],
        "weights '{weights_foreign}': not the ImageNet backbone",
    ),
    (
        "--model factory with another signature",
        ["train", "--preset", "smoke", "--model", "two_argument_factory:build", "--out", "{tmp}/t3"],
        "calling factory(4) failed",
    ),
    (
        "manifest cut short",
        ["report", "{run_cut_manifest}"],
        "run manifest '{run_cut_manifest}/manifest.json'",
    ),
    ("manifest empty", ["report", "{run_empty_manifest}"], "'{run_empty_manifest}/manifest.json' is empty"),
    ("baseline not UTF-8", ["regress", "{run}", "--baseline", "{baseline_not_utf8}"], "is not UTF-8 text"),
    ("gradcam without clean.parquet", ["gradcam", "{run_no_clean}"], "has no clean.parquet"),
    ("report on a run without the reference", ["report", "{run_without_reference}"], "is unfinished"),
    (
        "preset not UTF-8",
        ["run", "--preset", "{preset_not_utf8}", "--checkpoint", "{ck}", "--out", "{tmp}/r5"],
        "is not UTF-8 text",
    ),
    (
        "--eps 8",
        ["run", "--preset", "smoke", "--checkpoint", "{ck}", "--out", "{tmp}/r6", "--eps", "8"],
        'write "8/255"',
    ),
    (
        "--eps a decimal outside the grid",
        ["run", "--preset", "smoke", "--checkpoint", "{ck}", "--out", "{tmp}/r7", "--eps", "0.003921"],
        "['0.999855/255'] not in this preset's grid",
    ),
]

# Mistakes argparse itself reports (exit 2 through SystemExit), with the option they must name.
USAGE_CASES = [
    (
        "--libraries ''",
        ["run", "--preset", "smoke", "--checkpoint", "{ck}", "--out", "{tmp}/u1", "--libraries", ""],
        "--libraries",
    ),
    (
        "--eps ''",
        ["run", "--preset", "smoke", "--checkpoint", "{ck}", "--out", "{tmp}/u2", "--eps", " , "],
        "--eps",
    ),
    ("synth --seed=-1", ["synth", "--seed=-1", "--out", "{tmp}/s1"], "--seed"),
    ("synth --size x", ["synth", "--size", "x", "--out", "{tmp}/s2"], "--size"),
]


def _argv(template: list[str], scene: dict[str, Path]) -> list[str]:
    return ["-q", *(part.format(**{k: str(v) for k, v in scene.items()}) for part in template)]


@pytest.mark.parametrize(("argv", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_exit_2_with_a_message_naming_it(
    argv: list[str],
    phrase: str,
    scene: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(scene["factories"]))
    code = main(_argv(argv, scene))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert "Traceback" not in err
    assert phrase.format(**{k: str(v) for k, v in scene.items()}) in err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one paragraph, no report to scroll


@pytest.mark.parametrize(("argv", "option"), [c[1:] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES])
def test_usage_mistakes_name_the_option(
    argv: list[str], option: str, scene: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(_argv(argv, scene))
    err = capsys.readouterr().err
    assert stopped.value.code == EXIT_BAD_INPUT
    assert f"argument {option}" in err and "Traceback" not in err
    assert not (scene["tmp"] / "s1").exists()  # nothing half-made


def test_update_without_baseline_never_overwrites_the_ci_baseline(
    scene: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`regress SMOKE_RUN --update` used to replace the committed ci.json with the smoke run (exit 0)."""
    committed = scene["tmp"] / "committed_ci.json"
    committed.write_bytes(scene["baseline_ci"].read_bytes())
    for module in (harness_cli, harness_commands):  # the output check and the command read it
        monkeypatch.setattr(module, "DEFAULT_BASELINE", committed)
    before = committed.read_bytes()
    assert main(["-q", "regress", str(scene["run"]), "--update"]) == EXIT_BAD_INPUT
    assert "the baseline of preset 'ci'" in capsys.readouterr().err
    assert committed.read_bytes() == before
    # Where the default baseline does not exist yet, only a ci run may create it.
    committed.unlink()
    assert main(["-q", "regress", str(scene["run"]), "--update"]) == EXIT_BAD_INPUT
    assert "name the file to write with --baseline" in capsys.readouterr().err
    assert not committed.exists()


def test_a_long_eps_list_gives_a_short_message(
    scene: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    many = ",".join(f"{k}/1000" for k in range(1, 9000))  # not 255ths: the first fails, and says which
    argv = [
        "-q",
        "run",
        "--preset",
        "smoke",
        "--checkpoint",
        str(scene["ck"]),
        "--out",
        str(scene["tmp"] / "e"),
    ]
    assert main([*argv, "--eps", many]) == EXIT_BAD_INPUT
    assert len(capsys.readouterr().err) < 300
    in_range = ",".join(
        f"{k / 100:g}/255" for k in range(1, 9000)
    )  # valid eps, none in the grid but 0.1 etc.
    assert main([*argv, "--eps", in_range]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "more not in this preset's grid" in err and len(err) < 400, err[:500]


def _subprocess(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advparity", "-q", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def test_a_kernel_pin_conflict_before_the_cli_is_exit_2(scene: dict[str, Path]) -> None:
    """The pin is applied in ``__main__`` before torch loads, outside ``main``'s handler: it was exit 1."""
    result = _subprocess(
        ["run", "--preset", "ci", "--checkpoint", str(scene["ck"]), "--out", str(scene["tmp"] / "k")],
        env={"ATEN_CPU_CAPABILITY": "default"},
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "Traceback" not in result.stderr
    assert "ATEN_CPU_CAPABILITY=default" in result.stderr


def test_a_non_utf8_preset_is_exit_2_from_the_command_line(scene: dict[str, Path]) -> None:
    """``python -m advparity`` reads the preset before ``main`` to pin kernels: a non-UTF-8 file raised there."""
    result = _subprocess(
        [
            "run",
            "--preset",
            str(scene["preset_not_utf8"]),
            "--checkpoint",
            str(scene["ck"]),
            "--out",
            str(scene["tmp"] / "p"),
        ]
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "Traceback" not in result.stderr and "is not UTF-8 text" in result.stderr


def test_interrupted_is_a_documented_exit_code() -> None:
    for doc in ("docs/cli.md", "docs/design.md"):
        assert "130 interrupted" in (REPO / doc).read_text(encoding="utf-8"), doc
    assert harness_cli.EXIT_INTERRUPTED == 130


def test_imagenet_weights_offline_is_exit_2(
    scene: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision downloads ImageNet weights on first use; offline that raised URLError (exit 3)."""
    import urllib.error

    from advparity.model import network

    def offline(**_: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(network, "densenet121", offline)
    argv = ["-q", "train", "--preset", "smoke", "--weights", "imagenet", "--out", str(scene["tmp"] / "i")]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "weights 'imagenet': cannot download" in err and "--weights PATH" in err and "Traceback" not in err
