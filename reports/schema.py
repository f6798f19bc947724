"""The shape of a run's tables, checked once where they enter ``reports``, and how eps is written.

Every public function in ``reports`` that takes a results frame calls :func:`check_results` first, so a
frame from an older runner, or one built by hand, fails with a message that names the missing column
instead of a ``KeyError`` three calls deep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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

# The order libraries are listed in everywhere (adapters.names()); unknown libraries follow, sorted.
LIBRARY_ORDER: tuple[str, ...] = (
    "reference", "art", "torchattacks", "foolbox", "secml-torch", "adv-lib", "deeprobust", "advertorch",
)  # fmt: skip
REFERENCE = "reference"
LIBRARY_DISPLAY: dict[str, str] = {
    "reference": "reference",
    "art": "ART",
    "torchattacks": "torchattacks",
    "foolbox": "Foolbox",
    "secml-torch": "secml-torch",
    "adv-lib": "adv-lib",
    "deeprobust": "DeepRobust",
    "advertorch": "advertorch",
}
ATTACK_ORDER: tuple[str, ...] = ("fgsm", "pgd")


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
    # The runner writes -1 where it has no value (a library that crashed, a count it could not take);
    # NaN says "not recorded" to every check, where -1 would read as a prediction or a count.
    for column in ("pred_adv_8bit", "zero_grad", "pixels_differ", "pixels_differ_near_zero"):
        values = pd.to_numeric(out[column], errors="coerce")
        out[column] = values.where(values >= 0)
    out["in_bounds"] = out["in_bounds"].astype(bool)
    out["random_start"] = out["random_start"].astype(bool)
    # FGSM has no random start whatever the spec said; grouping on it would split FGSM cells in two.
    out.loc[out["attack"] == "fgsm", "random_start"] = False
    _fill_attack_columns(out)
    return out


def _fill_attack_columns(out: pd.DataFrame) -> None:
    """The attack's columns (the runner writes them from the attack's definition) for frames recorded
    before they existed, or built by hand — whose attacks can only be the L∞ FGSM and PGD of then."""
    if "attack_label" not in out.columns:
        # One label per distinct variant, mapped back: a Python call per row is slow on 10⁵-row runs.
        keys = ["attack", "steps", "random_start"]
        combos = out[keys].drop_duplicates()
        labels = {
            (a, s, r): attack_label(str(a), int(s), bool(r)) for a, s, r in combos.itertuples(index=False)
        }
        out["attack_label"] = pd.Series(list(zip(*(out[k] for k in keys), strict=True)), index=out.index).map(
            labels
        )
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


def eps_label(eps: float) -> str:
    """Write a pixel-unit eps the way people read it: ``0.1/255``, ``8/255``."""
    if not math.isfinite(eps):
        return str(eps)
    # 6 significant digits hide the float noise of e.g. 0.1/255*255 = 0.09999999999999999.
    return f"{eps * 255:.6g}/255"


def library_label(library: str) -> str:
    """Display name of a library: ``ART``, ``Foolbox``; unknown names unchanged."""
    return LIBRARY_DISPLAY.get(library, library)


def library_sort_key(library: str) -> tuple[int, str]:
    """Sort key putting the reference first, then the libraries in ``adapters.names()`` order."""
    if library in LIBRARY_ORDER:
        return (LIBRARY_ORDER.index(library), library)
    return (len(LIBRARY_ORDER), library)


def attack_label(attack: str, steps: int, random_start: bool) -> str:
    """``FGSM``, ``PGD-10``, ``PGD-10 (no random start)`` — one name per distinct attack variant."""
    if attack == "fgsm":
        return "FGSM"
    name = f"{attack.upper()}-{int(steps)}"
    return name if random_start else f"{name} (no random start)"


def ordered_libraries(libraries: Any) -> list[str]:
    """The distinct library names in report order."""
    return sorted({str(x) for x in libraries}, key=library_sort_key)
