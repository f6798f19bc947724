"""The run directory: a manifest, the clean predictions, and one parquet file per finished cell.

::

    RUN/manifest.json          config + its hash, seeds, split and checkpoint hashes, versions, hardware
    RUN/clean.parquet          one row per test sample: label, clean prediction and confidence
    RUN/cells/<cell>.parquet   one row per sample for one library x attack x eps x seed

Every file is written to a temporary name and renamed into place, so a file that exists is complete:
a run killed half-way leaves only finished cells, and re-running into the same directory skips them
and redoes the rest. A manifest with another config hash means the directory belongs to another
experiment; it is refused instead of mixed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

MANIFEST = "manifest.json"
CLEAN = "clean.parquet"
CELLS = "cells"

# The per-sample row contract (DESIGN.md §Contracts), then the extra columns advparity records.
ROW_COLUMNS: tuple[str, ...] = (
    "library", "attack", "eps", "steps", "alpha", "random_start", "seed", "sample", "label",
    "pred_clean", "pred_adv", "conf_clean", "conf_adv", "linf", "linf_to_ref", "in_bounds",
)  # fmt: skip
EXTRA_COLUMNS: tuple[str, ...] = (
    "pred_adv_8bit", "linf_8bit", "zero_grad", "forward_passes", "backward_passes", "seconds",
    "eval_seconds", "error",
    # The x_adv evidence (adapters/expected.py) and what the adapter declares for this spec.
    "expectation", "pixels_differ", "pixels_differ_near_zero", "pixels_total",
    "forward_passes_expected", "backward_passes_expected", "state_changes",
)  # fmt: skip
CLEAN_COLUMNS: tuple[str, ...] = ("sample", "label", "pred_clean", "conf_clean", "image", "class_name")


class RunDirError(ValueError):
    """A run directory that cannot be used for this run; the message says why and what to do."""


@dataclass(frozen=True)
class Cell:
    """One independent unit of work: a library's attack at one eps with one seed."""

    library: str
    attack: str
    eps: float
    steps: int
    alpha: float
    random_start: bool
    seed: int

    @property
    def key(self) -> str:
        """A file-safe name that sorts by attack, then eps, then library."""
        return (
            f"{self.attack}__eps{self.eps * 255:012.6f}-255__steps{self.steps}__rs{int(self.random_start)}"
            f"__seed{self.seed}__{self.library}"
        )

    def group(self) -> tuple[str, float, int, bool, int]:
        """Cells that share the reference's x_adv (what linf_to_ref is measured against)."""
        return (self.attack, self.eps, self.steps, self.random_start, self.seed)


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config``: equal hashes, equal experiments."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _write_atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.cells_dir = self.run_dir / CELLS

    def open(self, manifest: dict[str, Any]) -> bool:
        """Create the run directory, or check that it holds the same experiment.

        Returns True when an existing run is resumed. ``manifest["config_hash"]`` decides.
        """
        path = self.run_dir / MANIFEST
        if path.is_file():
            found = json.loads(path.read_text())
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
        if self.run_dir.exists() and any(p.name != CELLS for p in self.run_dir.iterdir()):
            raise RunDirError(f"{str(self.run_dir)!r} exists and is not a run directory; choose a new --out")
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic_bytes(path, json.dumps(manifest, indent=2, default=str).encode())
        return False

    def manifest(self) -> dict[str, Any]:
        path = self.run_dir / MANIFEST
        if not path.is_file():
            raise RunDirError(f"{str(self.run_dir)!r} is not a run directory: no {MANIFEST}")
        manifest: dict[str, Any] = json.loads(path.read_text())
        return manifest

    def cell_path(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.key}.parquet"

    def has(self, cell: Cell) -> bool:
        return self.cell_path(cell).is_file()

    def write_cell(self, cell: Cell, rows: pd.DataFrame) -> Path:
        missing = [c for c in (*ROW_COLUMNS, *EXTRA_COLUMNS) if c not in rows.columns]
        if missing:
            raise ValueError(f"cell {cell.key}: rows lack column(s) {missing}")
        path = self.cell_path(cell)
        _write_parquet_atomic(rows[list(ROW_COLUMNS + EXTRA_COLUMNS)], path)
        return path

    def has_clean(self) -> bool:
        return (self.run_dir / CLEAN).is_file()

    def write_clean(self, clean: pd.DataFrame) -> Path:
        path = self.run_dir / CLEAN
        _write_parquet_atomic(clean[list(CLEAN_COLUMNS)], path)
        return path

    def read_clean(self) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir / CLEAN)

    def read_results(self) -> pd.DataFrame:
        """All finished cells as one long table (one row per sample per cell)."""
        files = sorted(self.cells_dir.glob("*.parquet"))
        if not files:
            return pd.DataFrame(columns=list(ROW_COLUMNS + EXTRA_COLUMNS))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
