"""The command line's grammar: ``python -m advparity``'s subcommands, their options and the option types
(each refusing a bad value with the expected form)."""

from __future__ import annotations

import argparse
from pathlib import Path

# The committed baseline of the `ci` preset, found beside the reports package (also in a wheel).
DEFAULT_BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "ci.json"
DEFAULT_BASELINE_PRESET = "ci"  # the preset DEFAULT_BASELINE was made by: only its runs may --update it


def _csv(text: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    if not parts:
        # An empty list would otherwise mean "all" (or nothing) depending on the option: neither is asked for.
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of one or more values, got {text!r}"
        )
    return parts


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m advparity",
        description="advparity: cross-library FGSM/PGD parity and robustness on chest X-ray DenseNet-121.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser(
        "synth",
        help="write a synthetic chest X-ray data set (with lung masks) in the Kaggle folder layout",
        description="Write <OUT>/<Class>/images/*.png and <OUT>/<Class>/masks/*.png.",
    )
    synth.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    amount = synth.add_mutually_exclusive_group()
    amount.add_argument(
        "--total", type=_positive_int, help="images in all, in the real set's class shares (default 2000)"
    )
    amount.add_argument("--per-class", type=_positive_int, help="images in every class (a balanced set)")
    synth.add_argument("--size", type=_positive_int, default=64, help="image side in pixels (default 64)")
    synth.add_argument("--seed", type=_non_negative_int, default=0, help="generator seed (default 0)")

    train = commands.add_parser(
        "train",
        help="split a data folder 80/10/10 and train DenseNet-121 per a preset",
        description="Writes OUT/split.csv, OUT/model.safetensors + model.json, history.csv, training_curves.png.",
    )
    _add_common(train)
    train.add_argument(
        "--data",
        type=Path,
        help="data root (the Kaggle folder or its parent); default: a synthetic preset's set, written to OUT/data",
    )

    run = commands.add_parser(
        "run",
        help="attack a checkpoint with every library x attack x eps of a preset; resumable",
        description="Writes OUT/manifest.json, OUT/clean.parquet and OUT/cells/*.parquet (one row per sample). "
        "Re-running into the same OUT skips finished cells.",
    )
    run.add_argument(
        "--preset", default="demo", help="preset name (smoke, ci, demo, wide, paper) or a .toml path"
    )
    run.add_argument(
        "--checkpoint", type=Path, required=True, help="model.safetensors (its .json card beside it)"
    )
    run.add_argument(
        "--data", type=Path, help="data root (default: the one recorded in the checkpoint's card)"
    )
    run.add_argument("--out", type=Path, required=True, help="run directory (new, or one to resume)")
    run.add_argument("--split", type=Path, help="split CSV (default: the one next to the checkpoint)")
    run.add_argument("--libraries", type=_csv, help="comma-separated subset, e.g. reference,art")
    run.add_argument(
        "--attacks", type=_csv, help="comma-separated registry names of the preset's attacks (fgsm,pgd, ...)"
    )
    run.add_argument("--eps", type=_csv, help='comma-separated subset of the grid, e.g. "0.1/255,1/255"')
    run.add_argument("--limit", type=_non_negative_int, help="attack only the first N test images (0 = all)")
    _add_device(run)
    _add_trust(run)
    _add_executor(run)

    report = commands.add_parser(
        "report",
        help="cross-check verdicts, sanity flags, tables, figures and report.html for a run directory",
        description="Exit code 1 when any library disagrees with the reference or returned invalid output.",
    )
    report.add_argument("run_dir", type=Path, help="a directory written by `run`")
    report.add_argument(
        "--out", type=Path, help="where to write report.html, tables/ and figures/ (default: RUN_DIR)"
    )

    gradcam = commands.add_parser(
        "gradcam",
        help="Grad-CAM clean vs adversarial (Sc, lung share) on a few images per class of a run",
        description="Regenerates x_adv for a bounded sample, checks the predictions against the run's, and writes "
        "RUN_DIR/gradcam/ (gradcam.parquet, summary.csv, meta.json, figures/); `report` then includes it. "
        "Exit code 1 when a regenerated prediction differs from the run's.",
    )
    gradcam.add_argument("run_dir", type=Path, help="a directory written by `run`")
    gradcam.add_argument(
        "--cam-layer",
        help="the layer to map, by its name in model.named_modules() (default: DenseNet-121's "
        "backbone.features.norm5, else the model's last convolution)",
    )
    gradcam.add_argument(
        "--per-class", type=_positive_int, default=4, help="images per true class (default 4)"
    )
    gradcam.add_argument(
        "--eps",
        type=_csv,
        help="comma-separated eps of the run's grid (default: nearest 0.1/255 and the largest PGD eps)",
    )
    gradcam.add_argument("--libraries", type=_csv, help="comma-separated subset (default: the run's)")
    gradcam.add_argument("--attacks", type=_csv, help="comma-separated subset of fgsm,pgd (default: both)")
    _add_device(gradcam)
    _add_trust(gradcam)

    regress = commands.add_parser(
        "regress",
        help="compare a run's accuracies and verdicts with a committed baseline; exit 1 on drift",
        description="Exit code 1, with a readable diff, when an accuracy moves by >= the tolerance in pp or "
        "significantly by exact McNemar, or when any cross-check verdict changes (see reports/regress.py).",
    )
    regress.add_argument("run_dir", type=Path, help="a directory written by `run`")
    regress.add_argument(
        "--baseline",
        type=Path,
        help=f"baseline JSON (default: {DEFAULT_BASELINE.relative_to(DEFAULT_BASELINE.parents[2])}, "
        "the ci preset's)",
    )
    regress.add_argument(
        "--update", action="store_true", help="rewrite the baseline from this run (a deliberate change)"
    )
    regress.add_argument(
        "--accept-disagreements",
        action="store_true",
        help="with --update: record disagree/invalid verdicts in the baseline on purpose (refused otherwise)",
    )
    regress.add_argument(
        "--tolerance-pp", type=float, default=1.0, help="accuracy moves of this many pp fail (default 1)"
    )
    regress.add_argument(
        "--alpha", type=float, default=0.05, help="exact McNemar p below this fails (default 0.05)"
    )

    bench = commands.add_parser(
        "bench",
        help="images/s of every library's attacks on DenseNet-121, and the adapters' overhead",
        description="Times each library x attack through its adapter and called directly (alternating, "
        "medians), on seeded random DenseNet-121 weights; see harness/bench.py.",
    )
    bench.add_argument(
        "--size", type=_positive_int, help="image side in pixels (default 64, or the --preset's)"
    )
    bench.add_argument(
        "--batch",
        type=_positive_int,
        help="images per attack call (default 64, the presets' attack batch)",
    )
    bench.add_argument(
        "--repeats", type=_positive_int, default=3, help="timed calls per side after a warm-up (default 3)"
    )
    bench.add_argument(
        "--steps",
        type=_positive_int,
        help="steps of the iterative attacks (default 10, or the --preset's PGD steps); alpha = eps/4",
    )
    bench.add_argument("--libraries", type=_csv, help="comma-separated subset, e.g. reference,art")
    bench.add_argument(
        "--attacks",
        type=_csv,
        help="comma-separated bench entries (default fgsm,pgd, or those --preset runs; also bim, mifgsm, fgsm-l2, pgd-l2, apgd)",
    )
    bench.add_argument("--json", type=Path, help="also write the rows, config and machine to this JSON file")
    bench.add_argument(
        "--preset",
        help="also estimate this preset's attack phase from the measured rates (its image size unless --size)",
    )
    bench.add_argument(
        "--images", type=_positive_int, help="test images for the --preset estimate (default: its test_limit)"
    )
    _add_device(bench)

    ensembles = commands.add_parser(
        "autoattack-config",
        help="what each library's AutoAttack runs with its defaults, beside the original's standard version",
        description="Builds the original AutoAttack (pyautoattack, version standard), torchattacks' AutoAttack "
        "and ART's AutoAttack with their defaults for a norm and eps, and prints each ensemble's attacks, steps, "
        "restarts, targets and seeds, read from the constructed objects, with every difference from the "
        "original's (see harness/ensembles.py).",
    )
    ensembles.add_argument("--norm", default="linf", help="linf (default) or l2")
    ensembles.add_argument("--eps", default="8/255", help='like "8/255" (L∞) or 0.5 (L2); default 8/255')
    ensembles.add_argument(
        "--classes", type=_positive_int, default=10, help="the model's classes (default 10)"
    )

    optima = commands.add_parser(
        "optima",
        help="how far each library's attacks land from the exact worst case on affine models",
        description="Runs every library's FGSM, PGD, FGM-L2, PGD-L2 and APGD on affine classifiers whose worst "
        "case within eps and [0, 1] is solved exactly (adapters/optima.py), and prints per library and attack "
        "the samples it fools against those the optimum fools and its margin gap (see harness/optima.py).",
    )
    optima.add_argument(
        "--libraries", type=_csv, help="comma-separated subset (default: every one that runs here)"
    )
    optima.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    optima.add_argument(
        "--run",
        type=Path,
        help="measure the run's libraries and add the section to its report (RUN_DIR/optima.json)",
    )

    demo = commands.add_parser(
        "demo",
        help="the whole job: synthesise (or read --data), train, attack; reuses whatever already exists in --out",
    )
    _add_common(demo)
    demo.add_argument("--data", type=Path, help="a real data folder instead of the preset's synthetic set")
    _add_executor(demo)
    return parser


