"""The data layer: find and scan a data set, split it, load images as [0, 1] tensors.

``--data`` accepts four layouts; `detect_layout` tells them apart by these rules, in this order:

1. **csv** — ``PATH`` is a ``.csv`` file: a manifest with columns ``path,label[,split]``; paths are
   relative to the CSV's folder or absolute. Classes = the sorted distinct labels. With a ``split``
   column (``train``/``val``/``valid``/``test``) the split is used as given, else it is made here.
2. **radiography** — ``PATH`` (or ``PATH/COVID-19_Radiography_Dataset``, as the Kaggle download
   nests it) holds the four folders of `CLASSES`, each with ``images/`` and optionally ``masks/``
   (same file names). A folder whose sub-folders hold an ``images/`` folder but not all four classes
   (and no manifest, rule 3) is refused with what is missing (the classic typo ``Viral_Pneumonia``).
   When none of the four holds ``images/`` and each holds image files directly, the folder is an
   image folder (rule 5, no lung masks; logged); some with ``images/`` and some without is an error.
3. **csv** — ``PATH`` is a folder with exactly one ``.csv`` file directly in it whose header names
   ``path`` and ``label``: that manifest. (This is how the folder a manifest sits in — what a
   checkpoint card records as the data root — is read back.) Two such files are an error.
4. **split_folders** — ``PATH/train/`` exists, with ``PATH/val/`` (or ``valid/``) and/or
   ``PATH/test/``; each holds ``<class>/<image>``. The split is used as given, never re-split. With
   no ``test/``, ``val/`` becomes the test split and validation is carved out of ``train/``
   (stratified, with the split seed); with no ``val/``, validation is carved out of ``train/``.
   Classes = the union of the splits' class folders; a class missing from one split is an error.
5. **image_folder** — any other folder with sub-folders: ``PATH/<class>/<image>``. Classes = the
   sorted folder names. The data set is split here (stratified 80/10/10).

Anything else is an error listing the folders and files found. In every layout the images are
``.png .jpg .jpeg .bmp .tif .tiff`` in any mode (read as grey, 16-bit at full depth: `load_image`);
a file of another type in a class folder is an error (hidden files, ``.name``, are ignored). Any
number of classes >= 2 works; the class of label ``i`` is ``classes[i]``, and the split CSV records
it in its ``label``/``class_name`` columns (every class has rows in every split), so
`split_classes` reads the class list back.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

# The class folders of the COVID-19 Radiography Database layout (other layouts take theirs from the data).
CLASSES: tuple[str, ...] = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")
KAGGLE_FOLDER = "COVID-19_Radiography_Dataset"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_COLUMNS: tuple[str, ...] = ("image", "mask", "label", "class_name", "split")
MANIFEST_COLUMNS: tuple[str, ...] = ("path", "label")  # plus an optional "split"
# Folder (and manifest) names of the given splits; "valid" is a common spelling of "val".
SPLIT_ALIASES: dict[str, str] = {"train": "train", "val": "val", "valid": "val", "test": "test"}
# Share of train/ carved out as validation when a given split has no validation part.
VAL_CARVE_FRACTION = 0.1
_IGNORED_FOLDERS = frozenset({"__MACOSX"})

# The Kaggle release ships 256x256 lung masks for its 299x299 images, so a mask may be a uniform
# rescale of its image; only a different aspect ratio means the mask belongs to another picture.
_ASPECT_TOLERANCE = 0.01


class DataError(ValueError):
    """The data on disk is not what the scan expects; the message names the file or folder."""


class LayoutKind(str, enum.Enum):
    RADIOGRAPHY = "radiography"
    IMAGE_FOLDER = "image_folder"
    SPLIT_FOLDERS = "split_folders"
    CSV = "csv"


@dataclass(frozen=True)
class Layout:
    """What `detect_layout` found: the kind, the folder image paths are relative to, the manifest."""

    kind: LayoutKind
    root: Path  # image paths in a scan and a split file are relative to this folder
    manifest: Path | None = None  # the CSV file (kind CSV only)
    split_folders: dict[str, Path] = field(default_factory=dict)  # "train"/"val"/"test" -> folder


@dataclass(frozen=True)
class ScanResult:
    """What `scan_dataset` found: one row per usable image, plus what it skipped."""

    root: Path
    # columns: image, mask ("" if none), label, class_name — paths relative to root (or absolute,
    # from a manifest) — plus given_split ("train"/"val"/"test") when the data set comes split.
    index: pd.DataFrame
    skipped: tuple[str, ...]  # relative paths of corrupt images left out (only with skip_corrupt=True)
    classes: tuple[str, ...] = CLASSES  # label i is classes[i]
    layout: LayoutKind = LayoutKind.RADIOGRAPHY

    def counts(self) -> dict[str, int]:
        return {name: int((self.index["class_name"] == name).sum()) for name in self.classes}

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Images per given split and class (empty when the data set does not come split)."""
        if "given_split" not in self.index.columns:
            return {}
        return {
            part: {
                name: int(((self.index["given_split"] == part) & (self.index["class_name"] == name)).sum())
                for name in self.classes
            }
            for part in SPLITS
            if (self.index["given_split"] == part).any()
        }


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in _IGNORED_FOLDERS


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and _visible(p))


