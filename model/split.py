"""The split: each scanned image's part (train/val/test), the split CSV that records it, its checks.

The split CSV records each image's class in its ``label``/``class_name`` columns (every class has
rows in every split), so `split_classes` reads the class list back. Which layouts come split, and
how a scan is made: `model.layouts`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from advparity.model.layouts import (
    KAGGLE_FOLDER,
    SPLIT_COLUMNS,
    SPLITS,
    DataError,
    ScanResult,
    _has_all_classes,
    scan_dataset,
)
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

# Share of train/ carved out as validation when a given split has no validation part.
VAL_CARVE_FRACTION = 0.1


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
    """The scan's index with a ``split`` column, ready to save with `save_split`.

    A data set that comes split (split folders, a manifest with a ``split`` column) keeps its split;
    a missing part is made up as `assign_splits` describes, and ``frame.attrs["split_note"]`` (also
    logged) says exactly what was done. Otherwise the split is a stratified 80/10/10.
    """
    frame = scan.index.copy()
    given = frame["given_split"].to_numpy() if "given_split" in frame.columns else None
    parts, note = assign_splits(frame["label"].to_numpy(), seed, given=given, classes=scan.classes)
    frame["split"] = parts
    frame = frame[list(SPLIT_COLUMNS)]
    frame.attrs["classes"] = scan.classes
    frame.attrs["split_note"] = note
    log.info("split of %s: %s", scan.root, note)
    return frame


def assign_splits(
    labels: Sequence[int] | np.ndarray,
    seed: int,
    given: Sequence[str] | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, str]:
    """Each sample's part ("train"/"val"/"test") and a sentence saying how it was decided.

    Without ``given``: `stratified_split` 80/10/10. With ``given`` (each "train", "val" or "test"):
    kept as is, except that with no "test" part the "val" part becomes the test split, and with no
    validation part left a stratified `VAL_CARVE_FRACTION` of "train" (``seed``) becomes validation.
    Every class must have images in every part.
    """
    labels = np.asarray(labels)
    names = list(classes) if classes is not None else [str(v) for v in range(int(labels.max()) + 1)]
    if given is None:
        parts = stratified_split(labels, seed)
        return parts, f"stratified 80/10/10 split of {len(labels)} images with split_seed={seed}"
    parts = np.asarray(given, dtype=object).copy()
    sizes = {p: int((parts == p).sum()) for p in SPLITS}
    notes: list[str] = []
    if sizes["test"] == 0:
        if sizes["val"] == 0:
            raise DataError("the given split has no val and no test part: expected at least one of them")
        parts[parts == "val"] = "test"
        notes.append(
            f"no test split given: the given val split ({sizes['val']} images) is used as the test split"
        )
        sizes["test"], sizes["val"] = sizes["val"], 0
    if sizes["val"] == 0:
        train = np.flatnonzero(parts == "train")
        _check_per_class(labels[train], VAL_CARVE_FRACTION, names, "train")
        _, carved = train_test_split(
            train, test_size=VAL_CARVE_FRACTION, stratify=labels[train], random_state=seed
        )
        parts[carved] = "val"
        notes.append(
            f"the validation split ({len(carved)} images) is carved out of the given train split "
            f"({len(train)} -> {len(train) - len(carved)} images), stratified, "
            f"{VAL_CARVE_FRACTION:.0%} with split_seed={seed}"
        )
    for part in SPLITS:
        present = set(labels[parts == part].tolist())
        missing = [names[i] for i in range(len(names)) if i not in present]
        if missing:
            raise DataError(
                f"the {part} split has no images of class(es) {missing}: expected every class in every split"
            )
    if not notes:
        notes.append("the given train/val/test split is used as is")
    counts = ", ".join(f"{p} {int((parts == p).sum())}" for p in SPLITS)
    return parts, "; ".join(notes) + f" ({counts})"


def _check_per_class(labels: np.ndarray, fraction: float, names: Sequence[str], part: str) -> None:
    minimum = math.ceil(1.0 / fraction)
    values, counts = np.unique(labels, return_counts=True)
    small = {names[int(v)]: int(c) for v, c in zip(values, counts, strict=True) if c < minimum}
    if small:
        raise DataError(
            f"too few images to carve a stratified {fraction:.0%} validation split out of {part}: "
            f"class(es) {small} have fewer than {minimum} images there (need at least {minimum} per class)"
        )


def save_split(split: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    split[list(SPLIT_COLUMNS)].to_csv(tmp, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a split file
    return path


def split_classes(split: pd.DataFrame) -> tuple[str, ...]:
    """The class names of a split, label order: ``classes[i]`` is the ``class_name`` of label ``i``."""
    classes = split.attrs.get("classes")
    if classes is not None:
        return tuple(classes)
    pairs = split[["label", "class_name"]].drop_duplicates().sort_values("label")
    return tuple(str(c) for c in pairs["class_name"])


def _classes_of(split: pd.DataFrame, path: Path) -> tuple[str, ...]:
    """Check labels and class names map one to one and labels are 0..K-1 (K >= 2); the names."""
    labels = pd.to_numeric(split["label"], errors="coerce")
    if labels.isna().any() or (labels != labels.round()).any():
        row = int(np.argmax(labels.isna().to_numpy() | (labels != labels.round()).to_numpy()))
        raise DataError(
            f"split file {str(path)!r} row {row}: label {split['label'][row]!r} is not an integer"
        )
    split["label"] = labels.astype(int)
    # The name of each label is the one most of its rows carry; a row that disagrees is named.
    majority = split.groupby("label")["class_name"].agg(lambda s: s.value_counts().index[0])
    expected = split["label"].map(majority)
    if (expected != split["class_name"]).any():
        row = int(np.argmax((expected != split["class_name"]).to_numpy()))
        raise DataError(
            f"split file {str(path)!r} row {row}: label {split['label'][row]} does not match "
            f"class {split['class_name'][row]!r}; expected label {split['label'][row]} to be "
            f"{majority[split['label'][row]]!r} as in its other rows"
        )
    names = [str(majority[i]) for i in sorted(majority.index)]
    if (
        sorted(majority.index) != list(range(len(majority)))
        or len(set(names)) != len(names)
        or len(names) < 2
    ):
        raise DataError(
            f"split file {str(path)!r} maps labels {dict(zip(sorted(majority.index), names, strict=True))}: "
            "expected labels 0..K-1 (K >= 2), one class name each"
        )
    return tuple(names)


def load_split(path: str | Path, root: str | Path | None = None) -> pd.DataFrame:
    """Read a split CSV; with ``root``, also check every listed image exists there.

    The class names come from the file (`split_classes`, also in ``attrs["classes"]``): label ``i``
    is the class named in its rows. Split files of any number of classes, old ones included, read.
    """
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
    classes = _classes_of(split, path)
    if root is not None:
        root = _paths_root(Path(root))
        absent = [p for p in split["image"] if not (root / p).is_file()]
        if absent:
            raise DataError(
                f"{len(absent)} image(s) listed in {str(path)!r} are not under {str(root)!r}, first: {absent[0]!r}"
            )
    split = split[list(SPLIT_COLUMNS)]
    split.attrs["classes"] = classes
    return split


def _paths_root(root: Path) -> Path:
    """The folder a split's image paths are relative to, from a data path of any layout."""
    if root.is_file():
        return root.parent
    if (
        not _has_all_classes(root)
        and (root / KAGGLE_FOLDER).is_dir()
        and _has_all_classes(root / KAGGLE_FOLDER)
    ):
        return root / KAGGLE_FOLDER
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist or is not a folder")
    return root


