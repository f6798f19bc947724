"""Grad-CAM under attack: where the model looks on the clean and on the adversarial image, measured.

The paper (Eq. 10–12, section "Visual Progression and Grad-CAM Analysis") claims that attacks move
DenseNet-121's attention off the lungs ("semantic decoupling"), measured as the cosine similarity
``Sc`` of the flattened Grad-CAM maps of the clean and the adversarial image, but shows it only with
pictures. This module measures it, per image and per true class:

- the maps themselves come from ``harness/cam.py`` (the ``grad-cam`` package on one target layer,
  target = the class the model predicts for *that* image, Eq. 10–11): this package reads them from the
  run directory and runs no model;
- :func:`cosine_similarity` (Eq. 12) and :func:`lung_share` (CAM mass inside the lung mask);
- :func:`image_rows` — one row per image per attack setting; :func:`summarize` — per true class ×
  library × attack × eps, mean ``Sc`` with a bootstrap CI, lung share clean vs adversarial, split by
  whether the prediction flipped.

The figures are drawn in :mod:`reports.gradcam_figures`, the part of ``report.html`` that shows them in
:mod:`reports.gradcam_html`.

``harness/gradcam.py`` regenerates the adversarial images, maps them and writes ``RUN_DIR/gradcam/``: ``gradcam.parquet`` (the rows), ``summary.csv``, ``meta.json`` and
``figures/*.png``.

Zero maps
---------
The package min-max normalises every map to [0, 1]. A map whose raw CAM is ``<= 0`` everywhere (no
location speaks for the class) or constant (no location is preferred) comes out as all zeros. The
conventions, chosen so that no number is invented and no NaN reaches ``Sc``:

- ``cosine_similarity``: both maps zero → 1.0 (the two maps are identical); exactly one zero → 0.0
  (the dot product is 0: the maps share no location; the zero map has no mass anywhere the other
  could overlap). The formula itself is undefined there (0/0).
- ``lung_share`` of a zero map → NaN: a share of no mass is undefined, and any number would bias the
  class means (0 would fake "attention left the lungs", the mask's area would fake chance). Means skip
  it; :func:`summarize` counts zero maps per group (``zero_maps``) so a reader sees how many there were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# Re-exported (see __all__): harness/gradcam.py calls them as rg.CamPanel, rg.figure_grid, rg.panel_titles.
from advparity.reports.gradcam_figures import CamPanel, figure_grid, panel_titles
from advparity.reports.schema import eps_label, library_label, library_sort_key

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "FIGURES_DIR",
    "GRADCAM_DIR",
    "META_FILE",
    "ROWS_FILE",
    "ROW_COLUMNS",
    "SUBSETS",
    "SUMMARY_COLUMNS",
    "SUMMARY_FILE",
    "CamPanel",
    "Setting",
    "bootstrap_mean_ci",
    "cosine_similarity",
    "figure_grid",
    "image_rows",
    "lung_share",
    "panel_titles",
    "summarize",
]

GRADCAM_DIR = "gradcam"
ROWS_FILE = "gradcam.parquet"
SUMMARY_FILE = "summary.csv"
META_FILE = "meta.json"
FIGURES_DIR = "figures"

BOOTSTRAP_RESAMPLES = 2000
SUBSETS: tuple[str, ...] = ("all", "flipped", "not flipped")

# The per-image table written to RUN_DIR/gradcam/gradcam.parquet (harness/gradcam.py may add columns).
ROW_COLUMNS: tuple[str, ...] = (
    "library", "attack", "attack_label", "norm", "eps", "steps", "alpha", "random_start", "seed", "sample", "image",
    "label", "class_name", "pred_clean", "pred_adv", "pred_adv_run", "reproduced", "flipped", "sc",
    "lung_share_clean", "lung_share_adv", "mask_area", "zero_map_clean", "zero_map_adv",
)  # fmt: skip

SUMMARY_COLUMNS: tuple[str, ...] = (
    "label", "class_name", "library", "attack", "attack_label", "steps", "random_start", "eps", "eps_label",
    "subset", "n", "sc_mean", "sc_ci_low", "sc_ci_high", "lung_share_clean", "lung_share_adv", "lung_delta",
    "lung_delta_ci_low", "lung_delta_ci_high", "mask_area", "zero_maps", "not_reproduced",
)  # fmt: skip


# --- per-image measures ------------------------------------------------------------------------------


def cosine_similarity(cam_a: np.ndarray, cam_b: np.ndarray) -> float:
    """Paper Eq. 12 on the flattened maps: ``a·b / (‖a‖ ‖b‖)``; identical → 1, disjoint → 0.

    Zero maps (see the module docstring): both zero → 1.0, exactly one zero → 0.0; never NaN.
    """
    a = np.asarray(cam_a, dtype=np.float64).ravel()
    b = np.asarray(cam_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"expected maps of equal size, got {np.shape(cam_a)} and {np.shape(cam_b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("expected finite maps, got NaN or inf")
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 and norm_b == 0.0:
        return 1.0
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    # Round-off can put identical maps a hair above 1.
    return float(np.clip(np.dot(a, b) / (norm_a * norm_b), -1.0, 1.0))


def lung_share(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the CAM's mass inside the lung mask: all inside → 1, all outside → 0; zero map → NaN.

    A uniform map scores the mask's area fraction (``mask.mean()``): that is chance level.
    """
    values = np.asarray(cam, dtype=np.float64)
    inside = np.asarray(mask, dtype=bool)
    if values.shape != inside.shape:
        raise ValueError(f"expected a mask of the map's shape {values.shape}, got {inside.shape}")
    if not np.isfinite(values).all():
        raise ValueError("expected a finite map, got NaN or inf")
    if (values < 0).any():
        raise ValueError(f"expected a non-negative map (Grad-CAM is ReLU'd), got minimum {values.min():.3g}")
    total = float(values.sum())
    if total == 0.0:
        return math.nan
    return float(values[inside].sum() / total)


