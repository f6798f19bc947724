"""The data layer: scan a COVID-19 Radiography Database folder, split it, load images as [0, 1] tensors.

A data root holds ``<Class>/images/*.png`` and, optionally, ``<Class>/masks/*.png`` with the same
file names. The Kaggle download nests the class folders one level down, under
``COVID-19_Radiography_Dataset/``; either folder is accepted.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")
KAGGLE_FOLDER = "COVID-19_Radiography_Dataset"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_COLUMNS: tuple[str, ...] = ("image", "mask", "label", "class_name", "split")

# The Kaggle release ships 256x256 lung masks for its 299x299 images, so a mask may be a uniform
# rescale of its image; only a different aspect ratio means the mask belongs to another picture.
_ASPECT_TOLERANCE = 0.01


class DataError(ValueError):
    """The data on disk is not what the scan expects; the message names the file or folder."""


@dataclass(frozen=True)
class ScanResult:
    """What `scan_dataset` found: one row per usable image, plus what it skipped."""

    root: Path
    index: pd.DataFrame  # columns: image, mask ("" if none), label, class_name — paths relative to root
    skipped: tuple[str, ...]  # relative paths of corrupt images left out (only with skip_corrupt=True)

    def counts(self) -> dict[str, int]:
        return {name: int((self.index["class_name"] == name).sum()) for name in CLASSES}


def find_dataset_root(path: str | Path) -> Path:
    """The folder that directly holds the four class folders (descends into the Kaggle folder)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"data folder {str(path)!r} does not exist or is not a folder")
    if _has_all_classes(path):
        return path
    nested = path / KAGGLE_FOLDER
    if nested.is_dir() and _has_all_classes(nested):
        return nested
    found = sorted(p.name for p in path.iterdir() if p.is_dir())
    missing = [name for name in CLASSES if not (path / name).is_dir()]
    raise DataError(
        f"{str(path)!r} is not a COVID-19 Radiography Database folder: missing class folder(s) "
        f"{missing}; expected {list(CLASSES)}, found {found or 'no folders'}"
    )


def _has_all_classes(path: Path) -> bool:
    return all((path / name).is_dir() for name in CLASSES)


def scan_dataset(
    path: str | Path,
    *,
    skip_corrupt: bool = False,
    verify: bool = True,
    progress: bool = False,
) -> ScanResult:
    """Index every image under ``path`` and check it can be used.

    With ``verify`` each image and mask is opened and checked (PNG CRCs, a decodable header), so a
    broken file fails here with its name instead of half-way through training. A corrupt image is
    an error unless ``skip_corrupt``; then it is left out and listed in ``ScanResult.skipped``.
    A corrupt or mis-sized mask is always an error: the lung-attention analysis would be wrong.
    """
    root = find_dataset_root(path)
    rows: list[tuple[str, str, int, str]] = []
    for label, name in enumerate(CLASSES):
        image_dir = root / name / "images"
        if not image_dir.is_dir():
            raise DataError(f"class folder {str(root / name)!r} has no 'images' subfolder")
        images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(
                f"class {name!r} is empty: no {'/'.join(sorted(IMAGE_SUFFIXES))} files in {str(image_dir)!r}"
            )
        mask_dir = root / name / "masks"
        for image in images:
            mask = mask_dir / image.name
            rows.append(
                (
                    image.relative_to(root).as_posix(),
                    mask.relative_to(root).as_posix() if mask.is_file() else "",
                    label,
                    name,
                )
            )
    index = pd.DataFrame(rows, columns=["image", "mask", "label", "class_name"])
    skipped: list[str] = []
    if verify:
        keep = np.ones(len(index), dtype=bool)
        entries = zip(index["image"], index["mask"], strict=True)
        for i, (image, mask) in enumerate(tqdm(entries, total=len(index), desc="scan", disable=not progress)):
            image_size = _checked_size(root / image)
            if image_size is None:
                if not skip_corrupt:
                    raise DataError(
                        f"cannot read image {str(root / image)!r} (corrupt or not an image); "
                        "pass skip_corrupt=True (--skip-corrupt) to leave such files out"
                    )
                skipped.append(image)
                keep[i] = False
                continue
            if mask:
                _check_mask(root / mask, image_size)
        index = index[keep].reset_index(drop=True)
        if skipped:
            log.warning("skipped %d corrupt image(s), first: %s", len(skipped), skipped[0])
        for name in CLASSES:
            if not (index["class_name"] == name).any():
                raise DataError(f"class {name!r} has no readable images left after skipping corrupt files")
    return ScanResult(root=root, index=index, skipped=tuple(skipped))


def _checked_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a readable image, or None if the file cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.verify()  # checks structure and CRCs; the object is unusable afterwards
        with Image.open(path) as img:
            img.load()  # verify() does not decode pixel data; a truncated stream fails only here
            return img.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def _check_mask(mask: Path, image_size: tuple[int, int]) -> None:
    mask_size = _checked_size(mask)
    if mask_size is None:
        raise DataError(f"cannot read mask {str(mask)!r} (corrupt or not an image)")
    image_aspect = image_size[0] / image_size[1]
    mask_aspect = mask_size[0] / mask_size[1]
    if abs(image_aspect - mask_aspect) > _ASPECT_TOLERANCE * image_aspect:
        raise DataError(
            f"mask {str(mask)!r} is {mask_size[0]}x{mask_size[1]} but its image is "
            f"{image_size[0]}x{image_size[1]}: expected the same size (or a uniform rescale of it)"
        )


