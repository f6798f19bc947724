"""Checkpoints: ``<name>.safetensors`` weights plus a ``<name>.json`` card that says what they are.

Loading never unpickles. A pickle-based ``.pt`` / ``.pth`` file can execute code when loaded, so it
is refused unless the caller passes ``trust=True`` (``--trust`` on the command line) for a file
they created themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from advparity.model.jsonfile import JSONFileError, read_json_object
from advparity.model.layouts import CLASSES
from advparity.model.network import DEFAULT_MODEL, CXRClassifier, build_model
from safetensors.torch import load_file, save_file

CARD_VERSION = 1
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".bin"})


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message says why and what to do."""


def card_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that decide what a checkpoint or a run computed."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for dist in ("advparity", "torch", "torchvision", "numpy", "safetensors"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def save_checkpoint(model: torch.nn.Module, card: Mapping[str, Any], path: str | Path) -> Path:
    """Write the weights (atomically) and the card, with the weights' sha256 recorded in the card."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"expected a .safetensors path, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": "advparity", "card_version": str(CARD_VERSION)})
    full_card = {
        "card_version": CARD_VERSION,
        "architecture": "densenet121",
        **card,
        "weights_file": path.name,
        "weights_sha256": sha256_file(tmp),
    }
    full_card.setdefault("classes", list(CLASSES))
    full_card.setdefault("versions", library_versions())
    os.replace(tmp, path)
    card_tmp = card_path(path).with_name(card_path(path).name + ".tmp")
    card_tmp.write_text(json.dumps(full_card, indent=2, default=str))
    os.replace(card_tmp, card_path(path))
    return path


def load_card(path: str | Path) -> dict[str, Any]:
    """The card of the checkpoint ``path`` (the weights file); a :class:`CheckpointError` naming what is wrong."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    card_file = card_path(path)
    if not card_file.is_file():
        raise CheckpointError(f"checkpoint card {str(card_file)!r} is missing; it says what the weights are")
    try:
        card = read_json_object(card_file, "checkpoint card")
    except JSONFileError as err:
        raise CheckpointError(str(err)) from err
    classes = card.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
        raise CheckpointError(
            f"checkpoint card {str(card_file)!r}: expected 'classes', a list of at least 2 class names, "
            f"got {classes!r}"
        )
    return card


def model_spec(card: Mapping[str, Any]) -> str:
    """The architecture a card names (``recipe.model``, see model/network.py::build_model); cards
    written before models other than DenseNet-121 existed name none and mean it."""
    recipe = card.get("recipe")
    spec = recipe.get("model") if isinstance(recipe, Mapping) else None
    return str(spec) if spec else DEFAULT_MODEL


def load_checkpoint(
    path: str | Path, *, trust: bool = False, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from a checkpoint; returns ``(model in eval mode, card)``.

    ``.safetensors`` files are read without unpickling and checked against the sha256 in their
    card. Pickle files (``.pt``, ``.pth``, ...) load only with ``trust=True``; their card is
    optional (defaults: the four data-set classes).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        card = load_card(path)
        found = sha256_file(path)
        if card.get("weights_sha256") not in (None, found):
            raise CheckpointError(
                f"{str(path)!r} does not match its card: sha256 {found[:12]}…, card says "
                f"{str(card['weights_sha256'])[:12]}…; the weights were changed or the card belongs to another file"
            )
        state: Mapping[str, torch.Tensor] = _read_file(path, load_file, str(path))
    elif path.suffix in PICKLE_SUFFIXES:
        if not trust:
            raise CheckpointError(
                f"refusing to load {str(path)!r}: {path.suffix} files are Python pickles and can run code "
                "when loaded. If you created this file yourself, pass --trust (trust=True); better, "
                "convert it once to .safetensors"
            )
        card = load_card(path) if card_path(path).is_file() else {"classes": list(CLASSES)}
        if not card_path(path).is_file():
            warnings.warn(f"no card next to {path.name}; assuming classes {list(CLASSES)}", stacklevel=2)
        state = _state_dict_from_pickle(
            _read_file(path, torch.load, path, map_location="cpu", weights_only=False)
        )
    else:
        raise CheckpointError(f"expected a .safetensors (or, with --trust, .pt/.pth) file, got {path.name!r}")
    model = build_model(model_spec(card), num_classes=len(card["classes"]), weights=None)
    if isinstance(model, CXRClassifier) and any(key.startswith("features.denseblock") for key in state):
        # A bare torchvision DenseNet-121 trained elsewhere: it has no normalisation layer, so it
        # must have been trained on ImageNet-normalised inputs for the result to mean anything.
        warnings.warn(
            f"{path.name} holds a bare DenseNet-121; assuming it expects ImageNet-normalised input",
            stacklevel=2,
        )
        state = {
            **{f"normalize.{k}": v for k, v in model.normalize.state_dict().items()},
            **{f"backbone.{k}": v for k, v in state.items()},
        }
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        wanted_keys, given_keys = set(model.state_dict()), set(state)
        missing, unexpected = sorted(wanted_keys - given_keys), sorted(given_keys - wanted_keys)
        detail = (
            f"{len(missing)} tensor(s) missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
            if missing or unexpected
            else str(err).splitlines()[-1].strip()  # same names, other shapes
        )
        raise CheckpointError(
            f"{str(path)!r} does not hold the {model_spec(card)} model its card names: {detail}"
        ) from err
    model.to(device).eval()
    return model, card


def _read_file(path: Path, read: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``read(*args, **kwargs)``; a damaged file (safetensors and pickle raise their own types) is a CheckpointError."""
    try:
        return read(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - any failure to parse the file is the file's fault
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}): damaged or cut short"
        ) from err


def _state_dict_from_pickle(obj: object) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return inner
        return obj  # type: ignore[return-value]
    raise CheckpointError(f"expected a state dict or nn.Module in the pickle, got {type(obj).__name__}")
