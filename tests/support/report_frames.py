"""Results frames built by hand, row by row, so every expected number in the tests can be worked out on paper.

The standard scene: 200 test samples, labels ``i % 4`` (50 per class), the model wrong on samples 0–9
when clean (95 % clean accuracy). An attack at a given eps flips the first ``k`` clean-correct samples
(samples 10, 11, ...) to ``(label + 1) % 4``; so adversarial accuracy is ``(190 − k) / 200``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

CLASSES = ["COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"]
N = 200
LABELS = np.arange(N) % 4
PRED_CLEAN = np.where(np.arange(N) < 10, (LABELS + 1) % 4, LABELS)
EPS_GRID = (0.1 / 255, 0.3 / 255, 1 / 255)
# Flips per eps: FGSM weaker than PGD, both growing with eps.
FGSM_FLIPS = {0.1 / 255: 40, 0.3 / 255: 80, 1 / 255: 150}
PGD_FLIPS = {0.1 / 255: 100, 0.3 / 255: 160, 1 / 255: 188}
PIXELS = 3 * 64 * 64  # C·H·W of the scene's images: the flip budget is 0.1 % of it, 12 pixels

MANIFEST: dict[str, Any] = {
    "classes": CLASSES,
    "preset": "hand",
    "config": {"eps": ["0.1/255", "0.3/255", "1/255"], "steps": 10},
    "config_hash": "abc123",
    "versions": {"torch": "2.x", "art": "1.20.1"},
    "hardware": {"cpu": "2 cores"},
    "seeds": [0, 1],
    "checkpoint": {"path": "model/model.safetensors", "sha256": "f" * 64, "card": {}},
    "created_at": "2025-01-01T00:00:00",
    "command": "python -m advparity run --preset hand --out RUN",
}


def flipped_preds(k: int, start: int = 10) -> np.ndarray:
    """Clean predictions with the first ``k`` clean-correct samples from ``start`` on flipped to the next class."""
    pred = PRED_CLEAN.copy()
    idx = np.arange(start, start + k)
    pred[idx] = (LABELS[idx] + 1) % 4
    return pred


def cell(
    library: str,
    attack: str,
    eps: float,
    pred_adv: Sequence[int] | np.ndarray,
    *,
    steps: int | None = None,
    random_start: bool = False,
    seed: int = 0,
    linf_to_ref: float | Sequence[float] | np.ndarray = 0.0,
    in_bounds: bool | Sequence[bool] | np.ndarray = True,
    error: str | Sequence[str] = "",
    pred_adv_8bit: Sequence[int] | np.ndarray | None = None,
    zero_grad: int | Sequence[int] | np.ndarray = 0,
    conf_adv: float = 0.8,
    seconds: float = 2.0,
    expectation: str = "exact",
    pixels_differ: int | Sequence[int] | np.ndarray = 0,
    pixels_differ_near_zero: int | Sequence[int] | np.ndarray | None = None,
    passes: tuple[float, float] | None = None,
    state_changes: str = "",
) -> pd.DataFrame:
    """One cell: one row per sample, every contract column set explicitly.

    By default the library's x_adv equals the expected one on every sample (``pixels_differ`` 0 of
    ``PIXELS``), and it spends the passes its adapter declares (``passes`` overrides what it spent).
    """
    pred_adv = np.asarray(pred_adv)
    steps = 1 if attack == "fgsm" else (10 if steps is None else steps)
    declared = 1.0 if attack == "fgsm" else float(steps)
    spent = (declared, declared) if passes is None else passes
    differ = np.broadcast_to(np.asarray(pixels_differ), (N,))
    near_zero = (
        differ
        if pixels_differ_near_zero is None
        else np.broadcast_to(np.asarray(pixels_differ_near_zero), (N,))
    )
    return pd.DataFrame(
        {
            "library": library,
            "attack": attack,
            "eps": eps,
            "steps": steps,
            "alpha": eps if attack == "fgsm" else eps / 4,
            "random_start": random_start,
            "seed": seed,
            "sample": np.arange(N),
            "label": LABELS,
            "pred_clean": PRED_CLEAN,
            "pred_adv": pred_adv,
            "conf_clean": 0.9,
            "conf_adv": conf_adv,
            "linf": eps,
            "linf_to_ref": np.broadcast_to(np.asarray(linf_to_ref, dtype=float), (N,)),
            "in_bounds": np.broadcast_to(np.asarray(in_bounds, dtype=bool), (N,)),
            "pred_adv_8bit": PRED_CLEAN if pred_adv_8bit is None else np.asarray(pred_adv_8bit),
            "linf_8bit": 0.0,
            "zero_grad": np.broadcast_to(np.asarray(zero_grad), (N,)),
            "forward_passes": spent[0],
            "backward_passes": spent[1],
            "seconds": seconds,
            "error": np.broadcast_to(np.asarray(error, dtype=object), (N,)),
            "expectation": expectation,
            "pixels_differ": differ,
            "pixels_differ_near_zero": near_zero,
            "pixels_total": PIXELS,
            "forward_passes_expected": declared,
            "backward_passes_expected": declared,
            "state_changes": state_changes,
        }
    )


def clean_frame() -> pd.DataFrame:
    """``clean.parquet`` for the standard scene."""
    return pd.DataFrame(
        {
            "sample": np.arange(N),
            "label": LABELS,
            "pred_clean": PRED_CLEAN,
            "conf_clean": 0.9,
            "image": [f"img/{i}.png" for i in range(N)],
            "class_name": [CLASSES[i] for i in LABELS],
        }
    )


def agreeing_run(libraries: Sequence[str] = ("reference", "art", "torchattacks", "foolbox")) -> pd.DataFrame:
    """FGSM and random-start PGD (seeds 0 and 1) on the whole grid, every library identical to the reference.

    The reference's PGD seed 1 flips two more samples than seed 0 (a 1 pp seed-to-seed spread).
    """
    parts = []
    for library in libraries:
        for eps in EPS_GRID:
            parts.append(cell(library, "fgsm", eps, flipped_preds(FGSM_FLIPS[eps])))
            for seed in (0, 1):
                k = PGD_FLIPS[eps] + (2 if seed == 1 and PGD_FLIPS[eps] <= 188 else 0)
                parts.append(cell(library, "pgd", eps, flipped_preds(k), random_start=True, seed=seed))
    return pd.concat(parts, ignore_index=True)


def replace_cell(results: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the cell of the same library/attack/eps/steps/random_start/seed swapped for ``new``."""
    key = new.iloc[0]
    same = (
        (results["library"] == key["library"])
        & (results["attack"] == key["attack"])
        & (results["eps"] == key["eps"])
        & (results["steps"] == key["steps"])
        & (results["random_start"] == key["random_start"])
        & (results["seed"] == key["seed"])
    )
    return pd.concat([results[~same], new], ignore_index=True)
