"""The shape of a run's tables, checked once where they enter ``reports``; how eps is written; how
libraries are named and ordered (as the run's manifest records it, :func:`naming_libraries`).

Every public function in ``reports`` that takes a results frame calls :func:`check_results` first, so a
frame from an older runner, or one built by hand, fails with a message that names the missing column
instead of a ``KeyError`` three calls deep.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# One row per sample per cell (docs/design.md, Contracts). Without these no verdict can be computed.
RESULT_COLUMNS: tuple[str, ...] = (
    "library",
    "attack",
    "eps",
    "steps",
    "alpha",
    "random_start",
    "seed",
    "sample",
    "label",
    "pred_clean",
    "pred_adv",
    "conf_clean",
    "conf_adv",
    "linf",
    "linf_to_ref",
    "in_bounds",
)

# Extra columns the runner writes. A frame without them still gets verdicts; the checks that need
# them say "not recorded" instead of guessing. Filled with these values when absent.
OPTIONAL_RESULT_COLUMNS: dict[str, Any] = {
    "pred_adv_8bit": np.nan,
    "linf_8bit": np.nan,
    "zero_grad": np.nan,
    "forward_passes": np.nan,
    "backward_passes": np.nan,
    "seconds": np.nan,
    "error": "",
    # The x_adv evidence (adapters/expected.py). A frame without it — a run recorded before it
    # existed, or one built by hand — is judged statistically, and its verdicts say so.
    "expectation": "statistical",
    "pixels_differ": np.nan,
    "pixels_differ_near_zero": np.nan,
    "pixels_total": np.nan,
    "forward_passes_expected": np.nan,
    "backward_passes_expected": np.nan,
    "state_changes": "",
    # How the expected x_adv was rounded where the library's arithmetic is its own ('' otherwise).
    "arithmetic": "",
    # How the cell's spec departs from the attack's definition, where only some specs of it do.
    "departure": "",
    # The class a targeted attack pushed the sample towards; -1 for an untargeted attack.
    "target": -1,
    # The invariants checked on the cell (JSON: adapters/invariants.py's checks on a few samples; ''
    # where none ran or a run recorded none), and per row the checks its sample broke ('' for none).
    "invariants": "",
    "invariant_broken": "",
}

CLEAN_COLUMNS: tuple[str, ...] = ("sample", "label", "pred_clean", "conf_clean")

MANIFEST_KEYS: tuple[str, ...] = (
    "classes",
    "preset",
    "config",
    "config_hash",
    "versions",
    "hardware",
    "seeds",
    "checkpoint",
    "created_at",
)

REFERENCE = "reference"


@dataclass(frozen=True)
class LibraryNames:
    """The order reports list libraries in and how they write each one's name. Libraries it does not
    name follow, sorted, under their own name."""

    order: tuple[str, ...]
    display: Mapping[str, str]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> LibraryNames:
        """The manifest's ``libraries``: ``[{"name", "display"}, ...]`` in ``adapters.names()`` order, as
        the runner took them from the adapters; :data:`LEGACY_LIBRARY_NAMES` for a run recorded before."""
        recorded = manifest.get("libraries")
        if not isinstance(recorded, list):
            return LEGACY_LIBRARY_NAMES
        entries = [e for e in recorded if isinstance(e, dict) and isinstance(e.get("name"), str)]
        return cls(
            order=tuple(e["name"] for e in entries),
            display={e["name"]: str(e.get("display") or e["name"]) for e in entries},
        )

    def label(self, library: str) -> str:
        return self.display.get(library, library)

    def sort_key(self, library: str) -> tuple[int, str]:
        return (self.order.index(library) if library in self.order else len(self.order), library)


# Only for run directories recorded before the manifest named its libraries (and frames built by
# hand): adapters.names() and their display names as they were then.
LEGACY_LIBRARY_NAMES = LibraryNames(
    order=("reference", "art", "torchattacks", "foolbox", "secml-torch", "adv-lib", "deeprobust", "advertorch"),
    display={"art": "ART", "foolbox": "Foolbox", "deeprobust": "DeepRobust"},
)  # fmt: skip
# The names in force while a run is reported (:func:`naming_libraries`). A context variable rather than
# an argument: the functions that write names only get frames, and a frame does not carry its manifest.
_LIBRARY_NAMES: ContextVar[LibraryNames] = ContextVar("library_names", default=LEGACY_LIBRARY_NAMES)

# The registry's order (adapters/attacks/__init__.py); an attack not listed sorts after these.
ATTACK_ORDER: tuple[str, ...] = ("fgsm", "pgd", "bim", "mifgsm", "apgd")


def check_results(results: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``results`` with the optional columns filled in; raise if a required one is missing.

    ``error`` is normalised to ``str`` ("" for none) because parquet may hand back ``None`` for it.
    """
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(
            f"expected a results frame with columns {list(RESULT_COLUMNS)}, missing {missing} "
            f"(got {list(results.columns)})"
        )
    if results.empty:
        raise ValueError("expected at least one results row, got an empty frame")
    out = results.copy()
    for column, default in OPTIONAL_RESULT_COLUMNS.items():
        if column not in out.columns:
            out[column] = default
    out["error"] = out["error"].fillna("").astype(str)
    out["state_changes"] = out["state_changes"].fillna("").astype(str)
    out["arithmetic"] = out["arithmetic"].fillna("").astype(str)
    out["departure"] = out["departure"].fillna("").astype(str)
    out["invariants"] = out["invariants"].fillna("").astype(str)
    out["invariant_broken"] = out["invariant_broken"].fillna("").astype(str)
    # The runner writes -1 where it has no value (a library that crashed, a count it could not take);
    # NaN says "not recorded" to every check, where -1 would read as a prediction or a count.
    for column in ("pred_adv_8bit", "zero_grad", "pixels_differ", "pixels_differ_near_zero"):
        values = pd.to_numeric(out[column], errors="coerce")
        out[column] = values.where(values >= 0)
    out["in_bounds"] = out["in_bounds"].astype(bool)
    out["random_start"] = out["random_start"].astype(bool)
    if "attack_label" not in out.columns:
        # Recorded before FGSM could start at random: its random_start column echoed PGD's setting,
        # and grouping on it would split FGSM cells in two.
        out.loc[out["attack"] == "fgsm", "random_start"] = False
    _fill_attack_columns(out)
    return out


