"""Images as tensors: an image as [0, 1], a lung mask as bool, the augmentation, `CXRDataset`.

Finding and scanning a data set is `model.layouts`; splitting it is `model.split`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

# The data layer is split into model.layouts (find, scan), model.split (split files) and this module
# (tensors); the names that moved are re-exported here for importers of advparity.model.data.
from advparity.model.layouts import (
    CLASSES,
    IMAGE_SUFFIXES,
    KAGGLE_FOLDER,
    MANIFEST_COLUMNS,
    SPLIT_ALIASES,
    SPLIT_COLUMNS,
    SPLITS,
    DataError,
    Layout,
    LayoutKind,
    ScanResult,
    detect_layout,
    find_dataset_root,
    read_manifest,
    scan_dataset,
)
from advparity.model.split import (
    VAL_CARVE_FRACTION,
    assign_splits,
    data_fingerprint,
    load_split,
    make_split,
    save_split,
    split_classes,
    split_matches,
    stratified_split,
)
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

__all__ = [
    # defined here
    "CXRDataset",
    "load_image",
    "load_mask",
    "training_augmentation",
    # re-exported from model.layouts
    "CLASSES",
    "IMAGE_SUFFIXES",
    "KAGGLE_FOLDER",
    "MANIFEST_COLUMNS",
    "SPLIT_ALIASES",
    "SPLIT_COLUMNS",
    "SPLITS",
    "DataError",
    "Layout",
    "LayoutKind",
    "ScanResult",
    "detect_layout",
    "find_dataset_root",
    "read_manifest",
    "scan_dataset",
    # re-exported from model.split
    "VAL_CARVE_FRACTION",
    "assign_splits",
    "data_fingerprint",
    "load_split",
    "make_split",
    "save_split",
    "split_classes",
    "split_matches",
    "stratified_split",
]


# Full white in the pixel values `_grey_pixels` returns, per bit depth: 8-bit, 16-bit, float.
_WHITE_8, _WHITE_16, _WHITE_FLOAT = 255.0, 65535.0, 1.0


def _grey_pixels(path: str | Path, size: int, resample: Image.Resampling) -> tuple[np.ndarray, float]:
    """The image at ``path`` as one grey ``[size, size]`` array, and the value of full white in it.

    Each mode on purpose, so that no bit depth is lost: "L" stays uint8 and is resized on uint8 (the
    8-bit path as it has always been, bit for bit); 16-bit grey ("I;16", "I;16B", "I;16L"; Pillow
    opens a 16-bit PNG as "I;16") and "I" (32-bit int, as some Pillow versions open a 16-bit PNG) with
    values in [0, 65535] are resized in float (mode "F"), white 65535; "F" (a float TIFF) must already
    be finite and in [0, 1]. A 32-bit or float image outside its range is a `DataError`, never clipped.
    """
    with Image.open(path) as img:
        mode = img.mode
        if mode.startswith("I;16"):
            grey, white = img.convert("F"), _WHITE_16
        elif mode in ("I", "F"):
            values = np.asarray(img)
            white = _WHITE_16 if mode == "I" else _WHITE_FLOAT
            if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= white):
                expected = "16-bit values 0..65535" if mode == "I" else "finite values in [0, 1]"
                raise DataError(  # a NaN shows as a nan bound
                    f"image {str(path)!r} is mode {mode!r} with values from {values.min()} to "
                    f"{values.max()}: expected {expected}"
                )
            grey = img.convert("F")
        else:
            # "L" as is; "1", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", ... through Pillow's own
            # conversion on purpose: alpha is dropped and colour becomes ITU-R 601-2 luma
            # (L = 0.299 R + 0.587 G + 0.114 B), 8-bit. (Pillow reads a 16-bit colour PNG as 8-bit RGB.)
            grey, white = img.convert("L"), _WHITE_8
        if grey.size != (size, size):
            grey = grey.resize((size, size), resample)
        return np.asarray(grey).copy(), white


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """A grey image as float ``[3, size, size]`` in [0, 1] (grey replicated to three channels).

    8-bit images are /255, 16-bit ones /65535 (full bit depth kept), float ones as they are.
    """
    pixels, white = _grey_pixels(path, size, Image.Resampling.BILINEAR)
    # float32 division, as ever for 8-bit; the clip only catches float rounding of a float resize.
    grey = np.clip(pixels.astype(np.float32) / np.float32(white), 0.0, 1.0)
    return torch.from_numpy(grey).unsqueeze(0).expand(3, -1, -1).contiguous()


def load_mask(path: str | Path, size: int) -> torch.Tensor:
    """A lung mask as bool ``[size, size]``: above half of white (> 127 at 8 bit, > 32767 at 16 bit).

    The nearest-neighbour resize keeps the mask's values (and so it binary).
    """
    pixels, white = _grey_pixels(path, size, Image.Resampling.NEAREST)
    return torch.from_numpy(pixels > white / 2)


def training_augmentation(rotation_degrees: float = 10.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The paper's augmentation: random horizontal flip and a random rotation within ±degrees."""
    return v2.Compose([v2.RandomHorizontalFlip(p=0.5), v2.RandomRotation(degrees=rotation_degrees)])


class CXRDataset(Dataset[tuple[torch.Tensor, int]]):
    """One split of the data set: ``(x [3, size, size] in [0, 1], label)`` per item."""

    def __init__(
        self,
        split: pd.DataFrame,
        root: str | Path,
        size: int,
        part: str | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if part is not None and part not in SPLITS:
            raise ValueError(f"expected part in {list(SPLITS)}, got {part!r}")
        rows = split if part is None else split[split["split"] == part]
        self.root = Path(root)
        self.size = size
        self.images: list[str] = list(rows["image"])
        self.masks: list[str] = list(rows["mask"])
        self.labels: list[int] = [int(v) for v in rows["label"]]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = load_image(self.root / self.images[i], self.size)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[i]
