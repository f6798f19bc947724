"""The run directory: a manifest, the clean predictions, and one parquet file per finished cell.

::

    RUN/manifest.json          config + its hash, seeds, split and checkpoint hashes, versions, hardware
    RUN/clean.parquet          one row per test sample: label, clean prediction and confidence
    RUN/cells/<cell>.parquet   one row per sample for one library x attack x eps x seed
    RUN/cells/<cell>.json      that file's record: {"sha256", "rows", "columns"}
    RUN/.lock                  while a run writes: {"pid", "host", "started_at", "command"}

Every file is written to a temporary name and renamed into place, so a file that exists is complete:
a run killed half-way leaves only finished cells, and re-running into the same directory skips them
and redoes the rest. A manifest with another config hash means the directory belongs to another
experiment; it is refused instead of mixed.

A cell is *finished* only when its parquet matches the record written beside it after it (sha256 and
row count): a file truncated or changed later (a full disk, a copy cut short, a hand edit) is caught.
A resumed run deletes and redoes such a cell; :meth:`RunStore.read_results` (and ``report``, through
``reports.cells``, where the check itself lives) refuses it, saying how to redo it. The record is one file per cell, not one shared index, because Ray workers in other
processes write cells at the same time.

Cells without a record were written before advparity recorded checksums (or by a run stopped between
a cell and its record). A resumed run redoes them: nothing vouches that they are whole.
:meth:`RunStore.read_results` still reads them, with a warning, when the parquet reads and has every
contract column, so reports of older run directories keep working.

One run writes a directory at a time: :meth:`RunStore.lock` holds ``RUN/.lock`` for the whole run
(``harness/lock.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from advparity.adapters import attacks
from advparity.adapters.attacks.definition import Attack
from advparity.adapters.spec import AttackSpec
from advparity.harness.lock import LOCK, LockHolder, RunDirError, acquire, release

# The checks are the reader's (reports may not import harness; harness may import reports): the
# runner verifies on resume exactly what a report verifies before reading.
from advparity.model.jsonfile import read_json_object
from advparity.reports.cells import CellFileError, check_cell, read_cells, record_of
from advparity.reports.load import read_clean

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CLEAN = "clean.parquet"
CELLS = "cells"
# The preset's libraries that could not run at the last run start (not installed, or installed but
# broken), rewritten each time: installing a library and running again adds its cells to the same run.
LIBRARY_STATUS = "libraries.json"

# verify()'s reason for a cell not on disk (the others come from reports.cells.check_cell).
NOT_WRITTEN = "not written"

# The per-sample row contract (docs/design.md, Contracts), then the extra columns advparity records.
ROW_COLUMNS: tuple[str, ...] = (
    "library", "attack", "eps", "steps", "alpha", "random_start", "seed", "sample", "label",
    "pred_clean", "pred_adv", "conf_clean", "conf_adv", "linf", "linf_to_ref", "in_bounds",
)  # fmt: skip
# What the attack's definition says of the cell (adapters/attacks): how a report names it, its norm,
# whether its seed matters, and each x_adv's distance to x in that norm (what eps budgets).
ATTACK_COLUMNS: tuple[str, ...] = ("attack_label", "norm", "seeded", "distance", "params")
EXTRA_COLUMNS: tuple[str, ...] = (
    *ATTACK_COLUMNS,
    "pred_adv_8bit", "linf_8bit", "zero_grad", "forward_passes", "backward_passes", "seconds",
    "eval_seconds", "error",
    # The x_adv evidence (adapters/expected.py) and what the adapter declares for this spec.
    "expectation", "pixels_differ", "pixels_differ_near_zero", "pixels_total",
    "forward_passes_expected", "backward_passes_expected", "state_changes", "arithmetic",
    "departure",
    # The class a targeted attack pushed the sample towards (adapters/attacks/targets.py); -1 untargeted.
    "target",
    # The invariants checked on the cell (adapters/invariants.py, as JSON) and the checks each row's sample broke.
    "invariants", "invariant_broken",
)  # fmt: skip
CLEAN_COLUMNS: tuple[str, ...] = ("sample", "label", "pred_clean", "conf_clean", "image", "class_name")


@dataclass(frozen=True)
class Cell:
    """One independent unit of work: a library's attack (with its parameters) at one eps with one seed."""

    library: str
    attack: str
    eps: float
    seed: int
    params: Any  # the attack's parameter dataclass (adapters/attacks)

    @property
    def spec(self) -> AttackSpec:
        return AttackSpec(self.attack, self.eps, self.seed, self.params)

    @property
    def definition(self) -> Attack:
        return attacks.get(self.attack)

    @property
    def key(self) -> str:
        """A file-safe name that sorts by attack, then eps, then library."""
        variant = self.definition.cell_key(self.params)
        return f"{self.attack}__eps{self.eps * 255:012.6f}-255__{variant}__seed{self.seed}__{self.library}"

    def group(self) -> tuple[Any, ...]:
        """Cells that share the reference's x_adv (what linf_to_ref is measured against): every eps of
        an attack that shares its gradient across eps (FGSM) together, else one per eps and seed."""
        if self.definition.shares_gradient_across_eps(self.params):
            return (self.attack, self.params)
        return (self.attack, self.eps, self.params, self.seed)


