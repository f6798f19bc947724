"""Checks on where a command will write, made before any work starts.

A command that trains for minutes and then finds its ``--out`` is a regular file (or its ``--json`` a
folder) has lost that work; these checks turn such paths into a usage error (exit 2) up front.
"""

from __future__ import annotations

import os
from pathlib import Path


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or the closest ancestor of it that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def _check_creatable(folder: Path, path: Path, option: str) -> None:
    """``folder`` exists as a writable folder or can be made, so ``mkdir -p folder`` and writing ``path`` succeed."""
    above = _nearest_existing(folder)
    if not above.is_dir():
        raise ValueError(f"{option} {str(path)!r}: {str(above)!r} is a file, expected a folder there")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(path)!r}: cannot write into {str(above)!r} (permission denied)")


def check_output_folder(path: Path, option: str = "--out") -> None:
    """``path`` is an existing folder or can be made as one; a ``ValueError`` naming ``option`` if not."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a file: expected a folder (new, or one to reuse)")
    _check_creatable(path, path, option)


def check_output_file(path: Path, option: str) -> None:
    """``path`` is a file that can be (over)written; a ``ValueError`` naming ``option`` if not."""
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a folder: expected a file path")
    _check_creatable(path.parent, path, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {str(path)!r}: cannot overwrite it (permission denied)")
