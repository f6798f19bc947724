"""The steps `python -m advparity demo` chains, each reusable on its own and each reusing finished work.

Layout of an output folder::

    OUT/data/               synthetic data set (only when the preset's data source is synthetic)
    OUT/model/split.csv     the split the model was trained on (stratified 80/10/10, or as the data gives it)
    OUT/model/model.safetensors + model.json (card)
    OUT/model/history.csv, training_curves.png
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from advparity.harness.config import Preset
from advparity.harness.environment import check_kernels, set_cpu_threads
from advparity.harness.runner import RunRequest, RunSummary, run
from advparity.model import checkpoint
from advparity.model.data import (
    DataError,
    data_fingerprint,
    detect_layout,
    find_dataset_root,
    load_split,
    make_split,
    save_split,
    scan_dataset,
    split_classes,
    split_matches,
)
from advparity.model.synthetic import SynthSpec, counts_for_total, write_dataset
from advparity.model.train import EpochStats, save_history, train_on_split
from advparity.reports.figures import plot_history

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "model.safetensors"
SPLIT_NAME = "split.csv"


@dataclass(frozen=True)
class TrainedModel:
    checkpoint: Path
    card: dict[str, Any]
    reused: bool


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def prepare_data(preset: Preset, out: Path, data: Path | None, progress: bool = True) -> Path:
    """The data root to train on: ``data`` if given, else a synthetic set generated into OUT/data.

    ``data`` may be any layout `model.data.detect_layout` knows. What is returned is the *source* the
    later steps read: a manifest ``.csv`` itself (its folder may hold other CSVs), else the folder the
    image paths are relative to; ``find_dataset_root(source)`` gives that folder in both cases.
    """
    if data is not None:
        return Path(data) if Path(data).is_file() else find_dataset_root(data)
    if preset.data.source != "synthetic":
        raise ValueError(
            f"preset {preset.name!r} reads a data folder: pass --data PATH (a COVID-19 Radiography "
            "folder, an image folder <class>/<image>, split folders train/ val/ test/, or a manifest .csv)"
        )
    spec = SynthSpec(
        counts=counts_for_total(preset.data.synthetic_total),
        size=preset.train.image_size,
        seed=preset.data.synthetic_seed,
    )
    return write_dataset(out / "data", spec, progress=progress)


def prepare_split(preset: Preset, source: Path, model_dir: Path, progress: bool = True) -> pd.DataFrame:
    """Reuse ``model_dir/split.csv`` if present (checked against ``root``), else scan and split.

    A data set that comes split keeps its split; what was made up (the no-``test/`` fallback) is
    logged and kept in ``split.attrs["split_note"]``.
    """
    root = find_dataset_root(source)
    split_path = model_dir / SPLIT_NAME
    if split_path.is_file():
        split = load_split(split_path, root)
        # The assignment is a pure function of the listing, the given split and the seed, so
        # recomputing it tells whether the saved split was made from this data with this seed.
        if not split_matches(split, source, preset.data.split_seed):
            raise DataError(
                f"{str(split_path)!r} was not made with split_seed={preset.data.split_seed} from the data "
                f"in {str(root)!r}; use a new --out folder or delete it to split again"
            )
        log.info("reusing split %s (%d images)", split_path, len(split))
        return split
    scan = scan_dataset(source, skip_corrupt=preset.data.skip_corrupt, progress=progress)
    if scan.skipped:
        log.warning("left out %d corrupt image(s); they are listed in %s", len(scan.skipped), model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "skipped.txt").write_text("\n".join(scan.skipped) + "\n")
    split = make_split(scan, preset.data.split_seed)
    log.info(
        "%s data in %s, classes %s: %s",
        scan.layout.value,
        root,
        list(scan.classes),
        split.attrs["split_note"],
    )
    save_split(split, split_path)
    return split


def train_model(
    preset: Preset,
    source: Path,
    model_dir: Path,
    device: torch.device,
    progress: bool = True,
    weights: str | None = None,
) -> TrainedModel:
    """Train per the preset (or reuse a checkpoint trained on the same data with the same recipe)."""
    config = preset.train if weights is None else _with_weights(preset, weights)
    root = find_dataset_root(source)  # what the split's image paths are relative to
    split = prepare_split(preset, source, model_dir, progress)
    fingerprint = data_fingerprint(split, root)
    recipe = asdict(config)
    weights_path = model_dir / CHECKPOINT_NAME
    if weights_path.is_file():
        card = checkpoint.load_card(weights_path)
        if card.get("recipe") == recipe and card.get("data", {}).get("fingerprint") == fingerprint:
            log.info("reusing %s: same recipe and data", weights_path)
            return TrainedModel(weights_path, card, reused=True)
        raise DataError(
            f"{str(weights_path)!r} was trained with another recipe or on other data; "
            "use a new --out folder or delete it to retrain"
        )

    def report(stats: EpochStats) -> None:
        log.info(
            "epoch %d: train loss %.3f acc %.1f%% | val loss %.3f acc %.1f%% | %.0f s",
            stats.epoch,
            stats.train_loss,
            100 * stats.train_acc,
            stats.val_loss,
            100 * stats.val_acc,
            stats.seconds,
        )

    set_cpu_threads(device, preset.cpu_threads)
    check_kernels(preset.cpu_isa, device)
    result = train_on_split(split, root, config, device=device, progress=progress, on_epoch=report)
    save_history(result.history, model_dir)
    plot_history(result.history, model_dir / "training_curves.png")
    counts = split.groupby(["split", "class_name"]).size().unstack(fill_value=0)
    card = {
        "classes": list(split_classes(split)),
        "image_size": config.image_size,
        "data": {
            "root": str(root),
            "source": str(source),
            "layout": detect_layout(source).kind.value,
            "split_note": split.attrs.get("split_note", ""),
            "fingerprint": fingerprint,
            "split_seed": preset.data.split_seed,
            "split_file": SPLIT_NAME,
            "split_sha256": checkpoint.sha256_file(model_dir / SPLIT_NAME),
            "counts": {part: {k: int(v) for k, v in row.items()} for part, row in counts.iterrows()},
        },
        "preset": preset.name,
        "recipe": recipe,
        "metrics": result.metrics,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    path = checkpoint.save_checkpoint(result.model, card, weights_path)
    return TrainedModel(path, checkpoint.load_card(path), reused=False)


def _with_weights(preset: Preset, weights: str) -> Any:
    from dataclasses import replace

    return replace(preset.train, weights=None if weights == "none" else weights)


def run_attacks(request: RunRequest, progress: bool = True) -> RunSummary:
    """Attack the checkpoint with every cell of the preset's grid (resuming finished cells)."""
    return run(request, progress=progress)


__all__ = ["RunRequest", "RunSummary", "TrainedModel", "find_dataset_root", "run_attacks"]
