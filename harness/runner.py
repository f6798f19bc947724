"""The runner: every library x attack x eps x seed on the same test images, one tidy row per sample.

Over ~400 lines on purpose: the run's two entry points (a checkpoint on disk, a model in memory) share one orchestration and its executor protocol.

It loads the model and the test images, writes the clean predictions, plans the cells
(``harness/plan.py``) and hands their groups to an executor, which runs each group
(``harness/group.py``) and writes its cells; the harness judges every output itself
(``harness/judge.py``). A resumed run skips finished cells; a group with some cells missing recomputes
the reference's (deterministic) x_adv to measure against, without rewriting its cell.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from advparity.adapters.expected import (
    NEAR_ZERO_GRADIENT,
    PIXEL_ROUND_OFF,
)
from advparity.harness import guaranteed
from advparity.harness.config import AttackConfig, Preset
from advparity.harness.environment import check_kernels, configure_torch, environment
from advparity.harness.group import clean_predictions, run_group
from advparity.harness.plan import groups, plan_cells
from advparity.harness.store import Cell, RunStore, config_hash
from advparity.model.checkpoint import load_checkpoint, sha256_file
from advparity.model.data import CLASSES, load_image, load_split
from tqdm.auto import tqdm

from advparity import adapters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """Everything one ``python -m advparity run`` needs. Filters pick cells of the preset's grid."""

    preset: Preset
    checkpoint: Path
    data_root: Path
    out: Path
    split_path: Path | None = None  # default: the split file named in the checkpoint's card
    libraries: tuple[str, ...] | None = None
    attacks: tuple[str, ...] | None = None
    eps: tuple[float, ...] | None = None
    limit: int | None = None  # overrides the preset's test_limit
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    trust: bool = False
    command: str = ""
    # Where the groups run. Not part of the experiment (nor of its config hash): every executor writes
    # the same cells, so a run started with one can be resumed with another.
    executor: Executor = field(default_factory=lambda: LocalExecutor())


@dataclass
class RunSummary:
    run_dir: Path
    cells_total: int
    cells_run: int
    cells_skipped: int
    n_samples: int
    wall_seconds: float
    attack_seconds: float  # the adapters' own time
    clean_seconds: float
    resumed: bool
    cells_redone: int = 0  # found on disk but failing their check (RunStore.verify): deleted and run again
    # Libraries of the preset that did not run here: {library: {state, reason, version}}.
    libraries_not_run: dict[str, dict[str, str]] = field(default_factory=dict)
    # Per attack (its label), over the cells this run computed: (the adapters' attack seconds, the
    # seconds spent checking them: expected x_adv and judging), from the cells' own rows.
    seconds_by_attack: dict[str, tuple[float, float]] = field(default_factory=dict)
    # What the guaranteed-adversarial test did (harness/guaranteed.summary); '' where the preset does not run it.
    guaranteed: str = ""

    @property
    def overhead(self) -> float:
        """Wall time of the run / (adapters' attack time + one clean pass): the harness's cost."""
        denominator = self.attack_seconds + self.clean_seconds
        return self.wall_seconds / denominator if denominator > 0 else float("nan")


