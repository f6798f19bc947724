"""Training DenseNet-121 the paper's way: Adam, cross-entropy, early stopping on validation loss.

Every knob lives in `TrainConfig` (filled from a preset); the defaults are the paper's recipe.
Training is seeded and, on CPU, deterministic: the same seed, data and config give the same
weights bit for bit (tested).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from advparity.model.data import CXRDataset, training_augmentation
from advparity.model.network import build_model
from advparity.model.split import split_classes
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. Defaults are the paper's (§II.B): Adam 1e-4, batch 32, ≤ 50 epochs,
    early stopping with patience 5 on validation loss, best weights restored."""

    image_size: int = 224
    # "densenet121" (the paper's), "torchvision:NAME" or "package.module:factory" (model/network.py).
    model: str = "densenet121"
    weights: str | None = "imagenet"  # None (from scratch), "imagenet" or a local file
    lr: float = 1e-4
    lr_schedule: str = "constant"  # "cosine" decays to 0 over max_epochs
    batch_size: int = 32
    max_epochs: int = 50
    patience: int = 5
    seed: int = 0
    augment: bool = True  # random horizontal flip + rotation within ±rotation_degrees
    rotation_degrees: float = 10.0
    # channels_last is ~15 % faster for DenseNet on CPU (measured before the project started).
    channels_last: bool = True
    num_workers: int = 0  # data loading processes; 0 keeps CPU runs deterministic and simple

    def __post_init__(self) -> None:
        checks = [
            (self.image_size >= 16, f"expected image_size >= 16, got {self.image_size}"),
            (self.lr > 0, f"expected lr > 0, got {self.lr}"),
            (
                self.lr_schedule in LR_SCHEDULES,
                f"expected lr_schedule in {LR_SCHEDULES}, got {self.lr_schedule!r}",
            ),
            (self.batch_size >= 1, f"expected batch_size >= 1, got {self.batch_size}"),
            (self.max_epochs >= 1, f"expected max_epochs >= 1, got {self.max_epochs}"),
            (self.patience >= 1, f"expected patience >= 1, got {self.patience}"),
            (
                0 <= self.rotation_degrees <= 180,
                f"expected rotation_degrees in [0, 180], got {self.rotation_degrees}",
            ),
            (self.num_workers >= 0, f"expected num_workers >= 0, got {self.num_workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame  # one row per epoch (EpochStats fields)
    best_epoch: int
    stopped_early: bool
    metrics: dict[str, float] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def fit(
    model: nn.Module,
    train_set: CXRDataset,
    val_set: CXRDataset,
    config: TrainConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place; return it with the best-validation-loss weights restored."""
    device = torch.device(device)
    seed_everything(config.seed)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device)
    model.to(memory_format=memory_format)
    loader_rng = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        shuffle=True,
        generator=loader_rng,
        num_workers=config.num_workers,
        # BatchNorm cannot train on a batch of one image (it raises); a data set whose size leaves one
        # image over drops it from that epoch. Any other remainder trains as its own batch, as before.
        drop_last=len(train_set) % config.batch_size == 1,
    )
    val_loader = DataLoader(val_set, batch_size=max(config.batch_size, 64), num_workers=config.num_workers)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)
        if config.lr_schedule == "cosine"
        else None
    )
    criterion = nn.CrossEntropyLoss()

    history: list[EpochStats] = []
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    epochs_without_gain = 0
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{config.max_epochs}", leave=False, disable=not progress)
        for x, y in bar:
            x = x.to(device, memory_format=memory_format)
            y = y.to(device)
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = criterion(logits, y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        if scheduler is not None:
            scheduler.step()
        val_loss, val_acc = evaluate(model, val_loader, device, memory_format)
        stats = EpochStats(
            epoch, loss_sum / seen, correct / seen, val_loss, val_acc, lr, time.perf_counter() - started
        )
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
            epochs_without_gain = 0
        else:
            epochs_without_gain += 1
            if epochs_without_gain >= config.patience:
                break
    stopped_early = len(history) < config.max_epochs
    model.load_state_dict(best_state)
    model.eval()
    # Back to the default layout: attacks and checkpoints should not depend on how we trained.
    model.to(memory_format=torch.contiguous_format)
    frame = pd.DataFrame([asdict(s) for s in history])
    return TrainResult(model=model, history=frame, best_epoch=best_epoch, stopped_early=stopped_early)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) over ``loader``."""
    was_training = model.training
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        x = x.to(device, memory_format=memory_format)
        y = y.to(device)
        logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    model.train(was_training)
    return loss_sum / seen, correct / seen


def train_on_split(
    split: pd.DataFrame,
    root: str | Path,
    config: TrainConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Build DenseNet-121, train on the split's train part, early-stop on val, score on test.

    The head has one output per class of the split (`split_classes`: label ``i`` is class ``i``).
    """
    augmentation = training_augmentation(config.rotation_degrees) if config.augment else None
    train_set = CXRDataset(split, root, config.image_size, "train", augmentation)
    val_set = CXRDataset(split, root, config.image_size, "val")
    test_set = CXRDataset(split, root, config.image_size, "test")
    for name, part in (("train", train_set), ("val", val_set), ("test", test_set)):
        if len(part) == 0:
            raise ValueError(f"the {name} split is empty; the data set is too small to split 80/10/10")
    seed_everything(config.seed)  # the head's initialisation depends on it too
    model = build_model(config.model, num_classes=len(split_classes(split)), weights=config.weights)
    result = fit(model, train_set, val_set, config, device, progress, on_epoch)
    memory_format = torch.contiguous_format
    test_loader = DataLoader(test_set, batch_size=max(config.batch_size, 64))
    test_loss, test_acc = evaluate(result.model, test_loader, torch.device(device), memory_format)
    best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
    result.metrics = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "val_loss": float(best["val_loss"]),
        "val_acc": float(best["val_acc"]),
        "test_loss": test_loss,
        "test_acc": test_acc,
        "test_n": len(test_set),
        "train_seconds": float(result.history["seconds"].sum()),
    }
    return result


def save_history(history: pd.DataFrame, out_dir: str | Path) -> Path:
    """``history.csv``: loss and accuracy per epoch, train vs val (``reports.figures.plot_history`` draws it)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "history.csv"
    history.to_csv(csv_path, index=False)
    return csv_path


__all__ = [
    "EpochStats",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "fit",
    "save_history",
    "seed_everything",
    "train_on_split",
]