def stratified_split(
    labels: Sequence[int] | np.ndarray, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> np.ndarray:
    """Assign each sample to "train", "val" or "test", stratified by label.

    Two stratified cuts with scikit-learn: train vs the rest, then the rest into val and test. On
    the real data set (21,165 images) this gives the paper's 16,932 / 2,116 / 2,117.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"expected three positive split fractions summing to 1, got {fractions}")
    labels = np.asarray(labels)
    values, counts = np.unique(labels, return_counts=True)
    # Each held-out part needs at least one image of every class, or stratification is meaningless.
    minimum = math.ceil(1.0 / min(fractions[1], fractions[2]))
    if counts.min() < minimum:
        small = {int(v): int(c) for v, c in zip(values, counts, strict=True) if c < minimum}
        raise DataError(
            f"too few images to split {fractions} stratified: label(s) {small} have fewer than "
            f"{minimum} images (need at least {minimum} per class)"
        )
    positions = np.arange(len(labels))
    train, rest = train_test_split(
        positions, test_size=1.0 - fractions[0], stratify=labels, random_state=seed
    )
    val, test = train_test_split(
        rest,
        test_size=fractions[2] / (fractions[1] + fractions[2]),
        stratify=labels[rest],
        random_state=seed,
    )
    assignment = np.empty(len(labels), dtype=object)
    assignment[train], assignment[val], assignment[test] = "train", "val", "test"
    return assignment


def make_split(scan: ScanResult, seed: int) -> pd.DataFrame:
    """The scan's index with a ``split`` column, ready to save with `save_split`."""
    frame = scan.index.copy()
    frame["split"] = stratified_split(frame["label"].to_numpy(), seed)
    return frame[list(SPLIT_COLUMNS)]


def save_split(split: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    split[list(SPLIT_COLUMNS)].to_csv(tmp, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a split file
    return path


def load_split(path: str | Path, root: str | Path | None = None) -> pd.DataFrame:
    """Read a split CSV; with ``root``, also check every listed image exists there."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file {str(path)!r} does not exist")
    split = pd.read_csv(path, dtype={"image": str, "mask": str, "class_name": str, "split": str})
    missing_cols = [c for c in SPLIT_COLUMNS if c not in split.columns]
    if missing_cols:
        raise DataError(
            f"split file {str(path)!r} lacks column(s) {missing_cols}; expected {list(SPLIT_COLUMNS)}"
        )
    split["mask"] = split["mask"].fillna("")
    bad_split = sorted(set(split["split"]) - set(SPLITS))
    if bad_split:
        raise DataError(
            f"split file {str(path)!r} has unknown split name(s) {bad_split}; expected {list(SPLITS)}"
        )
    expected_names = split["label"].map(lambda i: CLASSES[i] if 0 <= i < len(CLASSES) else None)
    if (expected_names != split["class_name"]).any():
        row = int(np.argmax((expected_names != split["class_name"]).to_numpy()))
        raise DataError(
            f"split file {str(path)!r} row {row}: label {split['label'][row]} does not match "
            f"class {split['class_name'][row]!r}; expected labels as indices into {list(CLASSES)}"
        )
    if root is not None:
        root = find_dataset_root(root)
        absent = [p for p in split["image"] if not (root / p).is_file()]
        if absent:
            raise DataError(
                f"{len(absent)} image(s) listed in {str(path)!r} are not under {str(root)!r}, first: {absent[0]!r}"
            )
    return split[list(SPLIT_COLUMNS)]


def data_fingerprint(split: pd.DataFrame, root: str | Path) -> str:
    """sha256 over every image's path, label, split and bytes: equal fingerprints, equal data."""
    root = Path(root)
    digest = hashlib.sha256()
    for image, label, part in sorted(zip(split["image"], split["label"], split["split"], strict=True)):
        digest.update(f"{image}\0{label}\0{part}\0".encode())
        digest.update(hashlib.sha256((root / image).read_bytes()).digest())
    return digest.hexdigest()


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """A grey image as float ``[3, size, size]`` in [0, 1] (grey replicated to three channels)."""
    with Image.open(path) as img:
        grey = img.convert("L")
        if grey.size != (size, size):
            grey = grey.resize((size, size), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(grey, dtype=np.uint8).copy())
    return (pixels.to(torch.float32) / 255.0).unsqueeze(0).expand(3, -1, -1).contiguous()


def load_mask(path: str | Path, size: int) -> torch.Tensor:
    """A lung mask as bool ``[size, size]`` (nearest-neighbour resize keeps it binary)."""
    with Image.open(path) as img:
        grey = img.convert("L")
        if grey.size != (size, size):
            grey = grey.resize((size, size), Image.Resampling.NEAREST)
        return torch.from_numpy(np.asarray(grey) > 127)


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
