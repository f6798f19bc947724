"""``python -m harness``: parse, load, call a function, print. Exit codes: 0 ok, 1 disagreement or
regression (later steps), 2 bad input or usage."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

# Foolbox imports GitPython, which raises at import time on machines without a git executable.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

EXIT_OK, EXIT_DISAGREE, EXIT_BAD_INPUT = 0, 1, 2
log = logging.getLogger("harness")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
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
    synth.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")

    train = commands.add_parser(
        "train",
        help="split a data folder 80/10/10 and train DenseNet-121 per a preset",
        description="Writes OUT/split.csv, OUT/model.safetensors + model.json, history.csv, training_curves.png.",
    )
    _add_common(train)
    train.add_argument("--data", type=Path, required=True, help="data root (the Kaggle folder or its parent)")

    demo = commands.add_parser(
        "demo",
        help="the whole job: synthesise (or read --data), train; reuses whatever already exists in --out",
    )
    _add_common(demo)
    demo.add_argument("--data", type=Path, help="a real data folder instead of the preset's synthetic set")
    return parser


def _add_common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--preset", default="demo", help="preset name (smoke, demo, paper) or a .toml path")
    sub.add_argument("--out", type=Path, required=True, help="output folder")
    sub.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    sub.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="leave unreadable images out (listed in OUT/.../skipped.txt) instead of stopping",
    )
    sub.add_argument(
        "--weights",
        help="override the preset's initial weights: none, imagenet, or a local file (.safetensors/.pth)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return _dispatch(args)
    except ValueError as err:  # every bad-input error in advparity is a ValueError subclass
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and will be reused", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "synth":
        return _synth(args)
    if args.command in ("train", "demo"):
        return _train(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown commands


def _synth(args: argparse.Namespace) -> int:
    from model.synthetic import SynthSpec, counts_for_total, write_dataset

    counts = (args.per_class,) * 4 if args.per_class else counts_for_total(args.total or 2000)
    started = time.perf_counter()
    out = write_dataset(
        args.out, SynthSpec(counts=counts, size=args.size, seed=args.seed), progress=not args.quiet
    )
    print(
        f"synthetic data set: {sum(counts)} images {args.size}x{args.size} in {out} ({time.perf_counter() - started:.1f} s)"
    )
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from harness import pipeline
    from harness.config import load_preset

    preset = load_preset(args.preset)
    if args.skip_corrupt:
        preset = replace(preset, data=replace(preset.data, skip_corrupt=True))
    device = pipeline.resolve_device(args.device)
    progress = not args.quiet
    started = time.perf_counter()
    if args.command == "train":
        root, model_dir = pipeline.prepare_data(preset, args.out, args.data, progress), args.out
    else:
        root = pipeline.prepare_data(preset, args.out, args.data, progress)
        model_dir = args.out / "model"
    trained = pipeline.train_model(preset, root, model_dir, device, progress, weights=args.weights)
    metrics = trained.card["metrics"]
    verb = "reused" if trained.reused else "trained"
    print(
        f"{verb} DenseNet-121 ({preset.name} preset, {trained.card['image_size']} px, {device}): "
        f"clean test accuracy {100 * metrics['test_acc']:.1f}% on {metrics['test_n']} images, "
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}"
    )
    print(f"checkpoint: {trained.checkpoint}")
    print(f"training curves: {model_dir / 'training_curves.png'}")
    print(f"total time: {time.perf_counter() - started:.0f} s")
    return EXIT_OK
