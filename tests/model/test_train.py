"""Training: the recipe's knobs, early stopping, determinism, and that it actually learns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import advparity.model.train as train_module
import pandas as pd
import pytest
import torch
from advparity.model.data import CXRDataset, make_split, scan_dataset
from advparity.model.network import build_densenet121
from advparity.model.train import TrainConfig, evaluate, fit, save_history, seed_everything, train_on_split
from advparity.reports.figures import plot_history
from torch.utils.data import DataLoader

TINY = TrainConfig(
    image_size=32, weights=None, lr=1e-3, lr_schedule="cosine", batch_size=16, max_epochs=1, seed=0
)


@pytest.fixture(scope="module")
def split(synthetic_root: Path) -> pd.DataFrame:
    return make_split(scan_dataset(synthetic_root), seed=42)


def test_same_seed_same_weights_bit_for_bit(split: pd.DataFrame, synthetic_root: Path) -> None:
    first = train_on_split(split, synthetic_root, TINY, progress=False)
    second = train_on_split(split, synthetic_root, TINY, progress=False)
    for (name, a), (_, b) in zip(
        first.model.state_dict().items(), second.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(
        first.history.drop(columns="seconds"), second.history.drop(columns="seconds")
    )
    other = train_on_split(split, synthetic_root, replace(TINY, seed=1), progress=False)
    weight = "backbone.classifier.weight"
    assert not torch.equal(first.model.state_dict()[weight], other.model.state_dict()[weight])
    assert first.metrics["test_n"] == 16 and 0.0 <= first.metrics["test_acc"] <= 1.0


def test_a_short_run_lowers_the_validation_loss(split: pd.DataFrame, synthetic_root: Path) -> None:
    config = replace(TINY, max_epochs=4, lr=2e-3)
    val_set = CXRDataset(split, synthetic_root, 32, "val")
    seed_everything(config.seed)
    untrained = build_densenet121(num_classes=4)  # the exact initialisation train_on_split starts from
    initial_loss, _ = evaluate(untrained, DataLoader(val_set, batch_size=64), torch.device("cpu"))
    result = train_on_split(split, synthetic_root, config, progress=False)
    assert result.metrics["val_loss"] < initial_loss
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    assert not result.model.training  # handed back ready for attacks


def test_early_stopping_restores_the_best_weights(
    split: pd.DataFrame, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Script the validation losses so the stopping rule is checked exactly: best at epoch 2,
    # then three epochs without improvement with patience 3 -> stop after epoch 5.
    scripted = iter([1.0, 0.5, 0.7, 0.6, 0.55, 0.1])
    monkeypatch.setattr(train_module, "evaluate", lambda *a, **k: (next(scripted), 0.0))
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    net = build_densenet121(num_classes=4)

    def remember(stats: train_module.EpochStats) -> None:
        snapshots[stats.epoch] = {k: v.clone() for k, v in net.state_dict().items()}

    config = replace(TINY, max_epochs=10, patience=3, augment=False)
    train_set = CXRDataset(split, synthetic_root, 32, "train")
    val_set = CXRDataset(split, synthetic_root, 32, "val")
    result = fit(net, train_set, val_set, config, progress=False, on_epoch=remember)
    assert list(result.history["epoch"]) == [1, 2, 3, 4, 5]
    assert result.best_epoch == 2 and result.stopped_early
    for name, value in result.model.state_dict().items():
        assert torch.equal(value, snapshots[2][name]), name
    assert not torch.equal(
        result.model.state_dict()["backbone.classifier.weight"], snapshots[5]["backbone.classifier.weight"]
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", 0.0, "lr > 0"),
        ("lr_schedule", "step", "lr_schedule in"),
        ("batch_size", 0, "batch_size >= 1"),
        ("max_epochs", 0, "max_epochs >= 1"),
        ("patience", 0, "patience >= 1"),
        ("image_size", 8, "image_size >= 16"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(TINY, **{field: value})


def test_paper_recipe_is_the_default() -> None:
    paper = TrainConfig()
    assert (paper.lr, paper.batch_size, paper.max_epochs, paper.patience) == (1e-4, 32, 50, 5)
    assert (paper.image_size, paper.weights, paper.lr_schedule) == (224, "imagenet", "constant")
    assert paper.augment and paper.rotation_degrees == 10.0


def test_history_files(tmp_path: Path) -> None:
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [1.0, 0.5],
            "train_acc": [0.5, 0.8],
            "val_loss": [0.9, 0.6],
            "val_acc": [0.6, 0.7],
            "lr": [1e-3, 5e-4],
            "seconds": [1.0, 1.0],
        }
    )
    csv_path = save_history(history, tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), history)
    png_path = plot_history(history, tmp_path / "training_curves.png")
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