def _accepted() -> str:
    return " ".join(sorted(IMAGE_SUFFIXES))


def detect_layout(path: str | Path) -> Layout:
    """Which of the four layouts ``path`` is (rules in the module docstring); a `DataError` if none."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return Layout(LayoutKind.CSV, path.parent, manifest=path)
        raise DataError(
            f"data path {str(path)!r} is a file but not a .csv manifest: expected a folder or a .csv"
        )
    if not path.is_dir():
        raise DataError(f"data folder {str(path)!r} does not exist or is not a folder")
    named_like_radiography = False
    for candidate in (path, path / KAGGLE_FOLDER):
        if candidate.is_dir() and _has_all_classes(candidate):
            if _holds_radiography_images(candidate):
                return Layout(LayoutKind.RADIOGRAPHY, candidate)
            if candidate != path:
                raise DataError(
                    f"the class folders in {str(candidate)!r} hold image files directly, without "
                    f"'images' subfolders: pass {str(candidate)!r} itself to read it as an image folder"
                )
            named_like_radiography = True
    manifests = [p for p in sorted(path.iterdir()) if _is_manifest(p)]
    if len(manifests) > 1:
        raise DataError(
            f"{str(path)!r} holds {len(manifests)} manifests {[p.name for p in manifests]}: "
            "expected one; pass the .csv file itself"
        )
    if manifests:
        return Layout(LayoutKind.CSV, path, manifest=manifests[0])
    folders = _subfolders(path)
    if (path / KAGGLE_FOLDER).is_dir() or any((f / "images").is_dir() for f in folders):
        missing = [name for name in CLASSES if not (path / name).is_dir()]
        raise DataError(
            f"{str(path)!r} is not a COVID-19 Radiography Database folder: missing class folder(s) "
            f"{missing}; expected {list(CLASSES)}, found {[f.name for f in folders] or 'no folders'}"
        )
    names = {f.name.lower(): f for f in folders}
    if "train" in names:
        if "val" in names and "valid" in names:
            raise DataError(
                f"{str(path)!r} has both 'val' and 'valid' split folders: expected one validation folder"
            )
        splits = {SPLIT_ALIASES[k]: f for k, f in names.items() if k in SPLIT_ALIASES}
        if len(splits) < 2:
            raise DataError(
                f"{str(path)!r} has a 'train' folder but no 'val', 'valid' or 'test' folder next to it: "
                f"expected split folders train/ + val/ and/or test/, found {[f.name for f in folders]}"
            )
        others = [f.name for f in folders if f.name.lower() not in SPLIT_ALIASES]
        if others:
            log.warning("split folders in %s: ignoring non-split folder(s) %s", path, others)
        return Layout(LayoutKind.SPLIT_FOLDERS, path, split_folders=splits)
    if folders:
        if named_like_radiography:
            log.info(
                "%s: read as an image folder (<class>/<image>, no lung masks): its %s folders hold "
                "the images directly, without the Radiography layout's images/ subfolders",
                path,
                "/".join(CLASSES),
            )
        return Layout(LayoutKind.IMAGE_FOLDER, path)
    found = sorted(p.name for p in path.iterdir() if _visible(p))
    raise DataError(
        f"cannot tell the layout of {str(path)!r}: expected a COVID-19 Radiography folder "
        f"({'/'.join(CLASSES)} with images/), split folders (train/ + val/|valid/|test/, each "
        "<class>/<image>), an image folder (<class>/<image>) or a manifest .csv (path,label[,split]); "
        f"found {found or 'nothing'}"
    )


def _is_manifest(path: Path) -> bool:
    """A visible ``.csv`` file whose header names the manifest columns."""
    if not (path.is_file() and path.suffix.lower() == ".csv" and _visible(path)):
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return False
    names = {c.strip().strip('"').lower() for c in header.split(",")}
    return all(c in names for c in MANIFEST_COLUMNS)


def find_dataset_root(path: str | Path) -> Path:
    """The folder image paths are relative to (descends into the Kaggle folder; a CSV's folder)."""
    return detect_layout(path).root


def _has_all_classes(path: Path) -> bool:
    return all((path / name).is_dir() for name in CLASSES)


def _holds_radiography_images(path: Path) -> bool:
    """Whether ``path``'s four `CLASSES` folders are the Radiography layout (each with ``images/``).

    False when none has ``images/`` and each holds image files directly (an image folder whose
    classes are named like the Radiography database's); a mix, or neither, is a `DataError`.
    """
    lacking = [name for name in CLASSES if not (path / name / "images").is_dir()]
    if not lacking:
        return True
    loose = [
        name
        for name in CLASSES
        if any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in (path / name).iterdir())
    ]
    if len(lacking) == len(CLASSES) and len(loose) == len(CLASSES):
        return False
    raise DataError(
        f"{str(path)!r} holds the four COVID-19 Radiography class folders, but {lacking} lack an "
        f"'images' subfolder{'' if len(lacking) == len(CLASSES) else ' (the others have one)'}: "
        f"expected either the Radiography layout, every class folder with images/ (and optionally "
        f"masks/), or an image folder, every class folder holding its image files ({_accepted()}) "
        "directly"
    )