def ordered_test_rows(split: pd.DataFrame) -> pd.DataFrame:
    """The test split in a fixed shuffled order (by a hash of the image path).

    Split files list images class by class; taking "the first N" of that would attack one class.
    Hashing the path gives an order that needs no seed, mixes the classes, and is stable when the
    split file is re-read, so ``--limit N`` always means the same N images.
    """
    test = split[split["split"] == "test"].copy()
    test["_order"] = [hashlib.sha256(p.encode()).hexdigest() for p in test["image"]]
    return test.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def load_tensors(
    rows: pd.DataFrame, root: Path, size: int, progress: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    images = [
        load_image(root / p, size)
        for p in tqdm(rows["image"], desc="load test images", disable=not progress, leave=False)
    ]
    return torch.stack(images), torch.tensor(rows["label"].to_numpy(), dtype=torch.int64)


def run(request: RunRequest, progress: bool = True) -> RunSummary:
    """Run (or resume) every requested cell; returns counts and timings.

    The whole run holds ``OUT/.lock`` (:meth:`RunStore.lock`): a second run into the same folder is
    refused while this one lives, instead of computing every cell a second time.
    """
    with RunStore(request.out).lock(request.command or " ".join(sys.argv)):
        return _run_holding_lock(request, progress)


def _run_holding_lock(request: RunRequest, progress: bool) -> RunSummary:
    started = time.perf_counter()
    device = request.device
    configure_torch(device, request.preset.cpu_threads)
    check_kernels(request.preset.cpu_isa, device)
    model, card = load_checkpoint(request.checkpoint, trust=request.trust, device=device)
    model.eval()
    image_size = int(card.get("image_size") or request.preset.train.image_size)
    split_path = request.split_path or request.checkpoint.parent / card.get("data", {}).get(
        "split_file", "split.csv"
    )
    split = load_split(split_path, request.data_root)
    attack_config = request.preset.attack
    limit = attack_config.test_limit if request.limit is None else request.limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        # A negative slice would silently drop the *last* images instead of keeping the first.
        raise ValueError(f"expected limit to be an integer >= 0 (0 = all test images), got {limit!r}")
    rows = ordered_test_rows(split)
    if limit:
        rows = rows.iloc[:limit].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"the test split in {str(split_path)!r} is empty")

    cells = plan_cells(attack_config, request.libraries, request.attacks, request.eps)
    experiment = {
        "preset": request.preset.name,
        "attack": attack_config.experiment(),
        "test_limit": limit,
        "image_size": image_size,
        "checkpoint_sha256": sha256_file(request.checkpoint),
        "split_sha256": sha256_file(split_path),
        "device_type": device.type,
        # What counts as the same pixel, and as a sign that round-off can flip (adapters/expected.py).
        "evidence": {"pixel_round_off": PIXEL_ROUND_OFF, "near_zero_gradient": NEAR_ZERO_GRADIENT},
    }
    manifest = run_manifest(
        experiment,
        attack_config,
        n_samples=len(rows),
        device=device,
        command=request.command or " ".join(sys.argv),
        extra={
            "preset": request.preset.name,
            "classes": list(card.get("classes", CLASSES)),
            "checkpoint": {
                "path": str(request.checkpoint),
                "sha256": experiment["checkpoint_sha256"],
                "card": card,
            },
            "split": {"path": str(split_path), "sha256": experiment["split_sha256"]},
            "data_root": str(request.data_root),
        },
    )
    _check_classes(cells, manifest["classes"])
    store = RunStore(request.out)
    # Opened before the images load: a run directory of another experiment is refused at once.
    resumed = store.open(manifest)

    x_all, y_all = load_tensors(rows, request.data_root, image_size, progress)
    return _run_opened(
        store,
        resumed,
        model,
        x_all,
        y_all,
        cells,
        attack_config,
        device,
        clean_columns={"image": rows["image"], "class_name": rows["class_name"]},
        executor=request.executor,
        checkpoint=request.checkpoint,
        trust=request.trust,
        manifest=manifest,
        progress=progress,
        started=started,
    )


