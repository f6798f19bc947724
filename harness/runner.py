"""The runner: every library x attack x eps x seed on the same test images, one tidy row per sample.

Cells that share the reference's adversarial images form a *group*: all FGSM cells (the reference
computes FGSM for the whole eps grid from one gradient per image), and each PGD (eps, seed). A group
runs batch by batch — reference first, then each library on the same batch — so ``linf_to_ref`` is
measured against the reference's x_adv without keeping a whole test set of adversarial images in
memory, and its cells are written (atomically) when the group ends. A resumed run skips finished
cells; a group with some cells missing recomputes the reference's (deterministic) x_adv to measure
against, without rewriting its cell.

The harness judges every output itself: its own forward pass under ``torch.inference_mode()``, the
eps-ball and [0, 1] per sample, and the prediction after rounding x_adv to 8-bit levels (what saving
a PNG does). Above all it compares each library's x_adv with the exact x_adv that library must
return (``adapters/expected.py``: the reference's code with the library's declared loss reduction
and random start), pixel by pixel, and records the library's pass counts beside the ones its adapter
declares, and anything it left changed in the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from advparity.adapters import attacks as attack_registry
from advparity.adapters import reference as reference_attacks
from advparity.adapters.attacks.definition import Attack
from advparity.adapters.base import EPS_TOLERANCE, AttackOutputError, AttackStats
from advparity.adapters.expected import (
    NEAR_ZERO_GRADIENT,
    PIXEL_ROUND_OFF,
    Evidence,
    ExpectationCache,
    compare,
    identical,
)
from advparity.harness import kernels
from advparity.harness.config import AttackConfig, Preset, eps_label
from advparity.harness.store import Cell, RunStore, config_hash, params_json
from advparity.model.checkpoint import load_checkpoint, sha256_file
from advparity.model.data import CLASSES, load_image, load_split
from tqdm.auto import tqdm

from advparity import adapters

log = logging.getLogger(__name__)

REFERENCE = "reference"


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

    @property
    def overhead(self) -> float:
        """Wall time of the run / (adapters' attack time + one clean pass): the harness's cost."""
        denominator = self.attack_seconds + self.clean_seconds
        return self.wall_seconds / denominator if denominator > 0 else float("nan")


# --- planning ---------------------------------------------------------------------------------------


def plan_cells(
    config: AttackConfig,
    libraries: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
    eps: Sequence[float] | None = None,
) -> list[Cell]:
    """The preset's grid, optionally narrowed; filters outside the grid are errors, not no-ops.

    A seeded attack (a random start) runs every reference seed for the reference and every library
    seed for the libraries; an unseeded one runs once, as seed 0.
    """
    grids = config.grids
    _check_subset("--libraries", libraries, config.libraries)
    _check_subset("--attacks", attacks, list(dict.fromkeys(grid.attack for grid in grids)))
    _check_subset(
        "--eps",
        [eps_label(e) for e in eps] if eps is not None else None,
        [eps_label(e) for e in {e for grid in grids for e in grid.eps}],
    )
    chosen_libraries = [lib for lib in config.libraries if libraries is None or lib in libraries]
    cells = []
    for grid in grids:
        if attacks is not None and grid.attack not in attacks:
            continue
        definition = attack_registry.get(grid.attack)
        for e in grid.eps:
            if eps is not None and e not in eps:
                continue
            params = grid.params(e)
            for library in chosen_libraries:
                seeds = (
                    (config.reference_seeds if library == REFERENCE else config.library_seeds)
                    if definition.seeded(params)
                    else (0,)
                )
                cells.extend(Cell(library, grid.attack, e, seed, params) for seed in seeds)
    return cells


def grid_eps(config: AttackConfig, cell: Cell) -> list[float]:
    """Every eps of the run at which ``cell``'s attack runs with ``cell``'s parameters, sorted: what
    the reference computes together where the attack shares its gradient across eps (FGSM)."""
    return sorted(
        {
            e
            for grid in config.grids
            if grid.attack == cell.attack
            for e in grid.eps
            if grid.params(e) == cell.params
        }
    )


def _check_subset(flag: str, chosen: Sequence[str] | None, allowed: Sequence[str]) -> None:
    if chosen is None:
        return
    if not chosen:
        raise ValueError(f"{flag}: expected one or more of {sorted(allowed)}, got none")
    outside = list(dict.fromkeys(c for c in chosen if c not in allowed))
    if outside:
        # A long list (a script's mistake) is cut: the message must stay one readable paragraph.
        shown = f"{outside[:5]}" + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        raise ValueError(f"{flag}: {shown} not in this preset's grid; expected some of {sorted(allowed)}")


def _groups(cells: Iterable[Cell]) -> list[tuple[tuple[Any, ...], list[Cell]]]:
    """Cells sharing the reference's x_adv (:meth:`Cell.group`): every eps of FGSM together, PGD per
    (eps, parameters, seed)."""
    grouped: dict[tuple[Any, ...], list[Cell]] = defaultdict(list)
    for cell in cells:
        grouped[cell.group()].append(cell)
    return list(grouped.items())


# --- data -------------------------------------------------------------------------------------------


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


# --- torch set-up -----------------------------------------------------------------------------------


def configure_torch(device: torch.device, cpu_threads: int = 0) -> None:
    """Settings that keep cross-library comparisons exact rather than fast; ``cpu_threads=0``: one per core."""
    # TF32 rounds matmul/conv inputs to 10 mantissa bits: libraries would differ by round-off alone.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # cuDNN autotuning may pick different kernels per call; deterministic kernels make reruns equal.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if device.type == "cuda":
        # cuBLAS picks its reduction order by workspace; a fixed workspace makes GEMMs repeatable. It is
        # read when cuBLAS initialises (the process's first matmul), so a user's own setting wins.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # Kernels that accumulate with atomics give run-to-run round-off differences; warn where one
        # runs instead of letting it blur the bit-for-bit comparison silently.
        torch.use_deterministic_algorithms(True, warn_only=True)
    set_cpu_threads(device, cpu_threads)


def set_cpu_threads(device: torch.device, cpu_threads: int = 0) -> None:
    """Torch's CPU threads: ``cpu_threads``, or one per core this process may use (0)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads or cores)


def environment() -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    # Every attack library advparity knows (adapters.DISTRIBUTIONS), and eagerpy, which Foolbox runs on.
    for dist in ("advparity", "torch", "torchvision", *adapters.DISTRIBUTIONS.values(), "eagerpy", "numpy"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    hardware: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # What decides CPU round-off besides the thread count (harness/kernels.py).
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "cpu_isa_pin": {name: os.environ.get(name) for name in kernels.KERNEL_VARIABLES},
        "cpu_flags": _cpu_flags(),
        # The same version number comes as CPU and CUDA wheels built from one commit with other libraries.
        "torch_build": f"{torch.__version__} (git {str(torch.version.git_version)[:12]}, CUDA {torch.version.cuda})",
    }
    return {"versions": versions, "hardware": hardware}


def check_kernels(isa: str | None, device: torch.device) -> None:
    """Warn when a preset pins CPU kernels that this process does not run (torch started before the pin)."""
    if isa is None or device.type != "cpu":
        return
    ok, capability = kernels.in_effect(isa)
    if not ok:
        names = " ".join(f"{k}={v}" for k, v in kernels.ISA_ENVIRONMENT[isa].items())
        log.warning(
            "the preset pins CPU kernels to %s, but torch runs %s kernels in this process (it started before "
            "the pin): its numbers may differ from another machine's in the last bits. Run it through "
            "`python -m advparity`, or set %s before Python starts.",
            isa,
            capability,
            names,
        )


# The vector extensions that decide which kernels torch may pick.
_VECTOR_FLAGS = frozenset({"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile"})


def _cpu_flags() -> list[str]:
    """The CPU's vector extensions among :data:`_VECTOR_FLAGS` (empty where /proc/cpuinfo is absent)."""
    return sorted(_VECTOR_FLAGS.intersection((_cpuinfo("flags") or "").split()))


def _cpuinfo(field_name: str) -> str | None:
    """The first ``field_name`` line of /proc/cpuinfo (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field_name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"


# --- evaluation of one batch of adversarial images -------------------------------------------------


@dataclass
class _Judged:
    pred: np.ndarray
    conf: np.ndarray
    linf: np.ndarray
    distance: np.ndarray  # to x in the attack's norm (what eps budgets)
    linf_to_x_ref: np.ndarray  # to the reference's own x_adv (what the prediction reuse keys on)
    in_bounds: np.ndarray
    pred_8bit: np.ndarray
    linf_8bit: np.ndarray


@torch.inference_mode()
def _predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.softmax(model(x), dim=1)
    conf, pred = probs.max(dim=1)
    return pred, conf


def _linf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # float64 makes the difference of two float32 values exact: the distance adds no round-off.
    return (a.double() - b.double()).abs().flatten(1).amax(dim=1)


def judge(
    model: torch.nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    x_ref: torch.Tensor,
    eps: float,
    pred_clean: torch.Tensor,
    reference: _Judged | None = None,
    attack: Attack | None = None,
) -> _Judged:
    """The harness's own verdict on a batch of x_adv: predictions, distances, bounds, 8-bit survival.

    With ``reference`` (the reference's verdict on ``x_ref``), samples whose x_adv equals the
    reference's bit for bit take its predictions instead of a second forward pass: the same image
    gets the same answer, and the equality itself is the stronger check. Every other sample is run
    through the model here. (On the demo this halves the harness's evaluation time: FGSM from every
    library, and torchattacks' seeded PGD, are bit-identical to the reference.) ``attack``'s norm
    bounds the eps-ball (L∞ when None).
    """
    linf_to_ref = _linf(x_adv, x_ref)
    linf = _linf(x_adv, x)
    distance = attack.distance(x_adv, x) if attack is not None else linf
    inside_box = ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(dim=1)
    in_bounds = inside_box & (distance <= eps + EPS_TOLERANCE) & torch.isfinite(x_adv).flatten(1).all(dim=1)
    # Saving as PNG rounds to 1/255 steps. Where rounding gives back the clean image (every eps below
    # 0.5/255 on 8-bit inputs), the prediction is the clean one and no forward pass is needed.
    rounded = torch.round(x_adv.clamp(0, 1) * 255.0) / 255.0
    changed = (rounded != x).flatten(1).any(dim=1)

    fresh = linf_to_ref != 0 if reference is not None else torch.ones_like(changed)
    pred = torch.empty_like(pred_clean)
    conf = torch.empty(len(x), dtype=torch.float32, device=x.device)
    pred_8bit = pred_clean.clone()
    if reference is not None:
        same = ~fresh
        pred[same] = torch.as_tensor(reference.pred, device=x.device)[same]
        conf[same] = torch.as_tensor(reference.conf, device=x.device)[same]
        pred_8bit[same] = torch.as_tensor(reference.pred_8bit, device=x.device)[same]
    if bool(fresh.any()):
        pred[fresh], conf[fresh] = _predict(model, x_adv[fresh])
    recheck = fresh & changed
    if bool(recheck.any()):
        pred_8bit[recheck] = _predict(model, rounded[recheck])[0]
    return _Judged(
        pred=pred.cpu().numpy(),
        conf=conf.cpu().numpy(),
        linf=linf.cpu().numpy(),
        distance=distance.cpu().numpy(),
        linf_to_x_ref=linf_to_ref.cpu().numpy(),
        in_bounds=in_bounds.cpu().numpy(),
        pred_8bit=pred_8bit.cpu().numpy(),
        linf_8bit=_linf(rounded, x).cpu().numpy(),
    )


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class _CellBuffer:
    cell: Cell
    frames: list[pd.DataFrame] = field(default_factory=list)
    attack_seconds: float = 0.0
    eval_seconds: float = 0.0
    forward_rows: float = 0.0
    backward_rows: float = 0.0


@dataclass(frozen=True)
class _CellEvidence:
    """What a library's call shows beyond its predictions, per sample and per call."""

    exact: bool  # an exact expected x_adv existed (False: the library's start cannot be reproduced)
    evidence: Evidence
    forward_expected: float  # passes per sample the adapter declares for this spec
    backward_expected: float
    state_changes: str  # what the library left changed in the model ("" for nothing)


def _rows(
    cell: Cell,
    samples: np.ndarray,
    labels: np.ndarray,
    pred_clean: np.ndarray,
    conf_clean: np.ndarray,
    judged: _Judged | None,
    zero_grad: np.ndarray | None,
    error: str,
    evidence: _CellEvidence,
) -> pd.DataFrame:
    n = len(samples)
    nan = np.full(n, np.nan)
    seen = evidence.evidence if judged else None
    definition = cell.definition
    frame = pd.DataFrame(
        {
            "library": cell.library,
            "attack": cell.attack,
            "eps": cell.eps,
            **definition.columns(cell.params, cell.eps),  # steps, alpha, random_start
            "seed": cell.seed,
            "sample": samples,
            "label": labels,
            "pred_clean": pred_clean,
            # A library that crashed produced no image: -1 marks "no prediction", and the cell is invalid.
            "pred_adv": judged.pred if judged else np.full(n, -1),
            "conf_clean": conf_clean,
            "conf_adv": judged.conf if judged else nan,
            "linf": judged.linf if judged else nan,
            # To the x_adv this library must return (its own start and loss reduction); see expected.py.
            "linf_to_ref": seen.linf_to_expected.cpu().numpy() if seen else nan,
            "in_bounds": judged.in_bounds if judged else np.zeros(n, dtype=bool),
            "attack_label": definition.label(cell.params),
            "norm": definition.norm,
            "seeded": definition.seeded(cell.params),
            "distance": judged.distance if judged else nan,
            "params": params_json(cell.params),
            "pred_adv_8bit": judged.pred_8bit if judged else np.full(n, -1),
            "linf_8bit": judged.linf_8bit if judged else nan,
            "zero_grad": zero_grad if zero_grad is not None else np.full(n, -1),
            "expectation": "exact" if evidence.exact else "statistical",
            "pixels_differ": seen.pixels_differ.cpu().numpy() if seen else np.full(n, -1),
            "pixels_differ_near_zero": seen.pixels_differ_near_zero.cpu().numpy() if seen else np.full(n, -1),
            "pixels_total": evidence.evidence.pixels_total,
            "forward_passes_expected": evidence.forward_expected,
            "backward_passes_expected": evidence.backward_expected,
            "state_changes": evidence.state_changes,
            "error": error,
        }
    )
    return frame


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
        **environment(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


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
    pred_clean_all, conf_clean_all = _clean_predictions(model, x_all, attack_config.batch_size, device)
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
        attack_seconds = executor.run_groups([group for _, group in _groups(todo)], context, bar)
    finally:
        bar.close()
    return RunSummary(
        run_dir=store.run_dir,
        cells_total=len(cells),
        cells_run=len(todo),
        cells_skipped=skipped,
        n_samples=len(x_all),
        wall_seconds=time.perf_counter() - started,
        attack_seconds=attack_seconds,
        clean_seconds=clean_seconds,
        resumed=resumed,
        cells_redone=len(resume.redone),
        libraries_not_run=libraries_not_run,
    )


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
            seconds += _run_group(
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


def _clean_predictions(
    model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    preds, confs = [], []
    for start in range(0, len(x), batch_size):
        pred, conf = _predict(model, x[start : start + batch_size].to(device))
        preds.append(pred.cpu())
        confs.append(conf.cpu())
    return torch.cat(preds), torch.cat(confs)


def _run_group(
    model: torch.nn.Module,
    group: list[Cell],
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    pred_clean_all: torch.Tensor,
    conf_clean_all: torch.Tensor,
    config: AttackConfig,
    device: torch.device,
    store: RunStore,
    bar: tqdm,
) -> float:
    """Run one group batch by batch, reference first; write its cells when done. Returns attack seconds."""
    buffers = {cell: _CellBuffer(cell) for cell in group}
    first = group[0]
    definition = first.definition
    # An attack that shares its gradient across eps (FGSM) is computed by the reference for the run's
    # whole eps grid at once (the extra eps cost a clamp each), so its per-cell cost is 1/k of a
    # gradient whichever cells a filter or an earlier, interrupted run left to do: resumed and
    # uninterrupted runs record the same numbers.
    eps_grid = grid_eps(config, first) if definition.shares_gradient_across_eps else [first.eps]
    where = "grid" if definition.shares_gradient_across_eps else eps_label(first.eps)
    bar.set_postfix_str(f"{definition.label(first.params)} {where} seed {first.seed}")
    reference = adapters.get(REFERENCE)
    attack_seconds = 0.0
    for start in range(0, len(x_all), config.batch_size):
        stop = min(start + config.batch_size, len(x_all))
        x = x_all[start:stop].to(device)
        y = y_all[start:stop].to(device)
        pred_clean = pred_clean_all[start:stop].to(device)
        index = np.arange(start, stop)
        # The reference's own x_adv for this batch, per eps.
        if definition.shares_gradient_across_eps:
            results = reference_attacks.grid(model, x, y, first.spec, eps_grid)
            ref_adv = {eps: r.x_adv for eps, r in zip(eps_grid, results, strict=True)}
            ref_stats = {eps: _amortised(results[0].stats, len(eps_grid)) for eps in eps_grid}
            attack_seconds += results[0].stats.seconds
        else:
            result = reference.run(model, x, y, first.spec)
            ref_adv, ref_stats = {first.eps: result.x_adv}, {first.eps: result.stats}
            attack_seconds += result.stats.seconds
        # The exact x_adv each library must return, shared between libraries that declare the same
        # loss reduction and draw the same start.
        expected = ExpectationCache(model, x, y)
        # The reference is judged first (by the harness's own forward pass); the libraries' samples
        # that match it bit for bit then reuse its predictions.
        ref_judged: dict[float, _Judged] = {}
        for eps in sorted({cell.eps for cell in group}):
            eval_started = time.perf_counter()
            ref_judged[eps] = judge(model, x, ref_adv[eps], ref_adv[eps], eps, pred_clean, attack=definition)
            ref_cell = next((c for c in group if c.library == REFERENCE and c.eps == eps), None)
            if ref_cell is not None:
                buffers[ref_cell].eval_seconds += time.perf_counter() - eval_started
        for cell in group:
            buffer = buffers[cell]
            x_adv: torch.Tensor | None
            stats: AttackStats | None
            judged: _Judged | None
            spec = cell.spec
            declaration = adapters.get(cell.library).declaration
            forward_expected, backward_expected = declaration.passes(spec)
            if cell.library == REFERENCE:
                x_adv, stats, error = ref_adv[cell.eps], ref_stats[cell.eps], ""
                judged = ref_judged[cell.eps]
                # The arbiter is its own expectation; its FGSM passes are 1/k of the grid's gradient.
                forward_expected, backward_expected = _passes(stats)
                evidence = _CellEvidence(
                    True,
                    identical(x_adv),
                    forward_expected,
                    backward_expected,
                    "; ".join(stats.state_changes),
                )
            else:
                x_adv, stats, error = _attack_with_library(model, cell, x, y)
                attack_seconds += stats.seconds if stats else 0.0
                eval_started = time.perf_counter()
                expectation = expected.get(spec, declaration, eps_grid)
                judged = (
                    judge(
                        model,
                        x,
                        x_adv,
                        ref_adv[cell.eps],
                        cell.eps,
                        pred_clean,
                        ref_judged[cell.eps],
                        definition,
                    )
                    if x_adv is not None
                    else None
                )
                evidence = _CellEvidence(
                    exact=expectation.exact,
                    evidence=compare(x_adv if x_adv is not None else x, expectation),
                    forward_expected=forward_expected,
                    backward_expected=backward_expected,
                    state_changes="; ".join(stats.state_changes) if stats else "",
                )
                buffer.eval_seconds += time.perf_counter() - eval_started
            if stats is not None:
                buffer.attack_seconds += stats.seconds
                buffer.forward_rows += stats.forward_passes_per_sample * stats.n_samples
                buffer.backward_rows += stats.backward_passes_per_sample * stats.n_samples
            buffer.frames.append(
                _rows(
                    cell,
                    index,
                    y.cpu().numpy(),
                    pred_clean.cpu().numpy(),
                    conf_clean_all[start:stop].numpy(),
                    judged,
                    stats.zero_grad_elements if stats is not None else None,
                    error,
                    evidence,
                )
            )
    for cell, buffer in buffers.items():
        frame = pd.concat(buffer.frames, ignore_index=True)
        n = len(frame)
        frame["forward_passes"] = buffer.forward_rows / n
        frame["backward_passes"] = buffer.backward_rows / n
        frame["seconds"] = buffer.attack_seconds
        frame["eval_seconds"] = buffer.eval_seconds
        if not store.has(cell):  # a resumed group recomputes the reference only to measure against it
            store.write_cell(cell, frame)
        bar.update()
    return attack_seconds


def _passes(stats: AttackStats) -> tuple[float, float]:
    return stats.forward_passes_per_sample, stats.backward_passes_per_sample


def _amortised(stats: AttackStats, k: int) -> AttackStats:
    """The reference FGSM grid's one gradient, shared by its k eps cells: each carries 1/k of it."""
    return AttackStats(
        library=stats.library,
        n_samples=stats.n_samples,
        forward_passes_per_sample=stats.forward_passes_per_sample / k,
        backward_passes_per_sample=stats.backward_passes_per_sample / k,
        elements_per_sample=stats.elements_per_sample,
        zero_grad_elements=stats.zero_grad_elements,
        zero_grad_elements_all_steps=stats.zero_grad_elements_all_steps,
        seconds=stats.seconds / k,
        state_changes=stats.state_changes,
    )


def _attack_with_library(
    model: torch.nn.Module, cell: Cell, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor | None, AttackStats | None, str]:
    """A library's x_adv for one batch; a broken output or a crash is recorded, not raised."""
    spec = cell.spec
    adapter = adapters.get(cell.library)
    try:
        result = adapter.run(model, x, y, spec)
        return result.x_adv, result.stats, ""
    except AttackOutputError as err:
        # The output exists but breaks a bound: score it anyway so the report can show what happened.
        log.warning("%s", err)
        broken = err.x_adv
        if broken is None or broken.shape != x.shape:
            return None, None, str(err)
        return broken.to(device=x.device, dtype=x.dtype), None, str(err)
    except Exception as err:  # a library bug must not sink the other libraries' cells
        log.warning(
            "%s %s @ %s crashed: %r", cell.library, spec.label, eps_label(cell.eps), err, exc_info=True
        )
        return None, None, f"{type(err).__name__}: {err}"