def split_matches(split: pd.DataFrame, root: str | Path, seed: int) -> bool:
    """Whether ``split`` is what `make_split` gives for the data at ``root`` with ``seed``.

    The data is re-listed without opening images; images missing from ``split`` (corrupt ones left
    out) are left out before re-splitting, as `scan_dataset` does.
    """
    scan = scan_dataset(root, verify=False)
    listed = set(split["image"])
    index = scan.index[scan.index["image"].isin(listed)].reset_index(drop=True)
    if list(index["image"]) != list(split["image"]):
        return False
    again = make_split(ScanResult(scan.root, index, (), scan.classes, scan.layout), seed)
    return bool(
        (again["split"].to_numpy() == split["split"].to_numpy()).all()
        and (again["label"].to_numpy() == split["label"].to_numpy()).all()
    )


def data_fingerprint(split: pd.DataFrame, root: str | Path) -> str:
    """sha256 over every image's path, label, split and bytes: equal fingerprints, equal data."""
    root = Path(root)
    digest = hashlib.sha256()
    for image, label, part in sorted(zip(split["image"], split["label"], split["split"], strict=True)):
        digest.update(f"{image}\0{label}\0{part}\0".encode())
        digest.update(hashlib.sha256((root / image).read_bytes()).digest())
    return digest.hexdigest()
