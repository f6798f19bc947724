"""Tiny networks with a hand-computable Grad-CAM, and the hand computation itself.

For a head ``score_c = W[c] · mean_ij(ReLU(A))_k + b_c`` (global average pooling, then a linear
layer) the gradient of the score with respect to the activation is known in closed form:
``d score_c / d A_ij^k = W[c, k] / Z · 1[A_ij^k > 0]`` when the ReLU comes after ``A`` (Z = H·W),
and ``W[c, k] / Z`` when ``A`` is already the ReLU's output. The hand Grad-CAM is then
``ReLU(Σ_k mean_ij(grad) A^k)`` — no autograd involved, so it checks the package independently.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class GapNet(nn.Module):
    """conv → ReLU (the target) → global average pool → linear."""

    def __init__(self, stride: int = 1, channels: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, stride=stride, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


class InplaceReluNet(nn.Module):
    """conv → BatchNorm (the target) → in-place ReLU → pool → linear: torchvision's DenseNet ending."""

    def __init__(self, channels: int = 5, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.bn(self.conv(x))
        out = F.relu(features, inplace=True)  # as in torchvision's DenseNet.forward
        return self.fc(out.mean(dim=(2, 3)))


def normalise(cam: np.ndarray) -> np.ndarray:
    """The package's per-map scaling (utils/image.py::scale_cam_image): subtract the min, divide by max + 1e-7."""
    cam = cam - cam.min()
    return cam / (1e-7 + cam.max())


def hand_cam(
    activation: np.ndarray, weight_row: np.ndarray, relu_after: bool, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Grad-CAM of one image by hand: ``activation`` [K, h, w], ``weight_row`` W[c] [K].

    Then the package's post-processing in its order: normalise, resize to ``size`` (OpenCV bilinear,
    ``dsize=(width, height)``), normalise again (its multi-layer aggregation step).
    """
    a = activation.astype(np.float64)
    z = a.shape[1] * a.shape[2]
    grad = weight_row[:, None, None] / z * np.ones_like(a)
    if relu_after:
        grad = grad * (a > 0)
    alpha = grad.mean(axis=(1, 2))
    cam = np.maximum((alpha[:, None, None] * a).sum(axis=0), 0.0)
    cam = normalise(cam)
    if size is not None:
        cam = cv2.resize(np.float32(cam), (size[1], size[0]))
    return normalise(cam)