def run_manifest(
    experiment: dict[str, Any],
    attack_config: AttackConfig,
    *,
    n_samples: int,
    device: torch.device,
    command: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """A run's manifest: ``experiment`` (hashed: it decides resume or refusal), seeds, versions, hardware.

    ``extra`` holds what names the model and the data (``preset``, ``classes``, ``checkpoint``,
    ``split``, ...), which differ between ``python -m advparity run`` and :func:`run_tensors`.
    """
    return {
        "config_hash": config_hash(experiment),
        "config": experiment,
        **extra,
        "seeds": {
            "reference": list(attack_config.reference_seeds),
            "libraries": list(attack_config.library_seeds),
        },
        "n_samples": n_samples,
        "device": str(device),
        "declarations": declarations(attack_config.libraries),
        "libraries": library_names(),
        **environment(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def library_names() -> list[dict[str, str]]:
    """Every adapter's name and display name in ``adapters.names()`` order, for the manifest (outside the
    hashed experiment): the order reports list libraries in and how they write them
    (``reports.schema.LibraryNames.from_manifest``): reports import no adapters."""
    return [{"name": name, "display": adapters.display_name(name)} for name in adapters.names()]


def declarations(libraries: Sequence[str]) -> dict[str, Any]:
    """What each library's adapter declares, for the manifest (outside the hashed experiment): its
    version and, per attack it offers, the loss reduction and documented departure — so that a report
    quotes what the adapters said when the run was made, on any machine, without importing them.
    Libraries that cannot run here are left out (``libraries.json`` says why)."""
    declared: dict[str, Any] = {}
    for library in libraries:
        status = adapters.availability(library)
        if status.state == "ready":
            declared[library] = {
                "version": status.version,
                "offers": adapters.get(library).declaration.summary(),
            }
    return declared


# What RunContext.checkpoint holds for a model given in memory: there is no file to load elsewhere, so
# only the in-process LocalExecutor can run it (run_tensors uses no other).
IN_MEMORY_MODEL = Path("<in-memory model>")


def run_tensors(
    model: torch.nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    attack_config: AttackConfig,
    out: Path,
    manifest: dict[str, Any],
    *,
    device: torch.device,
    clean_columns: dict[str, Sequence[Any]] | None = None,
    progress: bool = False,
) -> RunSummary:
    """The runner on a model and images already in memory (:func:`harness.crosscheck`'s engine).

    The same cells, groups and store as :func:`run`, after its loading step: ``x_all`` is ``[N, C, H, W]``
    in [0, 1] (kept on the CPU; batches move to ``device``), ``y_all`` int64 ``[N]``. ``model`` must be
    on ``device`` and in eval mode; it runs in this process (:class:`LocalExecutor`). ``manifest``
    comes from :func:`run_manifest` and must name ``classes``, ``preset``, ``checkpoint`` for reports.
    ``clean_columns`` adds per-sample columns to ``clean.parquet`` (default: ``image`` = ``"image_<i>"``
    and ``class_name`` from the manifest's classes). Holds ``out/.lock`` like :func:`run`.
    """
    started = time.perf_counter()
    if clean_columns is None:
        classes = list(manifest["classes"])
        clean_columns = {
            "image": [f"image_{i}" for i in range(len(x_all))],
            "class_name": [classes[int(label)] for label in y_all],
        }
    cells = plan_cells(attack_config)
    _check_classes(cells, manifest["classes"])
    store = RunStore(out)
    with store.lock(str(manifest.get("command", ""))):
        resumed = store.open(manifest)
        return _run_opened(
            store,
            resumed,
            model,
            x_all,
            y_all,
            cells,
            attack_config,
            device,
            clean_columns=clean_columns,
            executor=LocalExecutor(),
            checkpoint=IN_MEMORY_MODEL,
            trust=False,
            manifest=manifest,
            progress=progress,
            started=started,
        )


def _check_classes(cells: list[Cell], classes: Sequence[str]) -> None:
    """Before a run directory is written: every attack can attack a model of these classes (a
    targeted = "labels" entry names one target per class; APGD's DLR loss needs three)."""
    for cell in cells:
        cell.definition.check_classes(cell.params, len(classes))


def _run_opened(
    store: RunStore,
    resumed: bool,
    model: torch.nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    cells: list[Cell],
    attack_config: AttackConfig,
    device: torch.device,
    *,
    clean_columns: dict[str, Sequence[Any]],
    executor: Executor,
    checkpoint: Path,
    trust: bool,
    manifest: dict[str, Any],
    progress: bool,
    started: float,
) -> RunSummary:
    """Everything after loading: clean predictions, then every unfinished cell through ``executor``."""
    cells, libraries_not_run = _runnable(cells)
    store.write_library_status(libraries_not_run)
    samples = np.arange(len(x_all))
    clean_started = time.perf_counter()
    pred_clean_all, conf_clean_all = clean_predictions(model, x_all, attack_config.batch_size, device)
    clean_seconds = time.perf_counter() - clean_started
    if not store.has_clean():
        store.write_clean(
            pd.DataFrame(
                {
                    "sample": samples,
                    "label": y_all.numpy(),
                    "pred_clean": pred_clean_all.numpy(),
                    "conf_clean": conf_clean_all.numpy(),
                    **clean_columns,
                }
            )
        )

    # A cell on disk counts only if it matches the checksum recorded when it was written.
    resume = store.unfinished(cells)
    for cell, reason in resume.redone:
        log.warning("cell %s failed its check (%s): redoing it", cell.key, reason)
    todo = resume.todo
    skipped = len(cells) - len(todo)
    if skipped:
        log.info("resuming %s: %d of %d cells already finished", store.run_dir, skipped, len(cells))
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not progress)
    context = RunContext(
        model=model,
        x_all=x_all,
        y_all=y_all,
        pred_clean_all=pred_clean_all,
        conf_clean_all=conf_clean_all,
        config=attack_config,
        device=device,
        store=store,
        checkpoint=checkpoint,
        trust=trust,
        manifest=manifest,
    )
    try:
        attack_seconds = executor.run_groups([group for _, group in groups(todo)], context, bar)
    finally:
        bar.close()
    wall_seconds = time.perf_counter() - started
    guaranteed_line = ""
    if attack_config.guaranteed_samples:
        # After the cells and outside their timings: a sanity test on another model, not the run's cost.
        guaranteed_started = time.perf_counter()
        x_first = x_all[: attack_config.guaranteed_samples].to(device)
        recorded = guaranteed.update(model, x_first, cells, store.run_dir)
        guaranteed_line = guaranteed.summary(recorded, time.perf_counter() - guaranteed_started)
    return RunSummary(
        run_dir=store.run_dir,
        cells_total=len(cells),
        cells_run=len(todo),
        cells_skipped=skipped,
        n_samples=len(x_all),
        wall_seconds=wall_seconds,
        attack_seconds=attack_seconds,
        clean_seconds=clean_seconds,
        resumed=resumed,
        cells_redone=len(resume.redone),
        libraries_not_run=libraries_not_run,
        seconds_by_attack=_seconds_by_attack(store, todo),
        guaranteed=guaranteed_line,
    )


def _seconds_by_attack(store: RunStore, cells: list[Cell]) -> dict[str, tuple[float, float]]:
    """(attack seconds, check seconds) per attack label over ``cells``, read from their rows (each
    cell's ``seconds`` and ``eval_seconds`` are the cell's totals, repeated on every row)."""
    totals: dict[str, tuple[float, float]] = {}
    for cell in cells:
        if not store.has(cell):
            continue
        row = pd.read_parquet(
            store.cell_path(cell), columns=["attack_label", "seconds", "eval_seconds"]
        ).iloc[0]
        attack, check = totals.get(str(row["attack_label"]), (0.0, 0.0))
        totals[str(row["attack_label"])] = (
            attack + float(row["seconds"]),
            check + float(row["eval_seconds"]),
        )
    return totals


def _runnable(cells: list[Cell]) -> tuple[list[Cell], dict[str, dict[str, str]]]:
    """The cells whose library can run here and offers their attack, and ``{library: {state, reason,
    version}}`` for the libraries that cannot run.

    A library that is not installed is skipped with one line; one that is installed but cannot run
    (advertorch under current torch) is skipped too, and recorded so that the report gives it the
    verdict ``unavailable`` with its error as the reason.
    """
    not_run: dict[str, dict[str, str]] = {}
    for library in dict.fromkeys(cell.library for cell in cells):
        status = adapters.availability(library)
        if status.state == "not installed":
            log.warning("%s: skipped, %s", library, status.reason)
        elif status.state == "unavailable":
            log.warning(
                "%s %s is installed but cannot run (%s): its cells get the verdict unavailable",
                library,
                status.version,
                status.reason,
            )
        if status.state != "ready":
            not_run[library] = {"state": status.state, "reason": status.reason, "version": status.version}
    runnable = [cell for cell in cells if cell.library not in not_run]
    # An attack the library does not offer (adv-lib has no FGSM) is not a cell: nothing to judge.
    offered = [cell for cell in runnable if adapters.get(cell.library).declaration.accepts(cell.spec)]
    refused = (
        (c.library, adapters.get(c.library).declaration.refusal(c.spec)) for c in runnable if c not in offered
    )
    for library, why in dict.fromkeys(refused):
        log.warning("%s %s (as its adapter declares): those cells are not run", library, why)
    return offered, not_run


# --- executors: where the groups run ----------------------------------------------------------------


@dataclass(frozen=True)
class RunContext:
    """What every group of a run shares, prepared once (by :func:`run` or :func:`run_tensors`) before any group starts."""

    model: torch.nn.Module
    x_all: torch.Tensor
    y_all: torch.Tensor
    pred_clean_all: torch.Tensor
    conf_clean_all: torch.Tensor
    config: AttackConfig
    device: torch.device
    store: RunStore
    checkpoint: Path
    trust: bool
    # This driver's manifest (its versions; a resumed run's file keeps the first run's): an executor
    # that runs groups elsewhere checks the workers against it.
    manifest: dict[str, Any]


class Executor(Protocol):
    """Runs groups of cells (see :func:`_groups`); each group writes its own cells to the store."""

    def run_groups(self, groups: list[list[Cell]], context: RunContext, bar: tqdm) -> float:
        """Run every group, advancing ``bar`` by one per cell; returns the adapters' attack seconds."""
        ...


@dataclass(frozen=True)
class LocalExecutor:
    """One group after another in this process (``--executor local``, the default)."""

    def run_groups(self, groups: list[list[Cell]], context: RunContext, bar: tqdm) -> float:
        seconds = 0.0
        for group in groups:
            seconds += run_group(
                context.model,
                group,
                context.x_all,
                context.y_all,
                context.pred_clean_all,
                context.conf_clean_all,
                context.config,
                context.device,
                context.store,
                bar,
            )
        return seconds
