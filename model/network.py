"""DenseNet-121 for chest X-rays — or any torchvision classifier, or a user's factory — with
ImageNet normalisation as its first layer.

Every attack library sees the model through the same door: float pixels in [0, 1]. Keeping the
mean/std normalisation *inside* the model is what makes ART, torchattacks and Foolbox comparable —
none of them needs (or may use) its own normalisation switch, and eps is always in pixel units.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import DenseNet121_Weights, densenet121

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's original DenseNet checkpoints name layers "norm.1" where the modules are now
# "norm1"; torchvision remaps them in a private helper (models/densenet.py::_load_state_dict).
# We repeat its documented pattern rather than import a private function.
_LEGACY_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``; the buffers travel with the checkpoint."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"expected mean and std of equal length, got {len(mean)} and {len(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CXRClassifier(nn.Module):
    """``[N, 3, H, W]`` pixels in [0, 1] → class logits ``[N, num_classes]``.

    ``backbone`` is torchvision's DenseNet-121 unchanged except for its classifier, so Grad-CAM can
    target ``backbone.features`` (the last dense block ends in ``features.norm5``).
    """

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.backbone = backbone
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Shape errors surface here with a readable message instead of deep inside a conv layer.
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected input of shape [N, 3, H, W], got {list(x.shape)}")
        return self.backbone(self.normalize(x))


def build_densenet121(num_classes: int = 4, weights: str | Path | None = None) -> CXRClassifier:
    """DenseNet-121 with a ``num_classes``-way linear head, normalisation inside.

    ``weights``: ``None`` (random init, what tests use), ``"imagenet"`` (torchvision's
    IMAGENET1K_V1, downloaded by torchvision on a machine that can reach it) or a path to a local
    file holding the ImageNet backbone (``.safetensors``; a ``.pth`` as torchvision ships it is
    read with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects).
    The classifier head is always freshly initialised for ``num_classes``.
    """
    if num_classes < 2:
        raise ValueError(f"expected num_classes >= 2, got {num_classes}")
    if weights is None:
        backbone = densenet121(weights=None)
    elif isinstance(weights, str) and weights.lower() == "imagenet":
        backbone = _download(lambda: densenet121(weights=DenseNet121_Weights.IMAGENET1K_V1), "densenet121")
    else:
        backbone = densenet121(weights=None)
        _load_backbone(backbone, Path(weights))
    backbone.classifier = nn.Linear(backbone.classifier.in_features, num_classes)
    return CXRClassifier(backbone, num_classes)


def _download(build: Callable[[], nn.Module], name: str) -> nn.Module:
    """``build()``, which downloads torchvision's ImageNet weights on first use; offline that is bad input."""
    try:
        return build()
    except OSError as err:  # urllib's URLError and socket errors are OSErrors
        raise ValueError(
            f"weights 'imagenet': cannot download torchvision's ImageNet weights for {name} ({err}); "
            "without network, fetch the file elsewhere and pass its path: --weights PATH"
        ) from err


def _load_backbone(backbone: nn.Module, path: Path) -> None:
    state = _read_backbone_file(path)
    try:
        backbone.load_state_dict(state)
    except RuntimeError as err:
        detail = str(err).splitlines()[0]
        raise ValueError(
            f"weights {str(path)!r}: not the ImageNet backbone this model needs ({detail})"
        ) from err