def _check_classes(names: Sequence[str], where: Path) -> tuple[str, ...]:
    classes = tuple(sorted(set(names)))
    if len(classes) < 2:
        raise DataError(
            f"{str(where)!r} holds a single class {list(classes)}: expected at least 2 classes to classify"
        )
    return classes


def _class_images(folder: Path, name: str) -> list[Path]:
    """The images directly in a class folder; anything else in it is an error naming the file."""
    images: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if not _visible(entry):
            continue
        if entry.is_dir():
            raise DataError(
                f"class folder {str(folder)!r} holds a folder {entry.name!r}: expected only image files "
                f"({_accepted()}) directly in it"
            )
        if entry.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(
                f"{str(entry)!r} in class folder {str(folder)!r} is not an accepted image type: "
                f"expected one of {_accepted()}, got {entry.suffix or 'no suffix'!r}"
            )
        images.append(entry)
    if not images:
        raise DataError(f"class {name!r} is empty: no {_accepted()} files in {str(folder)!r}")
    return images


def _scan_radiography(root: Path) -> tuple[list[tuple[str, str, int, str]], tuple[str, ...]]:
    rows: list[tuple[str, str, int, str]] = []
    for label, name in enumerate(CLASSES):
        image_dir = root / name / "images"
        if not image_dir.is_dir():
            raise DataError(f"class folder {str(root / name)!r} has no 'images' subfolder")
        images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"class {name!r} is empty: no {_accepted()} files in {str(image_dir)!r}")
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
    return rows, CLASSES


def _scan_image_folder(root: Path) -> tuple[list[tuple[str, str, int, str]], tuple[str, ...]]:
    classes = _check_classes([f.name for f in _subfolders(root)], root)
    rows = [
        (image.relative_to(root).as_posix(), "", label, name)
        for label, name in enumerate(classes)
        for image in _class_images(root / name, name)
    ]
    return rows, classes


def _scan_split_folders(layout: Layout) -> tuple[list[tuple[str, str, int, str, str]], tuple[str, ...]]:
    per_split = {part: [f.name for f in _subfolders(folder)] for part, folder in layout.split_folders.items()}
    classes = _check_classes([n for names in per_split.values() for n in names], layout.root)
    for part, names in per_split.items():
        missing = [n for n in classes if n not in names]
        if missing:
            raise DataError(
                f"split folder {str(layout.split_folders[part])!r} lacks class folder(s) {missing}: "
                f"expected every split to hold the classes {list(classes)}, got {sorted(names)}"
            )
    rows = [
        (image.relative_to(layout.root).as_posix(), "", label, name, part)
        for part in SPLITS
        if part in layout.split_folders
        for label, name in enumerate(classes)
        for image in _class_images(layout.split_folders[part] / name, name)
    ]
    return rows, classes