@dataclass(frozen=True)
class Setting:
    """One attack cell of the run whose adversarial images were mapped (the run's cell fields)."""

    library: str
    attack: str
    eps: float
    steps: int
    alpha: float
    random_start: bool
    seed: int
    params: str = ""  # the attack's parameters as the run recorded them (JSON; "" in older runs)
    # The variant's name as the run's rows give it (from the attack's definition): "PGD-10", "PGD-L2-10".
    attack_label: str = field(kw_only=True)
    # The eps's norm: an L2 eps is written as a plain number, an L∞ one in pixel levels.
    norm: str = field(default="linf", kw_only=True)

    @property
    def label(self) -> str:
        return f"{library_label(self.library)} {self.attack_label} @ {eps_label(self.eps, self.norm)}"


def image_rows(
    setting: Setting,
    samples: pd.DataFrame,
    pred_adv: np.ndarray,
    cam_clean: np.ndarray,
    cam_adv: np.ndarray,
    masks: Sequence[np.ndarray | None],
    pred_adv_run: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per image for one attack setting (columns :data:`ROW_COLUMNS`).

    ``samples`` holds ``sample, image, label, class_name, pred_clean`` per image (as in the run's
    ``clean.parquet``); ``cam_clean``/``cam_adv`` are ``[N, H, W]``; ``masks`` a bool ``[H, W]`` lung
    mask per image, or None where the data set has none (lung shares are then NaN).
    ``pred_adv_run`` is what the run recorded for these samples; ``reproduced`` says whether the
    regenerated prediction equals it (missing when not given).
    """
    n = len(samples)
    pred_adv = np.asarray(pred_adv)
    if not (len(pred_adv) == len(cam_clean) == len(cam_adv) == len(masks) == n):
        raise ValueError(
            f"expected {n} predictions, clean maps, adversarial maps and masks, got "
            f"{len(pred_adv)}, {len(cam_clean)}, {len(cam_adv)}, {len(masks)}"
        )
    missing = [
        c for c in ("sample", "image", "label", "class_name", "pred_clean") if c not in samples.columns
    ]
    if missing:
        raise ValueError(f"samples lack column(s) {missing}")

    def share(cam: np.ndarray, mask: np.ndarray | None) -> float:
        return math.nan if mask is None else lung_share(cam, mask)

    pred_clean = samples["pred_clean"].to_numpy()
    recorded = pd.array(
        [pd.NA] * n if pred_adv_run is None else np.asarray(pred_adv_run, dtype=np.int64), dtype="Int64"
    )
    frame = pd.DataFrame(
        {
            "library": setting.library,
            "attack": setting.attack,
            "attack_label": setting.attack_label,
            "norm": setting.norm,
            "eps": float(setting.eps),
            "steps": int(setting.steps),
            "alpha": float(setting.alpha),
            "random_start": bool(setting.random_start),
            "seed": int(setting.seed),
            "sample": samples["sample"].to_numpy(),
            "image": samples["image"].astype(str).to_numpy(),
            "label": samples["label"].to_numpy(),
            "class_name": samples["class_name"].astype(str).to_numpy(),
            "pred_clean": pred_clean,
            "pred_adv": pred_adv.astype(np.int64),
            "pred_adv_run": recorded,
            "reproduced": pd.array(
                [pd.NA] * n if pred_adv_run is None else recorded == pred_adv, dtype="boolean"
            ),
            "flipped": pred_adv != pred_clean,
            "sc": [cosine_similarity(a, b) for a, b in zip(cam_clean, cam_adv, strict=True)],
            "lung_share_clean": [share(c, m) for c, m in zip(cam_clean, masks, strict=True)],
            "lung_share_adv": [share(c, m) for c, m in zip(cam_adv, masks, strict=True)],
            "mask_area": [math.nan if m is None else float(np.mean(m)) for m in masks],
            "zero_map_clean": [not bool(np.any(c > 0)) for c in cam_clean],
            "zero_map_adv": [not bool(np.any(c > 0)) for c in cam_adv],
        }
    )
    return frame[list(ROW_COLUMNS)]


# --- aggregation -------------------------------------------------------------------------------------


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (NaNs dropped); ``(nan, nan)`` for fewer than 2 values.

    A fresh ``numpy.random.Generator(seed)`` per call: a group's interval does not depend on which
    groups were computed before it. With one value every resample is that value, and a zero-width
    interval would look like certainty, hence NaN.
    """
    if not 0 < level < 1:
        raise ValueError(f"expected level in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"expected resamples >= 1, got {resamples}")
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    if len(data) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


def _nanmean(values: pd.Series) -> float:
    data = values.to_numpy(dtype=np.float64)
    data = data[~np.isnan(data)]
    return float(data.mean()) if len(data) else math.nan


def summarize(
    frame: pd.DataFrame, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """Per true class × library × attack × eps × subset (all / flipped / not flipped): ``n``, mean Sc
    with a percentile bootstrap CI, mean lung share clean and adversarial, the paired mean change
    (adversarial − clean) with its bootstrap CI, the mean mask area (the lung share of a uniform map),
    the number of rows with a zero map, and of regenerated predictions that differ from the run's.

    Lung-share means skip NaNs (no mask, or a zero map). Subsets with no images are left out.
    """
    # Rows written before they carried the norm hold L∞ attacks only.
    frame = frame if "norm" in frame.columns else frame.assign(norm="linf")
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"expected Grad-CAM rows (reports.gradcam.ROW_COLUMNS), missing {missing}")
    keys = [
        "label",
        "class_name",
        "library",
        "attack",
        "attack_label",
        "norm",
        "steps",
        "random_start",
        "eps",
    ]
    out: list[dict[str, Any]] = []
    for key, group in frame.groupby(keys, sort=False):
        base = dict(zip(keys, key, strict=True))
        for subset in SUBSETS:
            part = group if subset == "all" else group[group["flipped"].astype(bool) == (subset == "flipped")]
            if part.empty:
                continue
            delta = (part["lung_share_adv"] - part["lung_share_clean"]).to_numpy(dtype=np.float64)
            sc_low, sc_high = bootstrap_mean_ci(part["sc"].to_numpy(), level, resamples, seed)
            d_low, d_high = bootstrap_mean_ci(delta, level, resamples, seed)
            reproduced = part["reproduced"].astype("boolean")
            out.append(
                {
                    **base,
                    "eps_label": eps_label(float(base["eps"]), str(base["norm"])),
                    "subset": subset,
                    "n": len(part),
                    "sc_mean": float(part["sc"].mean()),
                    "sc_ci_low": sc_low,
                    "sc_ci_high": sc_high,
                    "lung_share_clean": _nanmean(part["lung_share_clean"]),
                    "lung_share_adv": _nanmean(part["lung_share_adv"]),
                    "lung_delta": _nanmean(pd.Series(delta)),
                    "lung_delta_ci_low": d_low,
                    "lung_delta_ci_high": d_high,
                    "mask_area": _nanmean(part["mask_area"]),
                    "zero_maps": int((part["zero_map_clean"] | part["zero_map_adv"]).sum()),
                    "not_reproduced": int((~reproduced).fillna(False).sum()),
                }
            )
    summary = pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))
    if summary.empty:
        return summary
    order = summary.assign(
        _lib=summary["library"].map(library_sort_key),
        _subset=summary["subset"].map(SUBSETS.index),
    ).sort_values(["label", "_lib", "attack", "attack_label", "eps", "_subset"], kind="stable")
    return order.drop(columns=["_lib", "_subset"]).reset_index(drop=True)