def _read_backbone_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(
            f"weights: expected None, 'imagenet' or an existing file, got {str(path)!r} (no such file)"
        )
    if path.suffix not in {".safetensors", ".pth", ".pt"}:
        raise ValueError(f"weights: expected a .safetensors or .pth file, got {path.name!r}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - safetensors and pickle raise their own types for a damaged file
        raise ValueError(f"weights {str(path)!r}: cannot be read ({type(err).__name__}: {err})") from err
    if not isinstance(state, Mapping):
        raise ValueError(f"weights {str(path)!r}: expected a state dict, got {type(state).__name__}")
    return _remap_legacy_keys(state)


def _remap_legacy_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    remapped = {}
    for key, value in state.items():
        match = _LEGACY_DENSENET_KEY.match(key)
        remapped[match.group(1) + match.group(2) if match else key] = value
    return remapped


DEFAULT_MODEL = "densenet121"
TORCHVISION_PREFIX = "torchvision:"


def build_model(spec: str, num_classes: int, weights: str | Path | None = None) -> nn.Module:
    """The model a preset or ``train --model`` names, with a ``num_classes``-way head, on [0, 1] pixels.

    ``spec`` is one of:

    * ``densenet121`` (the default, :func:`build_densenet121`) or ``torchvision:densenet121``;
    * ``torchvision:NAME`` — any classifier in ``torchvision.models.list_models()``: its last linear
      layer is replaced by a ``num_classes``-way one and ImageNet normalisation goes in front
      (:class:`CXRClassifier`). ``weights``: None, ``"imagenet"`` (torchvision's default weights) or a
      local file with the ImageNet-format state dict;
    * ``package.module:factory`` — a callable taking the class count and returning an ``nn.Module``
      that maps [0, 1] images to logits with its normalisation inside; ``weights`` must be None.

    A checkpoint's card records ``spec``, so :func:`model.checkpoint.load_checkpoint` rebuilds it.
    """
    if num_classes < 2:
        raise ValueError(f"expected num_classes >= 2, got {num_classes}")
    if spec in (DEFAULT_MODEL, f"{TORCHVISION_PREFIX}{DEFAULT_MODEL}"):
        return build_densenet121(num_classes, weights)
    if spec.startswith(TORCHVISION_PREFIX):
        return _torchvision_model(spec[len(TORCHVISION_PREFIX) :], num_classes, weights)
    if ":" in spec:
        if weights is not None:
            raise ValueError(
                f"model {spec!r}: a factory builds its own weights; expected weights none, got {weights!r}"
            )
        return _factory_model(spec, num_classes)
    raise ValueError(
        f"model {spec!r}: expected 'densenet121', 'torchvision:NAME' or 'package.module:factory'"
    )


def _torchvision_model(name: str, num_classes: int, weights: str | Path | None) -> CXRClassifier:
    classifiers = set(torchvision.models.list_models(module=torchvision.models))
    if name not in classifiers:
        raise ValueError(
            f"model 'torchvision:{name}': not an image classifier in torchvision.models.list_models() "
            f"(e.g. {sorted(classifiers)[:6]} …)"
        )
    imagenet = isinstance(weights, str) and weights.lower() == "imagenet"
    if imagenet:
        backbone = _download(lambda: torchvision.models.get_model(name, weights="DEFAULT"), name)
    else:
        backbone = torchvision.models.get_model(name, weights=None)
    if weights is not None and not imagenet:
        _load_backbone(backbone, Path(weights))
    _replace_head(backbone, name, num_classes)
    return CXRClassifier(backbone, num_classes)


def _replace_head(backbone: nn.Module, name: str, num_classes: int) -> None:
    """Swap the last linear layer (ResNet's ``fc``, VGG's ``classifier[-1]``, ViT's ``heads.head``) for a new head."""
    linears = [(path, m) for path, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"model 'torchvision:{name}': no linear classifier layer to resize")
    path, last = linears[-1]
    parent_path, _, attr = path.rpartition(".")
    parent = backbone.get_submodule(parent_path) if parent_path else backbone
    setattr(parent, attr, nn.Linear(last.in_features, num_classes))


def _factory_model(spec: str, num_classes: int) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        factory: Callable[[int], object] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model {spec!r}: cannot import the factory ({type(err).__name__}: {err})") from err
    if not callable(factory):
        raise ValueError(
            f"model {spec!r}: expected a callable factory(num_classes), got {type(factory).__name__}"
        )
    try:
        model = factory(num_classes)
    except TypeError as err:
        # The usual cause: a factory with another signature; the message shows the call that failed.
        raise ValueError(
            f"model {spec!r}: calling factory({num_classes}) failed ({err}); expected factory(num_classes) -> nn.Module"
        ) from err
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model {spec!r}: expected the factory to return an nn.Module, got {type(model).__name__}"
        )
    return model