def with_attack_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``attack_label`` column, which the runner writes from the attack's definition
    (``FGSM``, ``PGD-10``, ``PGD-L2-10``). Only a frame recorded before that column existed, or built by
    hand, gets one here — from the name the L∞ FGSM and PGD of then had, the only attacks it can hold."""
    if "attack_label" in frame.columns:
        return frame
    # One label per distinct variant, mapped back: a Python call per row is slow on 10⁵-row runs.
    keys = ["attack", "steps", "random_start"]
    combos = frame[keys].drop_duplicates()
    labels = {
        (a, s, r): _legacy_attack_label(str(a), int(s), bool(r)) for a, s, r in combos.itertuples(index=False)
    }
    variant = pd.Series(list(zip(*(frame[k] for k in keys), strict=True)), index=frame.index)
    return frame.assign(attack_label=variant.map(labels))


def _legacy_attack_label(attack: str, steps: int, random_start: bool) -> str:
    if attack == "fgsm":
        return "FGSM"
    name = f"{attack.upper()}-{int(steps)}"
    return name if random_start else f"{name} (no random start)"


def _fill_attack_columns(out: pd.DataFrame) -> None:
    """The attack's columns (the runner writes them from the attack's definition) for frames recorded
    before they existed, or built by hand — whose attacks can only be the L∞ FGSM and PGD of then."""
    out["attack_label"] = with_attack_labels(out)["attack_label"]
    if "norm" not in out.columns:
        out["norm"] = "linf"
    if "seeded" not in out.columns:
        out["seeded"] = (out["attack"] != "fgsm") & out["random_start"]
    out["seeded"] = out["seeded"].astype(bool)
    if "distance" not in out.columns:
        out["distance"] = out["linf"]


def check_clean(clean: pd.DataFrame) -> pd.DataFrame:
    """Raise ``ValueError`` naming the missing columns of a clean-predictions frame; return it."""
    missing = [c for c in CLEAN_COLUMNS if c not in clean.columns]
    if missing:
        raise ValueError(f"expected a clean frame with columns {list(CLEAN_COLUMNS)}, missing {missing}")
    return clean


def check_manifest(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """Raise ``ValueError`` naming the missing keys of a run manifest; extra keys are fine."""
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"expected manifest keys {list(MANIFEST_KEYS)}, missing {missing}")
    if not isinstance(manifest["classes"], (list, tuple)) or not manifest["classes"]:
        raise ValueError(f"expected manifest 'classes' to be a non-empty list, got {manifest['classes']!r}")
    return manifest


def eps_label(eps: float, norm: str = "linf") -> str:
    """Write a pixel-unit eps the way people read it: ``0.1/255``, ``8/255`` in L∞; ``0.5`` in L2, whose
    budget is spread over every pixel and is not written in pixel levels."""
    if not math.isfinite(eps):
        return str(eps)
    if norm != "linf":
        return f"{eps:.6g}"
    # 6 significant digits hide the float noise of e.g. 0.1/255*255 = 0.09999999999999999.
    return f"{eps * 255:.6g}/255"


@contextlib.contextmanager
def naming_libraries(names: LibraryNames) -> Iterator[LibraryNames]:
    """Within the block, :func:`library_label`, :func:`library_sort_key` and :func:`ordered_libraries`
    follow ``names`` (a run's ``Run.libraries``); outside any block, :data:`LEGACY_LIBRARY_NAMES`."""
    token = _LIBRARY_NAMES.set(names)
    try:
        yield names
    finally:
        _LIBRARY_NAMES.reset(token)


def library_label(library: str) -> str:
    """Display name of a library: ``ART``, ``Foolbox``; unknown names unchanged."""
    return _LIBRARY_NAMES.get().label(library)


def library_sort_key(library: str) -> tuple[int, str]:
    """Sort key putting the reference first, then the libraries in ``adapters.names()`` order (as the run
    recorded it)."""
    return _LIBRARY_NAMES.get().sort_key(library)


def ordered_libraries(libraries: Any) -> list[str]:
    """The distinct library names in report order."""
    return sorted({str(x) for x in libraries}, key=library_sort_key)