def _add_device(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")


def _add_trust(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--trust", action="store_true", help="allow loading a pickle (.pt/.pth) checkpoint you made"
    )


def _add_executor(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("where the attacks run (README: Scale out with Ray)")
    group.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: in this process (default); ray: one Ray task per group of cells (pip install 'advparity[ray]')",
    )
    group.add_argument(
        "--ray-address",
        help="ray://HEAD:10001 (Ray Client), auto (the cluster this node is part of) or HOST:6379; "
        "default: RAY_ADDRESS if set, else a new local Ray instance for this run",
    )
    group.add_argument(
        "--cpus-per-task",
        type=_positive_int,
        help="CPUs, and torch threads, per Ray task (default: 1 with a GPU, else this machine's cores)",
    )
    group.add_argument(
        "--gpus-per-task", type=float, help="GPUs per Ray task (default: 1 with a CUDA device, else 0)"
    )


def _add_common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--preset", default="demo", help="preset name (smoke, demo, paper) or a .toml path")
    sub.add_argument("--out", type=Path, required=True, help="output folder")
    _add_device(sub)
    sub.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="leave unreadable images out (listed in OUT/.../skipped.txt) instead of stopping",
    )
    sub.add_argument(
        "--weights",
        help="override the preset's initial weights: none, imagenet, or a local file (.safetensors/.pth)",
    )
    sub.add_argument(
        "--model",
        help="override the preset's architecture: densenet121, torchvision:NAME (e.g. torchvision:resnet18) "
        "or package.module:factory (factory(num_classes) -> nn.Module on [0, 1] pixels, normalisation inside)",
    )
