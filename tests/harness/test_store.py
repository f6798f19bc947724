"""The run directory's store: cells checked against the checksum recorded when they were written, and
one writer per directory (``RUN/.lock``).

Most tests drive :class:`RunStore` directly with small hand-made frames; the last ones use a real run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from advparity.adapters.attacks.fgsm import FGSMParams
from advparity.adapters.attacks.pgd import PGDParams
from advparity.harness import lock as lock_module
from advparity.harness.cli import EXIT_BAD_INPUT, main
from advparity.harness.config import load_preset
from advparity.harness.runner import RunRequest, run
from advparity.harness.store import (
    EXTRA_COLUMNS,
    LOCK,
    NOT_WRITTEN,
    ROW_COLUMNS,
    Cell,
    RunDirError,
    RunStore,
)
from advparity.reports.cells import NO_RECORD, SHA_DIFFERS

N = 8
FGSM = Cell("reference", "fgsm", 1 / 255, 0, FGSMParams())
PGD = Cell("art", "pgd", 2 / 255, 0, PGDParams(steps=5, alpha=0.5 / 255, random_start=True))
TEXT_COLUMNS = {
    "library",
    "attack",
    "error",
    "expectation",
    "state_changes",
    "attack_label",
    "norm",
    "params",
}


def _rows(cell: Cell, n: int = N) -> pd.DataFrame:
    """A cell's rows with every column the store writes; the values only need to round-trip."""
    frame = pd.DataFrame({c: np.zeros(n) for c in ROW_COLUMNS + EXTRA_COLUMNS if c not in TEXT_COLUMNS})
    for column in TEXT_COLUMNS:
        frame[column] = ""
    frame["library"], frame["attack"], frame["eps"], frame["seed"] = (
        cell.library,
        cell.attack,
        cell.eps,
        cell.seed,
    )
    frame["sample"] = np.arange(n)
    frame["in_bounds"] = True
    return frame


def _store(tmp_path: Path, *cells: Cell) -> RunStore:
    store = RunStore(tmp_path / "run")
    store.open({"config_hash": "abc", "command": "python -m advparity run --out RUN"})
    for cell in cells:
        store.write_cell(cell, _rows(cell))
    return store


# --- cells are verified ---------------------------------------------------------------------------


def test_a_written_cell_is_recorded_and_verifies(tmp_path: Path) -> None:
    store = _store(tmp_path, FGSM)
    record = json.loads(store.record_path(FGSM).read_text())
    assert record["sha256"] == hashlib.sha256(store.cell_path(FGSM).read_bytes()).hexdigest()
    assert record["rows"] == N and record["columns"] == list(ROW_COLUMNS + EXTRA_COLUMNS)
    assert store.verify(FGSM) == "" and store.has(FGSM)
    assert store.verify(PGD) == NOT_WRITTEN and not store.has(PGD)
    assert len(store.read_results()) == N


def test_a_truncated_cell_fails_is_redone_on_resume_and_refused_by_read_results(tmp_path: Path) -> None:
    store = _store(tmp_path, FGSM, PGD)
    path = store.cell_path(FGSM)
    path.write_bytes(path.read_bytes()[:100])
    assert store.verify(FGSM).startswith("unreadable: ") and not store.has(FGSM)

    with pytest.raises(RunDirError) as error:
        store.read_results()
    message = str(error.value)
    assert path.name in message and "unreadable" in message
    assert f"`python -m advparity run` again with the same arguments and --out {store.run_dir}:" in message
    assert "bad cells are redone" in message and "python -m advparity run --out RUN" in message  # its command

    resume = store.unfinished([FGSM, PGD])
    assert resume.todo == [FGSM] and [cell for cell, _ in resume.redone] == [FGSM]
    assert not path.exists() and not store.record_path(FGSM).exists()  # deleted, to be redone
    assert store.has(PGD)
    store.write_cell(FGSM, _rows(FGSM))
    assert store.has(FGSM) and len(store.read_results()) == 2 * N


