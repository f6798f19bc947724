"""--executor ray on a local Ray instance: the in-process loop's cells, resume, and clear errors.

Torch's CPU results depend on the thread count (last bits of conf_*, rarely a PGD step), and a Ray CPU
task computes with the driver's thread count, so here both run with 1 thread: on a 2-core machine that
lets Ray run 2 tasks at once, and no 2-thread process spin-waits against other work on the cores.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray
import torch
from advparity.adapters.attacks.fgsm import FGSMParams
from advparity.adapters.attacks.pgd import PGDParams
from advparity.harness import executors, runner
from advparity.harness.cli import EXIT_BAD_INPUT, EXIT_OK, main
from advparity.harness.config import load_preset
from advparity.harness.executors import (
    GroupFailedError,
    RayExecutor,
    RayExecutorError,
    build_executor,
    group_label,
)
from advparity.harness.runner import LocalExecutor, RunRequest, run
from advparity.harness.store import Cell, RunStore

TIMING = ["seconds", "eval_seconds"]
# Three of the smoke preset's five groups: the FGSM grid, and PGD 2/255 with seed 0 (every library) and
# with seed 1 (the reference's second seed only); APGD-CE-10 4/255 makes two more alike.
FGSM = "FGSM 0.1/255, 1/255, 4/255 [reference, art, torchattacks, foolbox]"
PGD_SEED_0 = "PGD-3 2/255 seed 0 [reference, art, torchattacks, foolbox]"
PGD_SEED_1 = "PGD-3 2/255 seed 1 [reference]"


@pytest.fixture(scope="module")
def local_run(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The in-process run every Ray run is compared with."""
    checkpoint, root = trained
    out = tmp_path_factory.mktemp("local") / "run"
    run(_request(checkpoint, root, out, LocalExecutor()), progress=False)
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_no_ray_left() -> Iterator[None]:
    """Every run in this module (in-process, and so each Ray task) computes with 1 torch thread; and
    whatever a test left running, no Ray process outlives the module."""
    threads = torch.get_num_threads()

    def configure_one_thread(device: torch.device, *args: Any, **kwargs: Any) -> None:
        configure(device, *args, **kwargs)
        torch.set_num_threads(1)

    configure = runner.configure_torch
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "configure_torch", configure_one_thread)
        yield
    ray.shutdown()
    torch.set_num_threads(threads)


@pytest.fixture
def ray_session() -> None:
    """One local Ray instance, opened by the first test that needs it and shared after that."""
    if not ray.is_initialized():
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, log_to_driver=False)


def _request(checkpoint: Path, root: Path, out: Path, executor: Any, **kwargs: Any) -> RunRequest:
    return RunRequest(
        preset=load_preset("smoke"),
        checkpoint=checkpoint,
        data_root=root,
        out=out,
        executor=executor,
        **kwargs,
    )


def _comparable(run_dir: Path) -> pd.DataFrame:
    results = RunStore(run_dir).read_results()
    keys = ["attack", "eps", "seed", "library", "sample"]
    return results.drop(columns=TIMING).sort_values(keys).reset_index(drop=True)


