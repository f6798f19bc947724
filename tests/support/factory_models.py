"""A user's own model factory, importable as ``factory_models:small_cnn`` while the tests run."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """[N, 3, H, W] pixels in [0, 1] → logits; its normalisation (x - 0.5) / 0.25 is inside, as required."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.25).mean(dim=(2, 3)))


def small_cnn(num_classes: int) -> nn.Module:
    return SmallCNN(num_classes)


def not_a_model(num_classes: int) -> object:
    return "a string"


class SuiteCNN(nn.Module):
    """A CNN the smoke preset's 128 training images can teach more than the majority class (the mutation
    suite's model): an attack that returns x wherever it fails to fool (APGD) shows its trajectory only on
    a model it can fool."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.25).amax(dim=(2, 3)))


def suite_cnn(num_classes: int) -> nn.Module:
    return SuiteCNN(num_classes)
