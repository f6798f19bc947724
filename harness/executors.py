"""Where a run's groups of cells execute: in this process (``--executor local``, the loop in
:mod:`harness.runner`) or as Ray tasks (``--executor ray``, here).

The unit of a Ray task is a *group*, not a cell. A library's cell is measured against the reference's
x_adv for the same attack, eps and seed (``linf_to_ref``, and the reuse of the reference's verdict for
bit-identical outputs), and the reference computes its whole FGSM grid from one gradient per image.
Splitting a group across tasks would recompute the reference in each (and change the per-cell pass
counts that amortise it), so one task runs exactly what the in-process loop runs for that group:
:func:`harness.group.run_group`, unchanged, with the same model, images and clean predictions.

What a task needs, and how it gets it:

* the test images, labels and the driver's clean predictions: ``ray.put`` once by the driver, read from
  the object store by every task. The tasks then attack exactly the tensors the driver loaded (no
  second PNG decode that another Pillow could round differently), their ``pred_clean`` / ``conf_clean``
  columns are those of ``clean.parquet``, and the data root and split file need not be visible to the
  workers.
* the checkpoint: by path, loaded on the worker with the same loader (card check, ``--trust``), after
  checking that its sha256 is the one in this run's manifest.
* the run directory: every task writes its own cells there (atomically, as in-process), so it must be
  the same path on every node (shared storage). A task first checks that it sees this run's manifest.

Results equal the in-process loop's bit for bit when a task computes with what the driver would: the
same versions (checked by every task), the same kind of CPU/GPU (a difference is logged), and on CPU
the same number of torch threads. Torch's CPU kernels split reductions by thread, so a 1-thread task
differs from a 2-thread in-process run in the last bits of ``conf_*`` and, rarely, in a PGD step;
that is why a CPU task reserves, and uses, as many cores as the in-process run would by default.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from advparity.harness import kernels
from advparity.harness.config import AttackConfig, eps_label
from advparity.harness.environment import configure_torch, environment
from advparity.harness.group import run_group
from advparity.harness.runner import Executor, LocalExecutor, RunContext
from advparity.harness.store import Cell, RunStore
from advparity.model.checkpoint import load_checkpoint, sha256_file
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
INSTALL_HINT = "pip install 'advparity[ray]'"


class RayExecutorError(ValueError):
    """Ray is missing or unreachable, or a task cannot run this run as the driver would (exit 2)."""


class GroupFailedError(RuntimeError):
    """A group's task crashed on its worker; the message names the group, the cause holds the traceback."""


def import_ray() -> Any:
    """``ray``, imported on first use: the in-process executor must work without it."""
    try:
        import ray
    except ImportError as err:
        raise RayExecutorError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from err
    return ray