def _record_submissions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The labels of the groups the Ray executor submits, in order."""
    submitted: list[str] = []
    real = executors._submit_and_wait

    def spy(ray_module: Any, groups: list[list[Cell]], *args: Any) -> float:
        submitted.extend(group_label(group) for group in groups)
        return real(ray_module, groups, *args)

    monkeypatch.setattr(executors, "_submit_and_wait", spy)
    return submitted


def test_ray_run_equals_the_in_process_run(
    trained: tuple[Path, Path], local_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on the command line: the executor starts its own local Ray instance and shuts it down.
    ray.shutdown()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    checkpoint, root = trained
    summary = run(_request(checkpoint, root, tmp_path / "ray", RayExecutor()), progress=False)
    assert not ray.is_initialized(), "an instance the executor started is shut down after the run"
    assert (summary.cells_total, summary.cells_run, summary.cells_skipped) == (20, 20, 0)
    assert summary.attack_seconds > 0
    pd.testing.assert_frame_equal(_comparable(tmp_path / "ray"), _comparable(local_run), check_exact=True)
    pd.testing.assert_frame_equal(RunStore(tmp_path / "ray").read_clean(), RunStore(local_run).read_clean())
    assert (
        RunStore(tmp_path / "ray").manifest()["config_hash"] == RunStore(local_run).manifest()["config_hash"]
    )


def test_ray_resumes_a_run_by_submitting_only_the_unfinished_groups(
    trained: tuple[Path, Path],
    local_run: Path,
    tmp_path: Path,
    ray_session: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A local run with one FGSM cell and the whole PGD seed-1 group missing, finished by Ray.
    checkpoint, root = trained
    out = tmp_path / "resumed"
    shutil.copytree(local_run, out)
    cells = out / "cells"
    (cells / f"{Cell('art', 'fgsm', 1 / 255, 0, FGSMParams()).key}.parquet").unlink()
    pgd_seed_1 = Cell("reference", "pgd", 2 / 255, 1, PGDParams(steps=3, alpha=0.5 / 255, random_start=True))
    (cells / f"{pgd_seed_1.key}.parquet").unlink()
    kept = {path.name: path.stat().st_mtime_ns for path in cells.glob("*.parquet")}
    submitted = _record_submissions(monkeypatch)

    args = ["-q", "run", "--preset", "smoke", "--checkpoint", str(checkpoint), "--data", str(root)]
    assert main([*args, "--out", str(out), "--device", "cpu", "--executor", "ray"]) == EXIT_OK
    assert "2 cells run, 18 already finished" in capsys.readouterr().out
    # A group carries only its unfinished cells (the reference's FGSM gradient is recomputed to measure
    # against); PGD seed 0 is complete and is not submitted at all.
    assert submitted == ["FGSM 1/255 [art]", PGD_SEED_1]
    assert {
        path.name: path.stat().st_mtime_ns for path in cells.glob("*.parquet") if path.name in kept
    } == kept
    pd.testing.assert_frame_equal(_comparable(out), _comparable(local_run), check_exact=True)


def test_a_failing_group_is_named_and_the_other_groups_are_kept(
    trained: tuple[Path, Path],
    local_run: Path,
    tmp_path: Path,
    ray_session: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The PGD seed-1 task is told to expect another checkpoint: its worker refuses to run it.
    checkpoint, root = trained
    real_job = executors._GroupJob

    def sabotaged(**fields: Any) -> Any:
        if group_label(fields["cells"]) == PGD_SEED_1:
            fields["checkpoint_sha256"] = "0" * 64
        return real_job(**fields)

    monkeypatch.setattr(executors, "_GroupJob", sabotaged)
    out = tmp_path / "run"
    with pytest.raises(RayExecutorError, match="1 of 5 group") as error:
        run(_request(checkpoint, root, out, RayExecutor()), progress=False)
    message = str(error.value)
    assert f"{PGD_SEED_1}: worker" in message and "reads another checkpoint" in message
    assert "re-running the same command" in message
    assert len(list((out / "cells").glob("*.parquet"))) == 19  # every cell but the failed group's

    monkeypatch.setattr(executors, "_GroupJob", real_job)
    submitted = _record_submissions(monkeypatch)
    summary = run(_request(checkpoint, root, out, RayExecutor()), progress=False)
    assert (summary.cells_run, summary.cells_skipped, submitted) == (1, 19, [PGD_SEED_1])
    pd.testing.assert_frame_equal(_comparable(out), _comparable(local_run), check_exact=True)


def test_a_worker_that_cannot_see_the_run_directory_says_so(
    trained: tuple[Path, Path], tmp_path: Path, ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a node without the shared mount sees: no run directory at the driver's path.
    checkpoint, root = trained
    real_job = executors._GroupJob
    monkeypatch.setattr(
        executors,
        "_GroupJob",
        lambda **fields: real_job(**{**fields, "run_dir": str(tmp_path / "not-mounted")}),
    )
    with pytest.raises(RayExecutorError, match="2 of 2 group") as error:
        run(_request(checkpoint, root, tmp_path / "run", RayExecutor(), attacks=("pgd",)), progress=False)
    assert "cannot read the run directory" in str(error.value) and "same path" in str(error.value)
    assert not list((tmp_path / "run" / "cells").iterdir())


def test_a_crash_in_a_task_is_a_group_failure_not_bad_input(
    trained: tuple[Path, Path], tmp_path: Path, ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint, root = trained
    real_job = executors._GroupJob

    def broken(**fields: Any) -> Any:
        if group_label(fields["cells"]) == PGD_SEED_1:
            fields["config"] = None  # the task dies with an AttributeError: a bug, not bad input
        return real_job(**fields)

    monkeypatch.setattr(executors, "_GroupJob", broken)
    with pytest.raises(
        GroupFailedError, match=f"1 of 5 group.*{re.escape(PGD_SEED_1)}: .*batch_size"
    ) as error:
        run(_request(checkpoint, root, tmp_path / "run", RayExecutor()), progress=False)
    assert isinstance(error.value.__cause__, ray.exceptions.RayTaskError)  # it carries the worker's traceback


def test_a_task_no_node_can_take_is_refused(
    trained: tuple[Path, Path], tmp_path: Path, ray_session: None
) -> None:
    checkpoint, root = trained
    with pytest.raises(RayExecutorError, match="no node of the Ray cluster has 64 CPU"):
        run(_request(checkpoint, root, tmp_path / "run", RayExecutor(cpus_per_task=64)), progress=False)


def test_resources_per_task() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    torch.set_num_threads(1)  # what configure_torch leaves in this module
    assert RayExecutor().resources(cpu) == (1, 0.0)  # the driver's threads: what in-process runs use
    assert RayExecutor(cpus_per_task=1).resources(cpu) == (1, 0.0)
    assert RayExecutor().resources(cuda) == (1, 1.0)
    assert RayExecutor(cpus_per_task=4, gpus_per_task=0.5).resources(cuda) == (4, 0.5)
    with pytest.raises(RayExecutorError, match="needs --device cuda"):
        RayExecutor(gpus_per_task=1).resources(cpu)
    with pytest.raises(RayExecutorError, match="needs --gpus-per-task > 0"):
        RayExecutor(gpus_per_task=0).resources(cuda)


def test_an_address_where_nothing_listens_fails_fast() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(RayExecutorError, match="no Ray cluster answers at"):
            executors._probe(address)
    executors._probe("local")  # not an address to probe: Ray starts or finds these itself
    executors._probe("auto")


def test_ray_options_need_the_ray_executor() -> None:
    assert isinstance(build_executor("local"), LocalExecutor)
    assert isinstance(build_executor("ray", "auto", 2, None), RayExecutor)
    with pytest.raises(ValueError, match="--ray-address, --cpus-per-task: only with --executor ray"):
        build_executor("local", "auto", 2)


def test_missing_ray_is_a_clear_error(
    trained: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    checkpoint, _ = trained
    args = ["-q", "run", "--preset", "smoke", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "r")]
    assert main([*args, "--executor", "ray"]) == EXIT_BAD_INPUT
    assert "pip install 'advparity[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written
    # demo refuses before it synthesises or trains anything.
    demo = ["-q", "demo", "--preset", "smoke", "--out", str(tmp_path / "d"), "--executor", "ray"]
    assert main(demo) == EXIT_BAD_INPUT
    assert "pip install 'advparity[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_a_kernel_pin_reaches_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers are new processes: the pin (harness/kernels.py) must be in their environment before torch starts."""
    from advparity.harness import kernels

    plain = {k: v for k, v in os.environ.items() if k not in kernels.KERNEL_VARIABLES}
    assert executors.task_options(2, 0.0, plain) == {"num_cpus": 2, "num_gpus": 0.0}
    pinned = {**plain, **kernels.ISA_ENVIRONMENT["avx2"]}
    options = executors.task_options(2, 0.0, pinned)
    assert options["runtime_env"] == {"env_vars": dict(kernels.ISA_ENVIRONMENT["avx2"])}
