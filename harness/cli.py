"""``python -m advparity``: parse, load, call a function, print.

Exit codes: 0 ok; 1 a library disagrees or a regression check fails; 2 bad input or usage (including a
baseline that cannot be checked on this machine); 3 advparity itself failed — an unexpected error, a
bug or a broken environment, with the traceback — so CI can tell a broken tool from a failed check;
130 interrupted (Ctrl-C): finished cells are kept and a rerun of the same command resumes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advparity.harness.config import Preset
    from advparity.harness.gradcam import GradcamRequest
    from advparity.harness.pipeline import TrainedModel
    from advparity.harness.runner import Executor, RunSummary
    from advparity.reports.load import Run

# Foolbox imports GitPython, which raises at import time on machines without a git executable.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

EXIT_OK, EXIT_DISAGREE, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# The committed baseline of the `ci` preset, found beside the reports package (also in a wheel).
DEFAULT_BASELINE = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "ci.json"
DEFAULT_BASELINE_PRESET = "ci"  # the preset DEFAULT_BASELINE was made by: only its runs may --update it
log = logging.getLogger("advparity")


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
    run.add_argument("--preset", default="demo", help="preset name (smoke, ci, demo, paper) or a .toml path")
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
        help="images/s of every library's FGSM and PGD on DenseNet-121, and the adapters' overhead",
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
        "--steps", type=_positive_int, help="PGD steps (default 10, or the --preset's); alpha = eps/4"
    )
    bench.add_argument("--libraries", type=_csv, help="comma-separated subset, e.g. reference,art")
    bench.add_argument("--attacks", type=_csv, help="comma-separated subset of fgsm,pgd")
    bench.add_argument("--json", type=Path, help="also write the rows, config and machine to this JSON file")
    bench.add_argument(
        "--preset",
        help="also estimate this preset's attack phase from the measured rates (its image size unless --size)",
    )
    bench.add_argument(
        "--images", type=_positive_int, help="test images for the --preset estimate (default: its test_limit)"
    )
    _add_device(bench)

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


def _executor(args: argparse.Namespace) -> Executor:
    from advparity.harness.executors import build_executor

    return build_executor(args.executor, args.ray_address, args.cpus_per_task, args.gpus_per_task)


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    # ART logs a success rate and its layer inference at INFO for every attack call: noise between
    # our progress bars, and its "success rate" is not the harness's own judgement.
    logging.getLogger("art").setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    # Every bad-input error in advparity is a ValueError subclass.
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:
        # A path the user named that cannot be read or written (permissions, a full disk, a file where a
        # folder must be): bad input or environment, said in one line with the path, not a traceback.
        print(f"error: {_os_error_text(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and will be reused", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - anything else is the tool's failure, not the user's
        traceback.print_exc(file=sys.stderr)
        print(
            f"internal error: {type(err).__name__}: {err}\nadvparity itself failed (exit code {EXIT_INTERNAL}), "
            "not a check: please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _os_error_text(err: OSError) -> str:
    """``'PATH': reason`` for an error the system raised; our own OSErrors carry a whole sentence."""
    if err.filename is None or not err.strerror:
        return str(err)
    paths = " -> ".join(repr(str(p)) for p in (err.filename, err.filename2) if p is not None)
    return f"cannot use {paths}: {err.strerror}"


def _check_outputs(args: argparse.Namespace) -> None:
    """Every path a command will write is usable, before any work starts (outputs.py says why)."""
    from advparity.harness.outputs import check_output_file, check_output_folder

    if args.command in ("synth", "train", "run", "demo"):
        check_output_folder(args.out)
    if args.command == "report":
        check_output_folder(args.out or args.run_dir, "--out" if args.out else "RUN_DIR")
    if args.command == "gradcam":
        check_output_folder(args.run_dir, "RUN_DIR")
    if args.command == "regress" and args.update:
        check_output_file(args.baseline or DEFAULT_BASELINE, "--baseline")
    if args.command == "bench" and args.json:
        check_output_file(args.json, "--json")


def _dispatch(args: argparse.Namespace) -> int:
    _check_outputs(args)
    if args.command == "synth":
        return _synth(args)
    if args.command == "train":
        return _train(args)
    if args.command == "run":
        return _run(args)
    if args.command == "report":
        return _report(args.run_dir, args.out)
    if args.command == "gradcam":
        return _gradcam(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "regress":
        return _regress(args)
    if args.command == "demo":
        return _demo(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown commands


def _synth(args: argparse.Namespace) -> int:
    from advparity.model.synthetic import SynthSpec, counts_for_total, write_dataset

    counts = (args.per_class,) * 4 if args.per_class else counts_for_total(args.total or 2000)
    started = time.perf_counter()
    out = write_dataset(
        args.out, SynthSpec(counts=counts, size=args.size, seed=args.seed), progress=not args.quiet
    )
    print(
        f"synthetic data set: {sum(counts)} images {args.size}x{args.size} in {out} ({time.perf_counter() - started:.1f} s)"
    )
    return EXIT_OK


def _load_preset(args: argparse.Namespace) -> Preset:
    from advparity.harness.config import load_preset

    preset = load_preset(args.preset)
    if getattr(args, "skip_corrupt", False):
        preset = replace(preset, data=replace(preset.data, skip_corrupt=True))
    if getattr(args, "model", None):
        preset = replace(preset, train=replace(preset.train, model=args.model))
    return preset


def _train(args: argparse.Namespace) -> int:
    from advparity.harness import pipeline

    preset = _load_preset(args)
    device = pipeline.resolve_device(args.device)
    started = time.perf_counter()
    source = pipeline.prepare_data(preset, args.out, args.data, not args.quiet)
    trained = pipeline.train_model(preset, source, args.out, device, not args.quiet, weights=args.weights)
    _print_trained(preset, trained, device, args.out)
    print(f"total time: {time.perf_counter() - started:.0f} s")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from advparity.harness import pipeline
    from advparity.harness.config import parse_eps
    from advparity.model.checkpoint import load_card

    preset = _load_preset(args)
    if args.data is None:
        # The card's root is already the folder the split's image paths are relative to: no layout to
        # detect again (a folder holding several manifests would be ambiguous).
        data_root = Path(load_card(args.checkpoint).get("data", {}).get("root", ""))
        if not str(data_root) or not data_root.is_dir():
            raise ValueError("--data is needed: the checkpoint's card names no data folder that exists here")
    else:
        data_root = pipeline.find_dataset_root(args.data)
    request = pipeline.RunRequest(
        preset=preset,
        checkpoint=args.checkpoint,
        data_root=data_root,
        out=args.out,
        split_path=args.split,
        libraries=args.libraries,
        attacks=args.attacks,
        eps=tuple(parse_eps(e) for e in args.eps) if args.eps else None,
        limit=args.limit,
        device=pipeline.resolve_device(args.device),
        trust=args.trust,
        command=" ".join(["python -m advparity", *sys.argv[1:]]),
        executor=_executor(args),
    )
    _print_run(pipeline.run_attacks(request, progress=not args.quiet))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from advparity.harness import pipeline
    from advparity.harness.gradcam import GradcamRequest

    preset = _load_preset(args)
    device = pipeline.resolve_device(args.device)
    executor = _executor(args)  # before training: a missing Ray should not cost a training run
    progress = not args.quiet
    started = time.perf_counter()
    source = pipeline.prepare_data(preset, args.out, args.data, progress)
    model_dir = args.out / "model"
    trained = pipeline.train_model(preset, source, model_dir, device, progress, weights=args.weights)
    _print_trained(preset, trained, device, model_dir)
    request = pipeline.RunRequest(
        preset=preset,
        checkpoint=trained.checkpoint,
        data_root=pipeline.find_dataset_root(source),
        out=args.out / "run",
        device=device,
        command=" ".join(["python -m advparity", *sys.argv[1:]]),
        executor=executor,
    )
    _print_run(pipeline.run_attacks(request, progress=progress))
    # Grad-CAM on 4 images per class, the reference's x_adv only: 2 PGD cells' worth of attacks (~8 % of the
    # demo's attack time); every library would be 8 (~1/3). `python -m advparity gradcam RUN_DIR` maps them all.
    gradcam_request = GradcamRequest(request.out, per_class=4, libraries=("reference",), device=device)
    gradcam_code = _run_gradcam(gradcam_request, progress)
    code = max(_report(request.out, None), gradcam_code)
    print(f"total time: {time.perf_counter() - started:.0f} s")
    return code


def _gradcam(args: argparse.Namespace) -> int:
    from advparity.harness import pipeline
    from advparity.harness.config import parse_eps
    from advparity.harness.gradcam import GradcamRequest

    request = GradcamRequest(
        run_dir=args.run_dir,
        per_class=args.per_class,
        eps=tuple(parse_eps(e) for e in args.eps) if args.eps else None,
        libraries=args.libraries,
        attacks=args.attacks,
        device=pipeline.resolve_device(args.device),
        trust=args.trust,
        cam_layer=args.cam_layer,
    )
    return _run_gradcam(request, not args.quiet)


def _run_gradcam(request: GradcamRequest, progress: bool) -> int:
    from advparity.harness.gradcam import compute

    outcome = compute(request, progress=progress)
    print(outcome.text())
    return EXIT_OK if outcome.reproducible else EXIT_DISAGREE


def _report(run_dir: Path, out: Path | None) -> int:
    from advparity.reports.pipeline import report

    outputs = report(run_dir, out)
    print(outputs.summary)
    print(f"report: {outputs.html}")
    return outputs.exit_code


def _bench(args: argparse.Namespace) -> int:
    from advparity.harness import pipeline
    from advparity.harness.bench import BenchConfig, estimate_phase, run_bench

    defaults = BenchConfig()
    preset = _load_preset(args) if args.preset else None
    if args.images and preset is None:
        raise ValueError("--images sizes a --preset estimate; name the preset too")
    config = BenchConfig(
        size=args.size or (preset.train.image_size if preset else defaults.size),
        batch=args.batch or defaults.batch,
        repeats=args.repeats,
        pgd_steps=args.steps or (preset.attack.pgd_steps if preset else defaults.pgd_steps),
        libraries=args.libraries or defaults.libraries,
        attacks=args.attacks or defaults.attacks,
        device=pipeline.resolve_device(args.device),
    )
    result = run_bench(config, progress=None if args.quiet else lambda what: log.info("timing %s", what))
    print(result.table())
    if preset is not None:
        n_images = args.images or preset.attack.test_limit
        if not n_images:
            raise ValueError(
                f"preset {preset.name!r} attacks the whole test split: give its size with --images"
            )
        print(estimate_phase(result.rows, preset.attack, n_images, config.pgd_steps).text(preset.name))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(result.to_json() + "\n", encoding="utf-8")
        print(f"written: {args.json}")
    return EXIT_OK


def _regress(args: argparse.Namespace) -> int:
    from advparity.reports.load import load_run
    from advparity.reports.regress import Tolerance, build_baseline, compare, read_baseline, write_baseline

    tolerance = Tolerance(pp=args.tolerance_pp, alpha=args.alpha)
    run = load_run(args.run_dir)
    current = build_baseline(run)
    path: Path = args.baseline or DEFAULT_BASELINE
    existing = read_baseline(path) if (path.is_file() or not args.update) else None
    if args.update:
        _check_overwrite(path, existing, current["preset"], named=args.baseline is not None)
        _check_baseline_worthy(run, accept_disagreements=args.accept_disagreements)
        write_baseline(current, path)
        print(
            f"baseline written: {path} ({len(current['numbers'])} accuracies, {len(current['verdicts'])} verdicts)"
        )
        return EXIT_OK
    assert existing is not None  # read above: only --update may name a baseline that does not exist yet
    if existing["preset"] != current["preset"]:
        raise ValueError(
            f"{args.run_dir} is a run of preset {current['preset']!r}, but baseline {path} was made by preset "
            f"{existing['preset']!r}: nothing to compare; pass the baseline of the {current['preset']!r} "
            "preset with --baseline" + ("" if args.baseline else " (the default baseline is the ci preset's)")
        )
    comparison = compare(existing, current, tolerance)
    print(comparison.text(str(path)))
    return comparison.exit_code


def _check_overwrite(path: Path, existing: dict[str, object] | None, preset: object, named: bool) -> None:
    """``--update`` replaces only a baseline of the same preset, or writes a new file named by ``--baseline``.

    Without that, ``regress SMOKE_RUN --update`` would silently overwrite the committed ci baseline.
    """
    if existing is not None and existing.get("preset") != preset:
        raise ValueError(
            f"--update would overwrite {path}, the baseline of preset {existing.get('preset')!r}, with a run of "
            f"preset {preset!r}: name a new file with --baseline (or delete {path.name} first if you mean to "
            "replace it)"
        )
    if existing is None and not named and preset != DEFAULT_BASELINE_PRESET:
        raise ValueError(
            f"--update without --baseline writes the ci preset's baseline {path}, and this run is of preset "
            f"{preset!r}: name the file to write with --baseline"
        )


def _check_baseline_worthy(run: Run, accept_disagreements: bool) -> None:
    """Refuse to make a baseline of a run that is missing cells, or one whose libraries disagree."""
    from advparity.harness.config import attack_config_from_manifest
    from advparity.harness.plan import plan_cells
    from advparity.harness.store import RunStore
    from advparity.reports.crosscheck import FAILING_VERDICTS, run_verdicts

    grid = run.manifest.get("config", {}).get("attack")
    missing: list[str] = []
    if grid is None:
        log.warning("%s records no attack grid: cannot tell whether cells are missing", run.run_dir)
    else:
        attack = attack_config_from_manifest(grid, f"{run.run_dir}/manifest.json")
        store = RunStore(run.run_dir)
        missing = [cell.key for cell in plan_cells(attack) if not store.has(cell)]
    if missing:
        raise ValueError(
            f"{run.run_dir} is missing {len(missing)} of its cells (e.g. {missing[0]}): a baseline must cover "
            "the whole grid; finish the run first (run it again with the same arguments)"
        )
    frame = run_verdicts(run)
    failing = frame[frame["verdict"].isin(FAILING_VERDICTS)]
    if len(failing) and not accept_disagreements:
        raise ValueError(
            f"{len(failing)} verdict(s) in {run.run_dir} are disagree or invalid (first: {failing.iloc[0]['reason']}); "
            "a baseline would make them the expected result. Fix them, or pass --accept-disagreements to record "
            "them on purpose"
        )


def _print_trained(preset: Preset, trained: TrainedModel, device: object, model_dir: Path) -> None:
    metrics = trained.card["metrics"]
    verb = "reused" if trained.reused else "trained"
    print(
        f"{verb} DenseNet-121 ({preset.name} preset, {trained.card['image_size']} px, {device}): "
        f"clean test accuracy {100 * metrics['test_acc']:.1f}% on {metrics['test_n']} images, "
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}"
    )
    print(f"checkpoint: {trained.checkpoint}")
    print(f"training curves: {model_dir / 'training_curves.png'}")


def _print_run(summary: RunSummary) -> None:
    redone = f" ({summary.cells_redone} redone: they failed their check)" if summary.cells_redone else ""
    print(
        f"attacks: {summary.cells_run} cells run{redone}, {summary.cells_skipped} already finished, "
        f"{summary.n_samples} test images; {summary.wall_seconds:.0f} s "
        f"(adapters {summary.attack_seconds:.0f} s, clean pass {summary.clean_seconds:.1f} s, "
        f"harness overhead x{summary.overhead:.2f})"
    )
    print(f"results: {summary.run_dir}")
