"""The one place ``reports`` touches files of a run directory: ``manifest.json``, ``clean.parquet``, ``cells/*.parquet``,
``libraries.json``.

Cells are read through :func:`reports.cells.read_cells`, which checks each against its checksum record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from advparity.model.jsonfile import read_json_object
from advparity.reports.cells import read_cells
from advparity.reports.schema import LibraryNames, check_clean, check_manifest, check_results


@dataclass(frozen=True)
class Run:
    """A finished (or partly finished) run: the long results table, clean predictions and the manifest."""

    results: pd.DataFrame
    clean: pd.DataFrame
    manifest: dict[str, Any]
    run_dir: Path
    # The preset's libraries that did not run: {library: {"state", "reason", "version"}}, where state is
    # "not installed" or "unavailable" (installed but cannot run).
    libraries_not_run: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def unavailable(self) -> dict[str, str]:
        """{library: reason} for the libraries installed here that could not run."""
        return {
            lib: str(status.get("reason", ""))
            for lib, status in self.libraries_not_run.items()
            if status.get("state") == "unavailable"
        }

    @property
    def libraries(self) -> LibraryNames:
        """The order reports list libraries in and their display names, as the adapters gave them when
        the run was made (the manifest's ``libraries``); what ``reports.schema.naming_libraries`` takes."""
        return LibraryNames.from_manifest(self.manifest)

    @property
    def departures(self) -> dict[tuple[str, str], str]:
        """{(library, attack): departure} as each library's adapter documented it when the run was made
        (the manifest's ``declarations``; empty for a run recorded before they were)."""
        declarations = self.manifest.get("declarations")
        if not isinstance(declarations, dict):
            return {}
        return {
            (str(library), str(attack)): str(offer.get("departure", ""))
            for library, declared in declarations.items()
            if isinstance(declared, dict) and isinstance(declared.get("offers"), dict)
            for attack, offer in declared["offers"].items()
            if isinstance(offer, dict) and offer.get("departure")
        }


def read_clean(run_dir: Path) -> pd.DataFrame:
    """``clean.parquet``, checked; a ``ValueError`` naming the file when it is missing or damaged."""
    path = run_dir / "clean.parquet"
    if not path.is_file():
        raise ValueError(
            f"{str(run_dir)!r} has no {path.name} (the clean predictions): run the attacks into it first; "
            "the same `run` command writes it again"
        )
    try:
        return check_clean(pd.read_parquet(path))
    except (pa.ArrowException, OSError) as err:
        raise ValueError(
            f"{str(path)!r} cannot be read ({err}): delete it; the same `run` command writes it again"
        ) from err


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; raise ``FileNotFoundError``/``ValueError`` that says what is missing.

    Cell files are read in sorted name order so the concatenated frame, and everything computed from
    it, is the same on every machine. A cell file that fails its checksum check raises
    :class:`reports.cells.CellFileError` (a ``ValueError``) naming it and how to redo it.
    """
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    clean_path = run_dir / "clean.parquet"
    for path in (manifest_path, clean_path):
        if not path.is_file():
            raise FileNotFoundError(f"expected {path.name} in run directory {run_dir}, not found")
    manifest = read_json_object(manifest_path, "run manifest")
    check_manifest(manifest)
    if not any((run_dir / "cells").glob("*.parquet")):
        raise ValueError(f"expected finished cells in {run_dir / 'cells'}/*.parquet, found none")
    # Every cell is checked against the checksum recorded when it was written; a truncated or changed
    # one is refused with a CellFileError (a ValueError) that says how to redo it.
    results = read_cells(run_dir)
    clean = read_clean(run_dir)
    status_path = run_dir / "libraries.json"
    not_run = read_json_object(status_path, "library status") if status_path.is_file() else {}
    return Run(
        results=check_results(results),
        clean=clean,
        manifest=manifest,
        run_dir=run_dir,
        libraries_not_run=not_run,
    )
