"""What each ``python -m advparity`` subcommand does: load, call the library's function, print.

Each returns the exit code (``harness/exits.py``); ``harness/cli.py`` parses and maps errors to codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from advparity.harness.config import Preset
    from advparity.harness.gradcam import GradcamRequest
    from advparity.harness.pipeline import TrainedModel
    from advparity.harness.runner import Executor, RunSummary
    from advparity.reports.load import Run


from advparity.harness.arguments import DEFAULT_BASELINE, DEFAULT_BASELINE_PRESET
from advparity.harness.exits import EXIT_DISAGREE, EXIT_OK

log = logging.getLogger("advparity")


def _executor(args: argparse.Namespace) -> Executor:
    from advparity.harness.executors import build_executor

    return build_executor(args.executor, args.ray_address, args.cpus_per_task, args.gpus_per_task)


def synth(args: argparse.Namespace) -> int:
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


def train(args: argparse.Namespace) -> int:
    from advparity.harness import pipeline

    preset = _load_preset(args)
    device = pipeline.resolve_device(args.device)
    started = time.perf_counter()
    source = pipeline.prepare_data(preset, args.out, args.data, not args.quiet)
    trained = pipeline.train_model(preset, source, args.out, device, not args.quiet, weights=args.weights)
    _print_trained(preset, trained, device, args.out)
    print(f"total time: {time.perf_counter() - started:.0f} s")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
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


def demo(args: argparse.Namespace) -> int:
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
    _write_optima(request.out, preset.attack.libraries)
    code = max(report(request.out, None), gradcam_code)
    print(f"total time: {time.perf_counter() - started:.0f} s")
    return code


def _write_optima(run_dir: Path, libraries: tuple[str, ...]) -> None:
    """The report's "against closed-form optima": the run's libraries on the exactly solved models."""
    from advparity.harness import optima
    from advparity.reports.optima_html import OPTIMA_FILE

    started = time.perf_counter()
    rows = optima.gaps(optima.runnable_of(libraries))
    optima.write(rows, run_dir / OPTIMA_FILE)
    print(f"closed-form optima: {len(rows)} rows in {time.perf_counter() - started:.0f} s")


def gradcam(args: argparse.Namespace) -> int:
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


def report(run_dir: Path, out: Path | None) -> int:
    from advparity.reports.pipeline import report

    outputs = report(run_dir, out)
    print(outputs.summary)
    print(f"report: {outputs.html}")
    return outputs.exit_code


def autoattack_config(args: argparse.Namespace) -> int:
    from advparity.harness import ensembles
    from advparity.harness.config import parse_eps

    if args.norm not in ("linf", "l2"):
        raise ValueError(f"--norm: expected linf or l2, got {args.norm!r}")
    if args.classes < 3:
        raise ValueError(
            f"--classes: the ensembles' targeted attacks need at least 3 classes, got {args.classes}"
        )
    try:
        eps = parse_eps(args.eps, args.norm)
    except ValueError as err:
        raise ValueError(f"--eps: {err}") from None
    print(ensembles.text(ensembles.all_ensembles(args.norm, eps, num_classes=args.classes)))
    return EXIT_OK


def optima(args: argparse.Namespace) -> int:
    from advparity.harness import optima
    from advparity.model.jsonfile import read_json_object
    from advparity.reports.optima_html import OPTIMA_FILE
    from advparity.reports.schema import check_manifest

    from advparity import adapters

    unknown = [lib for lib in args.libraries or () if lib not in adapters.names()]
    if unknown:
        raise ValueError(f"--libraries: unknown {unknown}; expected some of {adapters.names()}")
    for library in args.libraries or ():
        status = adapters.availability(library)
        if status.state != "ready":
            raise ValueError(f"--libraries: {library} cannot run here ({status.state}): {status.reason}")
    libraries = args.libraries
    if args.run is not None and libraries:
        raise ValueError("--run measures the run's own libraries: give --run or --libraries, not both")
    if args.run is not None:
        # The run's libraries that can run here (the report names the others already): its manifest
        # says which, no cell need be read.
        manifest = check_manifest(read_json_object(args.run / "manifest.json", "run manifest"))
        libraries = optima.runnable_of(manifest["config"]["attack"]["libraries"])
    rows = optima.gaps(libraries)
    print(optima.table(rows))
    if args.json is not None:
        optima.write(rows, args.json)
    if args.run is not None:
        optima.write(rows, args.run / OPTIMA_FILE)
        print(
            f'written: {args.run / OPTIMA_FILE} (the report\'s "against closed-form optima"; `report {args.run}`)'
        )
    below = [r for r in rows if r.below_optimum]
    if below:
        print(
            f"below the optimum (outside the budget, or a wrong optimum): {[(r.library, r.attack_label) for r in below]}"
        )
        return EXIT_DISAGREE
    return EXIT_OK


def bench(args: argparse.Namespace) -> int:
    from advparity.harness import pipeline
    from advparity.harness.bench import BenchConfig, estimate_phase, preset_entries, run_bench

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
        # A preset's estimate needs a rate for every attack it runs.
        attacks=args.attacks or (preset_entries(preset.attack) if preset else defaults.attacks),
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


def regress(args: argparse.Namespace) -> int:
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
    if summary.seconds_by_attack:
        # What checking each attack exactly costs on top of computing it: (attack + check) / attack.
        costs = [
            f"{label} x{(attack + check) / attack:.2f}" if attack > 0 else f"{label} (no attack time)"
            for label, (attack, check) in summary.seconds_by_attack.items()
        ]
        print("checking each attack's x_adv costs, per attack: " + ", ".join(costs))
    if summary.guaranteed:
        print(summary.guaranteed)
    print(f"results: {summary.run_dir}")
