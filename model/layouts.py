"""The data-set layouts: tell which layout a data path is, and scan it into an index of images.

Over ~400 lines on purpose: the layouts a data folder can have, detected and scanned by one set of rules.

``--data`` accepts four layouts; `detect_layout` tells them apart by these rules, in this order:

1. **csv** — ``PATH`` is a ``.csv`` file: a manifest with columns ``path,label[,split]``; paths are
   relative to the CSV's folder or absolute. Classes = the sorted distinct labels. With a ``split``
   column (``train``/``val``/``valid``/``test``) the split is used as given, else it is made
   (`model.split`).
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
   sorted folder names. The data set is split by `model.split` (stratified 80/10/10).

Anything else is an error listing the folders and files found. In every layout the images are
``.png .jpg .jpeg .bmp .tif .tiff`` in any mode (read as grey, 16-bit at full depth:
`model.data.load_image`); a file of another type in a class folder is an error (hidden files,
``.name``, are ignored). Any number of classes >= 2 works; the class of label ``i`` is ``classes[i]``.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
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