def build_executor(
    kind: str,
    address: str | None = None,
    cpus_per_task: int | None = None,
    gpus_per_task: float | None = None,
) -> Executor:
    """The executor the command line asked for; Ray options without ``--executor ray`` are refused."""
    if kind == "local":
        given = [
            flag
            for flag, value in (
                ("--ray-address", address),
                ("--cpus-per-task", cpus_per_task),
                ("--gpus-per-task", gpus_per_task),
            )
            if value is not None
        ]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --executor ray")
        return LocalExecutor()
    if kind == "ray":
        import_ray()  # fail before loading anything, not after the clean pass
        return RayExecutor(address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
    raise ValueError(f"--executor: expected one of {EXECUTORS}, got {kind!r}")


def group_label(group: Sequence[Cell]) -> str:
    """A group as a person names it, e.g. ``PGD-3 2/255 seed 1 [reference, art]``."""
    first = group[0]
    libraries = ", ".join(dict.fromkeys(cell.library for cell in group))
    eps = ", ".join(eps_label(e, first.spec.norm) for e in sorted({cell.eps for cell in group}))
    seed = f" seed {first.seed}" if first.definition.seeded(first.params) else ""
    return f"{first.definition.label(first.params)} {eps}{seed} [{libraries}]"


# --- the driver's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RayExecutor:
    """One Ray task per group; tasks write their cells into the (shared) run directory."""

    # None: RAY_ADDRESS if set (as in a `ray job submit` job), else a new local instance for this run.
    # Not Ray's own search, which also tries the last cluster `ray start` made on this machine and
    # waits forever when that one is gone. "auto": the cluster this node belongs to.
    # "ray://HEAD:10001": a remote cluster through Ray Client. "HOST:6379": a cluster's GCS.
    address: str | None = None
    # None: 1 with a GPU; on CPU, the driver's torch threads, i.e. what the in-process loop computes with
    # (equal thread counts, equal results: see the module docstring). A CPU task uses this many threads.
    cpus_per_task: int | None = None
    gpus_per_task: float | None = None  # None: 1 on CUDA, 0 on CPU; a fraction shares a GPU between tasks

    def resources(self, device: torch.device) -> tuple[int, float]:
        """(CPUs, GPUs) one task reserves for a run on ``device``."""
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise RayExecutorError(f"--cpus-per-task: expected an integer >= 1, got {self.cpus_per_task}")
        if device.type == "cuda":
            gpus = 1.0 if self.gpus_per_task is None else self.gpus_per_task
            if gpus <= 0:
                raise RayExecutorError(
                    "--device cuda needs --gpus-per-task > 0: a task without a GPU has none"
                )
            return self.cpus_per_task or 1, gpus
        if self.gpus_per_task:
            raise RayExecutorError(f"--gpus-per-task {self.gpus_per_task} needs --device cuda")
        # The driver's torch threads, set by configure_torch: what the in-process loop computes with.
        return self.cpus_per_task or torch.get_num_threads(), 0.0

    def run_groups(self, groups: list[list[Cell]], context: RunContext, bar: tqdm) -> float:
        ray = import_ray()
        cpus, gpus = self.resources(context.device)
        if not groups:
            return 0.0
        # A session that the caller (a test, a notebook) opened is theirs to close.
        owned = not ray.is_initialized()
        if owned:
            address = self.address or os.environ.get("RAY_ADDRESS") or "local"
            _probe(address)
            try:
                ray.init(address=address)
            except (ConnectionError, ValueError) as err:  # ValueError: e.g. ray:// without ray[client]
                raise RayExecutorError(f"cannot use the Ray cluster at {address!r}: {err}") from err
        try:
            _check_fits(ray, cpus, gpus)
            return _submit_and_wait(ray, groups, context, bar, cpus, gpus)
        finally:
            if owned:
                ray.shutdown()


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail fast where nothing listens at ``[ray://]HOST:PORT``: ray.init would wait there forever."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port; Ray says what it makes of it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise RayExecutorError(f"no Ray cluster answers at {address!r}: {err}") from err


def _check_fits(ray: Any, cpus: int, gpus: float) -> None:
    """Refuse a task that no node can take: Ray would wait for such a node forever."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        return
    have = "; ".join(f"{n.get('CPU', 0):g} CPU, {n.get('GPU', 0):g} GPU" for n in nodes) or "no nodes"
    raise RayExecutorError(
        f"no node of the Ray cluster has {cpus} CPU(s) and {gpus:g} GPU(s) for one task (nodes: {have}); "
        "lower --cpus-per-task / --gpus-per-task, or add such a node"
    )


def task_options(cpus: int, gpus: float, environ: Mapping[str, str]) -> dict[str, Any]:
    """Ray options for a group's task: its resources, and the driver's CPU kernel pin if it has one.

    A pinned kernel family (harness/kernels.py) must be in force in the workers' processes too, before
    their torch starts: Ray starts the workers of these tasks with those variables set.
    """
    options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus}
    pinned = {name: environ[name] for name in kernels.KERNEL_VARIABLES if name in environ}
    if pinned:
        options["runtime_env"] = {"env_vars": pinned}
    return options


def _submit_and_wait(
    ray: Any, groups: list[list[Cell]], context: RunContext, bar: tqdm, cpus: int, gpus: float
) -> float:
    # One copy in the object store for all tasks (passing the arrays to each .remote() would copy them
    # per task). numpy, not torch: Ray stores numpy arrays without pickling them.
    data = ray.put(
        tuple(
            t.numpy() for t in (context.x_all, context.y_all, context.pred_clean_all, context.conf_clean_all)
        )
    )
    manifest = context.manifest
    task = ray.remote(_group_task).options(**task_options(cpus, gpus, os.environ))
    pending: dict[Any, list[Cell]] = {}
    for group in groups:
        job = _GroupJob(
            cells=tuple(group),
            run_dir=str(context.store.run_dir.resolve()),
            config_hash=manifest["config_hash"],
            checkpoint=str(context.checkpoint.resolve()),
            checkpoint_sha256=manifest["checkpoint"]["sha256"],
            trust=context.trust,
            versions=dict(manifest["versions"]),
            device_type=context.device.type,
            threads=cpus,
            config=context.config,
        )
        pending[task.remote(job, data)] = group
    log.info("submitted %d group(s) to Ray, %d CPU(s) and %g GPU(s) each", len(groups), cpus, gpus)

    seconds = 0.0
    failures: list[tuple[list[Cell], Exception]] = []
    hardware = _hardware_label(manifest.get("hardware", {}), context.device.type)
    try:
        while pending:
            bar.set_postfix_str(f"{len(pending)} group(s) left on Ray")
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                group = pending.pop(ref)
                try:
                    outcome: _GroupOutcome = ray.get(ref)
                except ray.exceptions.RayError as err:
                    log.error("Ray task for %s failed: %s", group_label(group), _cause(err))
                    failures.append((group, err))
                    continue
                seconds += outcome.attack_seconds
                if outcome.hardware != hardware:
                    log.warning(
                        "%s ran on %s (%s), the driver has %s: results may differ in the last bits",
                        group_label(group),
                        outcome.node,
                        outcome.hardware,
                        hardware,
                    )
                bar.update(len(group))
        bar.set_postfix_str("")
    except BaseException:
        # Interrupted (Ctrl-C) or broken: stop the rest; cells already written stay for a resume.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    if failures:
        raise _failure_error(failures, len(groups))
    return seconds


def _cause(err: Exception) -> BaseException:
    """The exception raised inside the task (Ray wraps it in a RayTaskError)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def _failure_error(failures: list[tuple[list[Cell], Exception]], total: int) -> Exception:
    lines = "; ".join(f"{group_label(group)}: {_cause(err)}" for group, err in failures)
    message = (
        f"{len(failures)} of {total} group(s) failed on Ray ({lines}). The other groups' cells are "
        "written; re-running the same command runs only what is missing"
    )
    # A setup problem (a worker that cannot see the run directory, another checkpoint, other versions)
    # is bad input, exit 2; anything else is a crash, with the task's traceback as its cause.
    if all(isinstance(_cause(err), ValueError) for _, err in failures):
        error: Exception = RayExecutorError(message)
    else:
        error = GroupFailedError(message)
    error.__cause__ = failures[0][1]
    return error


def _hardware_label(hardware: dict[str, Any], device_type: str) -> str:
    if device_type == "cuda":
        return str(hardware.get("gpu"))
    # The kernels torch runs decide round-off as much as the CPU model does.
    return f"{hardware.get('cpu')} ({hardware.get('cpu_capability', 'unknown')} kernels)"


# --- the task's side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroupJob:
    """One group and everything a worker needs to check and run it (small: the tensors travel apart)."""

    cells: tuple[Cell, ...]
    run_dir: str
    config_hash: str
    checkpoint: str
    checkpoint_sha256: str
    trust: bool
    versions: dict[str, str]
    device_type: str
    threads: int
    config: AttackConfig


@dataclass(frozen=True)
class _GroupOutcome:
    attack_seconds: float
    node: str
    hardware: str


def _group_task(job: _GroupJob, data: tuple[np.ndarray, ...]) -> _GroupOutcome:
    """Runs on a Ray worker: check that it computes what the driver would, then run the group."""
    # Ray limits CUDA_VISIBLE_DEVICES to the task's GPU(s), so "cuda" is the one Ray gave it.
    device = torch.device(job.device_type)
    configure_torch(device)
    if device.type == "cpu":
        torch.set_num_threads(job.threads)  # the task's reserved cores, not every core of the node
    store = _check_worker(job)
    model, _ = load_checkpoint(job.checkpoint, trust=job.trust, device=device)
    model.eval()
    # The object store's arrays are read-only views; copies give torch ordinary writable tensors.
    x_all, y_all, pred_clean_all, conf_clean_all = (torch.from_numpy(np.array(a)) for a in data)
    seconds = run_group(
        model,
        list(job.cells),
        x_all,
        y_all,
        pred_clean_all,
        conf_clean_all,
        job.config,
        device,
        store,
        tqdm(total=len(job.cells), disable=True),
    )
    return _GroupOutcome(
        attack_seconds=seconds,
        node=platform.node(),
        hardware=_hardware_label(environment()["hardware"], device.type),
    )


def _check_worker(job: _GroupJob) -> RunStore:
    """The worker's versions, run directory and checkpoint must be the driver's; else a clear error."""
    node = platform.node()
    here = environment()["versions"]
    differ = {name: (want, here.get(name)) for name, want in job.versions.items() if here.get(name) != want}
    if differ:
        listed = ", ".join(f"{name} {have} (driver {want})" for name, (want, have) in differ.items())
        raise RayExecutorError(f"worker {node} has other versions than the driver: {listed}")
    store = RunStore(job.run_dir)
    try:
        found = store.manifest()["config_hash"]
    except (OSError, ValueError) as err:
        raise RayExecutorError(
            f"worker {node} cannot read the run directory {job.run_dir!r} ({err}); it must be on storage "
            "every node mounts at the same path"
        ) from err
    if found != job.config_hash:
        raise RayExecutorError(f"worker {node} sees another run at {job.run_dir!r} (config hash differs)")
    try:
        digest = sha256_file(job.checkpoint)
    except OSError as err:
        raise RayExecutorError(
            f"worker {node} cannot read the checkpoint {job.checkpoint!r} ({err}); it must be on storage "
            "every node mounts at the same path"
        ) from err
    if digest != job.checkpoint_sha256:
        raise RayExecutorError(
            f"worker {node} reads another checkpoint at {job.checkpoint!r}: sha256 {digest[:12]}…, "
            f"the run's is {job.checkpoint_sha256[:12]}…"
        )
    return store
