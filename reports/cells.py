"""Reading a run's cell files, each checked against the record written beside it.

``RUN/cells/<cell>.parquet`` holds one cell's rows; ``RUN/cells/<cell>.json`` — written by the runner
after the parquet is in place — its ``sha256``, ``rows`` and ``columns``. A cell whose parquet no
longer matches (a full disk, a copy cut short, a hand edit) is refused here, naming the file and how
to redo it, instead of surfacing as a pyarrow error three calls deep. The runner (``harness/store.py``)
uses the same :func:`check_cell` on resume, so what a report refuses is what a resumed run redoes.

Cells without a record were written before advparity recorded checksums (or by a run stopped
between a cell and its record): :func:`read_cells` reads them unverified, with a warning, when the
parquet reads and has every contract column, so reports of older run directories keep working.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from advparity.reports.schema import RESULT_COLUMNS

log = logging.getLogger(__name__)

NO_RECORD = "no checksum recorded"
SHA_DIFFERS = "sha256 differs from the one recorded when it was written"


class CellFileError(ValueError):
    """Cell files that failed their check; the message names them and says how to redo them."""


def record_of(cell_file: Path) -> Path:
    """A cell file's checksum record, beside it."""
    return cell_file.with_suffix(".json")


def _parquet_rows(data: bytes) -> int:
    """Rows in a parquet file's footer; raises when the file cannot be read (a truncated file lacks it)."""
    rows: int = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    return rows


def check_cell(data: bytes, record_path: Path) -> str:
    """An empty string when ``data`` is the cell file its record describes, else a short reason:
    ``no checksum recorded``, ``checksum record unreadable (...)``, ``unreadable: ...``,
    ``rows N, recorded M`` or ``sha256 differs from the one recorded when it was written``."""
    if not record_path.is_file():
        return NO_RECORD
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        sha256, rows = str(record["sha256"]), int(record["rows"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"checksum record unreadable ({type(err).__name__}: {err})"
    try:
        found = _parquet_rows(data)
    except (pa.ArrowException, OSError, ValueError) as err:
        return f"unreadable: {err}"
    if found != rows:
        return f"rows {found}, recorded {rows}"
    if hashlib.sha256(data).hexdigest() != sha256:
        return SHA_DIFFERS
    return ""


@dataclass
class _Checked:
    frames: list[pd.DataFrame] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)


def read_cells(run_dir: str | Path) -> pd.DataFrame:
    """Every cell file of ``run_dir`` as one long table, in sorted file order (empty if there are none).

    Raises :class:`CellFileError` naming every cell that fails its check and how to redo it.
    """
    run_dir = Path(run_dir)
    checked = _Checked()
    for path in sorted((run_dir / "cells").glob("*.parquet")):
        _read_cell(path, checked)
    if checked.bad:
        raise CellFileError(_bad_cells_message(run_dir, checked.bad))
    if checked.unverified:
        log.warning(
            "%d cell file(s) in %s have no checksum record (written before advparity recorded them), "
            "e.g. %s: read unverified. Running `python -m advparity run` again with the same arguments "
            "and --out %s redoes them with checksums",
            len(checked.unverified),
            run_dir / "cells",
            checked.unverified[0],
            run_dir,
        )
    if not checked.frames:
        return pd.DataFrame()
    return pd.concat(checked.frames, ignore_index=True)


def _read_cell(path: Path, checked: _Checked) -> None:
    data = path.read_bytes()
    reason = check_cell(data, record_of(path))
    if reason not in ("", NO_RECORD):
        checked.bad.append((path, reason))
        return
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as err:
        checked.bad.append((path, f"unreadable: {err}"))
        return
    if reason == NO_RECORD:
        missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
        if missing:
            checked.bad.append((path, f"{NO_RECORD}, and it lacks column(s) {missing}"))
            return
        checked.unverified.append(path.name)
    checked.frames.append(frame)


def _bad_cells_message(run_dir: Path, bad: list[tuple[Path, str]]) -> str:
    listed = "; ".join(f"{str(path)!r}: {reason.rstrip('.')}" for path, reason in bad[:5])
    more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
    return (
        f"{len(bad)} cell file(s) failed their check, so their results cannot be trusted: {listed}{more}. "
        f"Run `python -m advparity run` again with the same arguments and --out {run_dir}: bad cells "
        f"are redone{_recorded_command(run_dir)}"
    )


def _recorded_command(run_dir: Path) -> str:
    """The manifest's command as " (it was started with: ...)", or "" when there is none."""
    try:
        command = json.loads((run_dir / "manifest.json").read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" (it was started with: {command})" if command else ""