def test_a_changed_cell_fails_its_sha256(tmp_path: Path) -> None:
    store = _store(tmp_path, FGSM)
    changed = _rows(FGSM)
    changed.loc[0, "pred_adv"] = 3  # same rows, one value edited by hand
    changed.to_parquet(store.cell_path(FGSM), index=False)
    assert store.verify(FGSM) == SHA_DIFFERS
    with pytest.raises(RunDirError, match="sha256 differs"):
        store.read_results()


def test_a_cell_with_other_rows_than_recorded_fails(tmp_path: Path) -> None:
    store = _store(tmp_path, FGSM)
    _rows(FGSM, n=3).to_parquet(store.cell_path(FGSM), index=False)
    assert store.verify(FGSM) == f"rows 3, recorded {N}"


def test_an_unreadable_record_fails(tmp_path: Path) -> None:
    store = _store(tmp_path, FGSM)
    store.record_path(FGSM).write_text("{not json")
    assert store.verify(FGSM).startswith("checksum record unreadable")
    with pytest.raises(RunDirError, match="checksum record unreadable"):
        store.read_results()


def test_a_cell_without_a_record_is_redone_on_resume_but_read_unverified(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a run directory written before checksums holds (or a run stopped between cell and record).
    store = _store(tmp_path, PGD)
    _rows(FGSM).to_parquet(store.cell_path(FGSM), index=False)
    assert store.verify(FGSM) == NO_RECORD

    with caplog.at_level(logging.WARNING, logger="advparity.reports.cells"):
        results = store.read_results()
    assert len(results) == 2 * N
    assert "1 cell file(s)" in caplog.text and "read unverified" in caplog.text
    assert store.cell_path(FGSM).name in caplog.text

    resume = store.unfinished([FGSM, PGD])
    assert resume.todo == [FGSM] and resume.redone == [(FGSM, NO_RECORD)]


def test_a_cell_without_a_record_must_still_read_and_have_the_contract_columns(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _rows(FGSM).drop(columns=["pred_adv"]).to_parquet(store.cell_path(FGSM), index=False)
    with pytest.raises(RunDirError, match=r"lacks column\(s\) \['pred_adv'\]"):
        store.read_results()
    store.cell_path(FGSM).write_bytes(b"PAR1 cut short")
    with pytest.raises(RunDirError, match="unreadable"):
        store.read_results()


def test_a_new_write_replaces_the_record_of_a_bad_cell(tmp_path: Path) -> None:
    store = _store(tmp_path, FGSM)
    store.record_path(FGSM).write_text(json.dumps({"sha256": "0" * 64, "rows": N}))
    assert store.verify(FGSM) == SHA_DIFFERS
    store.write_cell(FGSM, _rows(FGSM))
    assert store.has(FGSM)


# --- one writer per run directory -----------------------------------------------------------------


def _write_lock(run_dir: Path, pid: int, host: str | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    holder = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "started_at": "2030-01-02T03:04:05+00:00",
        "command": "python -m advparity run --out elsewhere",
    }
    path.write_text(json.dumps(holder))
    return path


def test_the_lock_is_held_for_the_block_and_removed_after_it(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    with store.lock("python -m advparity run") as holder:
        found = json.loads((store.run_dir / LOCK).read_text())
        assert found == {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": holder.started_at,
            "command": "python -m advparity run",
        }
        assert store.open({"config_hash": "abc"}) is False  # the lock does not make the folder foreign
    assert not (store.run_dir / LOCK).exists()

    with pytest.raises(RuntimeError), store.lock("x"):
        raise RuntimeError("the run failed")
    assert not (store.run_dir / LOCK).exists()


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "new")
    with pytest.raises(ValueError), store.lock("x"):
        raise ValueError("bad checkpoint")
    assert not store.run_dir.exists()


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    with store.lock("python -m advparity run --out run"):
        with pytest.raises(RunDirError) as error, RunStore(tmp_path / "run").lock("second"):
            pass
        message = str(error.value)
        assert f"pid {os.getpid()}" in message and socket.gethostname() in message
        assert "python -m advparity run --out run" in message and "another --out" in message
        assert (store.run_dir / LOCK).exists()  # the refused run left the holder's lock alone
    assert not (store.run_dir / LOCK).exists()


def test_a_lock_of_a_live_process_is_refused(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        path = _write_lock(tmp_path / "run", sleeper.pid)
        with pytest.raises(RunDirError) as error, RunStore(tmp_path / "run").lock("x"):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()
    message = str(error.value)
    assert f"pid {sleeper.pid} on host {socket.gethostname()!r}" in message
    assert "started 2030-01-02T03:04:05+00:00" in message and "--out elsewhere" in message
    assert json.loads(path.read_text())["pid"] == sleeper.pid


def test_a_lock_of_a_dead_process_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid no longer exists
    path = _write_lock(tmp_path / "run", gone.pid)
    with (
        caplog.at_level(logging.WARNING, logger="advparity.harness.store"),
        RunStore(tmp_path / "run").lock("mine"),
    ):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert f"took over the lock of pid {gone.pid} (started 2030-01-02T03:04:05+00:00, no longer running)" in (
        caplog.text
    )
    assert not path.exists() and not list((tmp_path / "run").glob(f"{LOCK}*"))


def test_a_lock_from_another_host_is_refused(tmp_path: Path) -> None:
    path = _write_lock(tmp_path / "run", 1, host="some-other-node")
    with pytest.raises(RunDirError) as error, RunStore(tmp_path / "run").lock("x"):
        pass
    message = str(error.value)
    assert "another host" in message and "'some-other-node'" in message and "pid 1" in message
    assert f"delete {str(path)!r}" in message
    assert path.exists()


def test_a_lock_that_names_no_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "_LOCK_READ_TRIES", 2)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).write_text("")
    with pytest.raises(RunDirError, match="names no run.*delete"), RunStore(tmp_path / "run").lock("x"):
        pass


# --- through the CLI, on a real run ----------------------------------------------------------------


def _request(trained: tuple[Path, Path], out: Path) -> RunRequest:
    checkpoint, root = trained
    return RunRequest(
        preset=load_preset("smoke"),
        checkpoint=checkpoint,
        data_root=root,
        out=out,
        libraries=("reference", "art"),
        attacks=("fgsm",),
    )


def test_a_truncated_cell_stops_the_report_and_a_resume_redoes_it(
    trained: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = tmp_path / "run"
    first = run(_request(trained, out), progress=False)
    assert first.cells_run == 6 and first.cells_redone == 0
    before = RunStore(out).read_results().drop(columns=["seconds", "eval_seconds"])
    victim = sorted((out / "cells").glob("*.parquet"))[2]
    victim.write_bytes(victim.read_bytes()[:100])

    assert main(["-q", "report", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert victim.name in err and "python -m advparity run` again" in err and "Traceback" not in err

    with caplog.at_level(logging.WARNING):
        resumed = run(_request(trained, out), progress=False)
    assert (resumed.cells_run, resumed.cells_redone, resumed.cells_skipped) == (1, 1, 5)
    assert f"cell {victim.stem} failed its check (unreadable: " in caplog.text
    after = RunStore(out).read_results().drop(columns=["seconds", "eval_seconds"])
    pd.testing.assert_frame_equal(after, before)
    assert not (out / LOCK).exists()


def test_a_run_into_a_locked_folder_exits_2_naming_the_holder(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, root = trained
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _write_lock(tmp_path / "run", sleeper.pid)
        args = ["-q", "run", "--preset", "smoke", "--checkpoint", str(checkpoint), "--data", str(root)]
        assert main([*args, "--out", str(tmp_path / "run"), "--device", "cpu"]) == EXIT_BAD_INPUT
    finally:
        sleeper.kill()
        sleeper.wait()
    err = capsys.readouterr().err
    assert f"pid {sleeper.pid}" in err and "is being written by another run" in err
    assert not (tmp_path / "run" / "manifest.json").exists()  # refused before writing anything
