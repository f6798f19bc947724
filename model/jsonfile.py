"""Reading the JSON files advparity writes (cards, manifests, baselines) with errors that name the file.

A truncated or hand-edited file must say which file it is and what is wrong with it, not surface as a
bare ``json.JSONDecodeError`` ("Expecting value: line 1 column 1") that names nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class JSONFileError(ValueError):
    """A JSON file that cannot be read as the object it should hold; the message names the file."""


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (``what`` says what the file is, e.g. "checkpoint card")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise JSONFileError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from err
    if not raw.strip():
        raise JSONFileError(f"{what} {str(path)!r} is empty: it was cut short or never written")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise JSONFileError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {err.start}): not a file advparity wrote, or damaged"
        ) from err
    try:
        found = json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONFileError(
            f"{what} {str(path)!r} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}): "
            "damaged or cut short"
        ) from err
    if not isinstance(found, dict):
        raise JSONFileError(f"{what} {str(path)!r}: expected a JSON object, got {type(found).__name__}")
    return found
