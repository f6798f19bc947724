"""Grad-CAM maps of a model's images, from the ``grad-cam`` package (``pytorch_grad_cam.GradCAM``; CAM is
not re-implemented here): one target layer, target = the class the model predicts for *that* image
(paper Eq. 10–11), upsampled to the image size; the model is left exactly as it was.

``harness/gradcam.py`` runs it on a run's clean and adversarial images; ``reports/gradcam.py`` measures
and shows the maps (the zero-map conventions are there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class CamMaps:
    """Grad-CAM maps ``[N, H, W]`` (float32, each min-max normalised to [0, 1] by the package) and the
    target layer's spatial size (how coarse the maps really are before upsampling)."""

    maps: np.ndarray
    feature_shape: tuple[int, int]


def target_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The layer Grad-CAM maps (name, module): ``name`` when given (``--cam-layer``); else DenseNet-121's
    last block output ``backbone.features.norm5`` for the paper's model; for any other model, its last
    ``nn.Conv2d`` — the last layer that still sees the image as a grid (for a ResNet, ``layer4``'s last
    convolution)."""
    if name is not None:
        modules = dict(model.named_modules())
        if name not in modules or not name:
            convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)][-3:]
            raise ValueError(f"--cam-layer {name!r}: no such module in {type(model).__name__} (e.g. {convs})")
        return name, modules[name]

    norm5 = getattr(getattr(getattr(model, "backbone", None), "features", None), "norm5", None)
    if isinstance(norm5, nn.Module):
        return "backbone.features.norm5", norm5
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"expected a convolutional model for Grad-CAM, got {type(model).__name__} without nn.Conv2d"
        )
    return convs[-1]


def last_conv_block(model: nn.Module) -> nn.Module:
    """:func:`target_layer`'s module."""
    return target_layer(model)[1]


def _copy_before_inplace(tensor: torch.Tensor) -> torch.Tensor:
    # torchvision's DenseNet applies F.relu(features, inplace=True) right after norm5. The package
    # stores `output.cpu().detach()`, which on CPU shares storage with the output, so the in-place
    # ReLU would overwrite the stored activations (post-ReLU on CPU, pre-ReLU on CUDA, where .cpu()
    # copies), while the gradient hook, registered before the in-place op, receives d(score)/d(pre-ReLU).
    # Copying here makes activations and gradients both belong to norm5's output, on every device.
    return tensor.clone()


@dataclass(frozen=True)
class _ModelState:
    training: dict[str, bool]
    requires_grad: dict[str, bool]
    grads: dict[str, torch.Tensor | None]


def _snapshot(model: nn.Module) -> _ModelState:
    return _ModelState(
        training={name: m.training for name, m in model.named_modules()},
        requires_grad={name: p.requires_grad for name, p in model.named_parameters()},
        grads={name: p.grad for name, p in model.named_parameters()},
    )


def _restore(model: nn.Module, state: _ModelState) -> None:
    # Per module, not model.train(mode): a user may keep BatchNorm frozen inside a model in train mode.
    for name, module in model.named_modules():
        module.training = state.training[name]
    for name, param in model.named_parameters():
        param.requires_grad_(state.requires_grad[name])
        param.grad = state.grads[name]


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target_layer: nn.Module,
    classes: Sequence[int] | np.ndarray | torch.Tensor,
    batch_size: int = 16,
) -> CamMaps:
    """Grad-CAM of ``x`` (``[N, C, H, W]``) for class ``classes[i]`` of image i, on ``target_layer``.

    Pass each image's *predicted* class (paper Eq. 10–11: the clean image's prediction for the clean
    map, the adversarial image's for the adversarial map). Maps come from ``pytorch_grad_cam.GradCAM``:
    weights = spatial mean of d(score)/d(activation), CAM = ReLU(Σ_k w_k A_k), then per image min-max
    normalised and bilinearly resized (OpenCV) to ``H × W``.

    The model is left as it was: every module's ``training`` flag (the package calls ``model.eval()``
    and never restores it), every parameter's ``requires_grad`` and ``.grad`` (the package calls
    ``model.zero_grad()``), and no hook stays registered. Parameters are frozen while the maps are
    computed and the input carries the gradient instead, so no weight gradient is computed at all.
    Works inside ``torch.no_grad()``.
    """
    # Imported here: the grad-cam package (with OpenCV) takes seconds to import.
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if x.ndim != 4:
        raise ValueError(f"expected x of shape [N, C, H, W], got {list(x.shape)}")
    if not torch.is_floating_point(x) or not bool(torch.isfinite(x).all()):
        raise ValueError("expected x to hold finite floating-point pixels")
    targets = [int(c) for c in (classes.tolist() if hasattr(classes, "tolist") else classes)]
    if len(targets) != len(x):
        raise ValueError(f"expected one class per image ({len(x)}), got {len(targets)}")
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if len(x) == 0:
        return CamMaps(np.zeros((0, *x.shape[-2:]), dtype=np.float32), (0, 0))
    state = _snapshot(model)
    maps: list[np.ndarray] = []
    feature_shape = (0, 0)
    try:
        for param in model.parameters():
            param.requires_grad_(False)
        with torch.enable_grad():
            cam = GradCAM(model=model, target_layers=[target_layer], reshape_transform=_copy_before_inplace)
            # Not `with GradCAM(...)`: the package's __exit__ swallows IndexError (it only prints it), so
            # a class index out of range would return fewer maps than images instead of failing.
            # try/finally releases the hooks just as well and lets the error through.
            try:
                for start in range(0, len(x), batch_size):
                    batch = x[start : start + batch_size].detach().clone().requires_grad_(True)
                    chosen = [ClassifierOutputTarget(c) for c in targets[start : start + batch_size]]
                    maps.append(cam(input_tensor=batch, targets=chosen))
                    activations = cam.activations_and_grads.activations
                    if activations:
                        feature_shape = (int(activations[0].shape[-2]), int(activations[0].shape[-1]))
            finally:
                cam.activations_and_grads.release()
                cam.outputs = None  # drops the retained autograd graph of the last batch
    finally:
        _restore(model, state)
    return CamMaps(np.concatenate(maps).astype(np.float32, copy=False), feature_shape)