def params_json(params: Any) -> str:
    """An attack's parameters as the ``params`` column records them (sorted JSON)."""
    return json.dumps(asdict(params), sort_keys=True)


def params_of(attack: str, recorded: object, columns: dict[str, Any]) -> Any:
    """The attack's parameters of a results row: its ``params`` column, or — in a run recorded before
    that column existed — the ``steps``/``alpha``/``random_start`` columns the attack defines."""
    definition = attacks.get(attack)
    if isinstance(recorded, str) and recorded:
        return definition.make_params(json.loads(recorded))
    return definition.params_from_columns(columns)


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config``: equal hashes, equal experiments."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` at ``path`` through a temporary file and a rename: a killed process leaves the old file or
    the new one, never half of one (readers of a run never see a partial file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Resume:
    """What a resumed run must do: the cells to run, and those among them that failed their check."""

    todo: list[Cell]
    redone: list[tuple[Cell, str]]  # (cell, why): deleted, to be run again


# --- the store --------------------------------------------------------------------------------------


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.cells_dir = self.run_dir / CELLS

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[LockHolder]:
        """Hold ``RUN/.lock`` while the block runs (see the module docstring); yields this run's holder.

        Raises RunDirError naming the holder when another live run, or a run on another host, holds
        it. A SIGKILLed run cannot remove its lock: the next run on this host finds its pid gone and
        takes the lock over, with a warning.
        """
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK
        holder = LockHolder.this_process(command)
        mine = holder.to_bytes()
        dead = acquire(path, mine)
        if dead is not None:
            log.warning(
                "took over the lock of pid %d (started %s, no longer running) in %s; its finished cells "
                "are checked and kept",
                dead.pid,
                dead.started_at,
                self.run_dir,
            )
        try:
            yield holder
        finally:
            release(path, mine)
            # A run that failed before writing anything leaves no empty folder behind.
            if created and not any(self.run_dir.iterdir()):
                self.run_dir.rmdir()

    def open(self, manifest: dict[str, Any]) -> bool:
        """Create the run directory, or check that it holds the same experiment.

        Returns True when an existing run is resumed. ``manifest["config_hash"]`` decides.
        """
        path = self.run_dir / MANIFEST
        if path.is_file():
            found = read_json_object(path, "run manifest")
            if found.get("config_hash") != manifest["config_hash"]:
                raise RunDirError(
                    f"{str(self.run_dir)!r} holds a run with another configuration (config hash "
                    f"{str(found.get('config_hash'))[:12]}…, this run {manifest['config_hash'][:12]}…): "
                    "use a new --out folder, or the same preset, checkpoint, data and limit to resume"
                )
            # A killed run may leave a temporary file behind; it never had a real name, so drop it.
            for stale in [*self.run_dir.glob(".*.tmp"), *self.cells_dir.glob(".*.tmp")]:
                stale.unlink()
            return True
        if self.run_dir.exists() and any(
            p.name != CELLS and not p.name.startswith(LOCK) for p in self.run_dir.iterdir()
        ):
            raise RunDirError(f"{str(self.run_dir)!r} exists and is not a run directory; choose a new --out")
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(manifest, indent=2, default=str).encode())
        return False

    def write_library_status(self, not_run: dict[str, dict[str, str]]) -> Path:
        """Record which of the preset's libraries did not run here and why (:data:`LIBRARY_STATUS`)."""
        path = self.run_dir / LIBRARY_STATUS
        write_atomic(path, json.dumps(not_run, indent=2, sort_keys=True).encode())
        return path

    def manifest(self) -> dict[str, Any]:
        path = self.run_dir / MANIFEST
        if not path.is_file():
            raise RunDirError(f"{str(self.run_dir)!r} is not a run directory: no {MANIFEST}")
        return read_json_object(path, "run manifest")

    def cell_path(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.key}.parquet"

    def record_path(self, cell: Cell) -> Path:
        """The cell's checksum record, beside its parquet."""
        return record_of(self.cell_path(cell))

    def verify(self, cell: Cell) -> str:
        """An empty string when the cell is finished (its parquet matches its record), else why not.

        The reasons: ``not written``, ``no checksum recorded``, ``checksum record unreadable (...)``,
        ``unreadable: ...``, ``rows N, recorded M``, ``sha256 differs from the one recorded ...``.
        """
        path = self.cell_path(cell)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return NOT_WRITTEN
        return check_cell(data, self.record_path(cell))

    def has(self, cell: Cell) -> bool:
        """Whether the cell is finished: written, and unchanged since (see :meth:`verify`)."""
        return self.verify(cell) == ""

    def discard(self, cell: Cell) -> None:
        """Delete a cell's parquet and record, so that it is run again."""
        self.cell_path(cell).unlink(missing_ok=True)
        self.record_path(cell).unlink(missing_ok=True)

    def unfinished(self, cells: Sequence[Cell]) -> Resume:
        """The cells still to run; a cell that is on disk but fails its check is deleted and among them.

        Cells without a record (written before checksums were recorded) are redone too: nothing
        vouches that they are whole. Call it while holding :meth:`lock`.
        """
        todo: list[Cell] = []
        redone: list[tuple[Cell, str]] = []
        for cell in cells:
            reason = self.verify(cell)
            if not reason:
                continue
            if reason != NOT_WRITTEN:
                self.discard(cell)
                redone.append((cell, reason))
            todo.append(cell)
        return Resume(todo=todo, redone=redone)

    def write_cell(self, cell: Cell, rows: pd.DataFrame) -> Path:
        """Write a cell's rows, then its record (safe from several processes writing other cells)."""
        missing = [c for c in (*ROW_COLUMNS, *EXTRA_COLUMNS) if c not in rows.columns]
        if missing:
            raise ValueError(f"cell {cell.key}: rows lack column(s) {missing}")
        frame = rows[list(ROW_COLUMNS + EXTRA_COLUMNS)]
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()  # hashed as written: the record describes exactly these bytes
        path, record = self.cell_path(cell), self.record_path(cell)
        # An old record must not vouch for the new file; between the two writes below the cell has no
        # record, so a run stopped there leaves a cell that a resume redoes.
        record.unlink(missing_ok=True)
        write_atomic(path, data)
        entry = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": len(frame),
            "columns": list(frame.columns),
        }
        write_atomic(record, json.dumps(entry, indent=2).encode())
        return path

    def has_clean(self) -> bool:
        return (self.run_dir / CLEAN).is_file()

    def write_clean(self, clean: pd.DataFrame) -> Path:
        path = self.run_dir / CLEAN
        _write_parquet_atomic(clean[list(CLEAN_COLUMNS)], path)
        return path

    def read_clean(self) -> pd.DataFrame:
        return read_clean(self.run_dir)

    def read_results(self) -> pd.DataFrame:
        """All finished cells as one long table (one row per sample per cell), in sorted file order.

        Every cell is checked against its record first (:func:`reports.cells.read_cells`); any that
        fails raises RunDirError naming the file, the reason and how to redo it. Cells without a record
        (older runs) are read unverified, with a warning, when they read and have every contract column.
        """
        try:
            frame = read_cells(self.run_dir)
        except CellFileError as err:
            raise RunDirError(str(err)) from None
        if frame.empty:
            return pd.DataFrame(columns=list(ROW_COLUMNS + EXTRA_COLUMNS))
        return frame