def read_manifest(csv_path: str | Path) -> pd.DataFrame:
    """A manifest's rows as ``image, mask, label, class_name[, given_split]`` (classes sorted)."""
    csv_path = Path(csv_path)
    try:
        table = pd.read_csv(
            csv_path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read manifest {str(csv_path)!r}: {err}") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"manifest {str(csv_path)!r} lacks column(s) {missing}: expected columns path,label[,split], "
            f"got {list(table.columns)}"
        )
    if table.empty:
        raise DataError(f"manifest {str(csv_path)!r} has no rows: expected one row per image")
    root = csv_path.parent
    has_split = "split" in table.columns
    for i, row in enumerate(table.itertuples(index=False), start=1):
        where = f"manifest {str(csv_path)!r} row {i} (line {i + 1})"
        path, label = str(row.path).strip(), str(row.label).strip()
        if not path or not label:
            raise DataError(f"{where}: expected a path and a label, got path={path!r} label={label!r}")
        if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(
                f"{where}: {path!r} is not an accepted image type: expected one of {_accepted()}, "
                f"got {Path(path).suffix or 'no suffix'!r}"
            )
        if not (root / path).is_file():
            raise DataError(f"{where}: file {path!r} does not exist (looked for {str(root / path)!r})")
        if has_split and str(row.split).strip().lower() not in SPLIT_ALIASES:
            raise DataError(f"{where}: split {row.split!r} is not one of {sorted(SPLIT_ALIASES)}")
    paths = [Path(p.strip()).as_posix() for p in table["path"]]
    labels = [str(v).strip() for v in table["label"]]
    classes = _check_classes(labels, csv_path)
    frame = pd.DataFrame(
        {
            "image": paths,
            "mask": "",
            "label": [classes.index(v) for v in labels],
            "class_name": labels,
        }
    )
    if has_split:
        frame["given_split"] = [SPLIT_ALIASES[str(v).strip().lower()] for v in table["split"]]
    duplicated = frame["image"].duplicated()
    if duplicated.any():
        i = int(np.argmax(duplicated.to_numpy())) + 1
        raise DataError(
            f"manifest {str(csv_path)!r} row {i} (line {i + 1}): {frame['image'][i - 1]!r} is listed twice"
        )
    return frame


def scan_dataset(
    path: str | Path,
    *,
    skip_corrupt: bool = False,
    verify: bool = True,
    progress: bool = False,
) -> ScanResult:
    """Index every image under ``path`` (any layout `detect_layout` knows) and check it can be used.

    With ``verify`` each image and mask is opened and checked (PNG CRCs, a decodable header), so a
    broken file fails here with its name instead of half-way through training. A corrupt image is
    an error unless ``skip_corrupt``; then it is left out and listed in ``ScanResult.skipped``.
    A corrupt or mis-sized mask is always an error: the lung-attention analysis would be wrong.
    """
    layout = detect_layout(path)
    root = layout.root
    columns = ["image", "mask", "label", "class_name"]
    if layout.kind is LayoutKind.RADIOGRAPHY:
        rows, classes = _scan_radiography(root)
        index = pd.DataFrame(rows, columns=columns)
    elif layout.kind is LayoutKind.IMAGE_FOLDER:
        rows, classes = _scan_image_folder(root)
        index = pd.DataFrame(rows, columns=columns)
    elif layout.kind is LayoutKind.SPLIT_FOLDERS:
        split_rows, classes = _scan_split_folders(layout)
        index = pd.DataFrame(split_rows, columns=[*columns, "given_split"])
    else:
        assert layout.manifest is not None
        index = read_manifest(layout.manifest)
        classes = _check_classes(list(index["class_name"]), layout.manifest)
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
        for name in classes:
            if not (index["class_name"] == name).any():
                raise DataError(f"class {name!r} has no readable images left after skipping corrupt files")
    return ScanResult(root=root, index=index, skipped=tuple(skipped), classes=classes, layout=layout.kind)


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
