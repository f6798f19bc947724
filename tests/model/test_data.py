"""The data layer: folder scan, its errors, the stratified split, image loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from advparity.model.data import (
    CLASSES,
    KAGGLE_FOLDER,
    CXRDataset,
    DataError,
    LayoutKind,
    data_fingerprint,
    detect_layout,
    find_dataset_root,
    load_image,
    load_mask,
    load_split,
    make_split,
    save_split,
    scan_dataset,
    split_classes,
    split_matches,
    stratified_split,
    training_augmentation,
)
from PIL import Image

# A real 3-class chest X-ray set split by folders (train/ + val/), kept outside the repository.
SHARED_SET = Path(__file__).resolve().parents[3] / "shared" / "data" / "covid19-image-dataset"
SHARED_COUNTS = {
    "train": {"Covid": 111, "Normal": 70, "Viral Pneumonia": 70},
    "val": {"Covid": 26, "Normal": 20, "Viral Pneumonia": 20},
}
THREE = ("Covid", "Normal", "Viral Pneumonia")

# Per-class totals of the real COVID-19 Radiography Database, and the paper's split sizes.
REAL_TOTALS = {"COVID": 3616, "Lung_Opacity": 6012, "Normal": 10192, "Viral Pneumonia": 1345}
PAPER_SPLIT = {"train": 16932, "val": 2116, "test": 2117}


def _write_png(path: Path, size: tuple[int, int] = (8, 8), value: int = 128, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": (size[1], size[0]), "RGB": (size[1], size[0], 3)}[mode]
    Image.fromarray(np.full(channels, value, dtype=np.uint8), mode=mode).save(path)


def _tiny_dataset(root: Path, per_class: int = 10, with_masks: bool = True) -> Path:
    for name in CLASSES:
        for i in range(per_class):
            _write_png(root / name / "images" / f"{name}-{i}.png", value=10 * i)
            if with_masks:
                _write_png(root / name / "masks" / f"{name}-{i}.png", value=255)
    return root


def test_split_reproduces_the_papers_counts_from_the_real_class_totals() -> None:
    labels = np.concatenate([np.full(n, i) for i, n in enumerate(REAL_TOTALS.values())])
    parts = stratified_split(labels, seed=42)
    assert {p: int((parts == p).sum()) for p in PAPER_SPLIT} == PAPER_SPLIT
    # Stratified: every class keeps its share in every part, to within one image of rounding.
    for i, total in enumerate(REAL_TOTALS.values()):
        in_class = parts[labels == i]
        for part, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
            assert abs((in_class == part).sum() - share * total) <= 1.0, (i, part)


def test_split_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    labels = np.repeat(np.arange(4), 50)
    first, again, other = (stratified_split(labels, s) for s in (1, 1, 2))
    assert (first == again).all()
    assert (first != other).any()


def test_split_refuses_classes_too_small_to_stratify() -> None:
    labels = np.array([0] * 50 + [1] * 50 + [2] * 50 + [3] * 4)
    with pytest.raises(DataError, match=r"\{3: 4\}.*at least 10 per class"):
        stratified_split(labels, seed=0)


def test_split_rejects_fractions_that_do_not_sum_to_one() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        stratified_split(np.repeat(np.arange(4), 20), seed=0, fractions=(0.8, 0.1, 0.2))


def test_scan_indexes_images_and_masks(tmp_path: Path) -> None:
    scan = scan_dataset(_tiny_dataset(tmp_path, per_class=3))
    assert scan.counts() == {name: 3 for name in CLASSES}
    assert list(scan.index.columns) == ["image", "mask", "label", "class_name"]
    row = scan.index.iloc[0]
    assert row["image"] == "COVID/images/COVID-0.png" and row["mask"] == "COVID/masks/COVID-0.png"
    assert scan.skipped == ()


def test_masks_are_optional(tmp_path: Path) -> None:
    scan = scan_dataset(_tiny_dataset(tmp_path, per_class=2, with_masks=False))
    assert (scan.index["mask"] == "").all()


def test_scan_descends_into_the_kaggle_folder(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path / KAGGLE_FOLDER, per_class=2)
    assert find_dataset_root(tmp_path) == tmp_path / KAGGLE_FOLDER
    assert len(scan_dataset(tmp_path).index) == 8


def test_missing_class_folder_names_what_was_found(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=2)
    shutil.rmtree(tmp_path / "Viral Pneumonia")
    (tmp_path / "Viral_Pneumonia").mkdir()  # the classic typo: underscore for space
    with pytest.raises(DataError) as err:
        scan_dataset(tmp_path)
    message = str(err.value)
    assert "missing class folder(s) ['Viral Pneumonia']" in message
    assert "'Viral_Pneumonia'" in message and "'COVID'" in message


def test_missing_data_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        scan_dataset(tmp_path / "nowhere")


def test_empty_class_is_an_error(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=2)
    for png in (tmp_path / "Normal" / "images").iterdir():
        png.unlink()
    with pytest.raises(DataError, match=r"class 'Normal' is empty"):
        scan_dataset(tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_is_named(tmp_path: Path, damage: str) -> None:
    _tiny_dataset(tmp_path, per_class=3)
    bad = tmp_path / "COVID" / "images" / "COVID-1.png"
    if damage == "garbage":
        bad.write_bytes(b"not a png at all")
    else:
        bad.write_bytes(bad.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"COVID-1\.png.*corrupt.*skip_corrupt"):
        scan_dataset(tmp_path)


def test_skip_corrupt_leaves_them_out_and_reports_how_many(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=3)
    for name in ("COVID-1.png", "COVID-2.png"):
        (tmp_path / "COVID" / "images" / name).write_bytes(b"\x89PNG broken")
    scan = scan_dataset(tmp_path, skip_corrupt=True)
    assert scan.skipped == ("COVID/images/COVID-1.png", "COVID/images/COVID-2.png")
    assert scan.counts()["COVID"] == 1 and len(scan.index) == 10


def test_a_class_with_only_corrupt_images_is_still_an_error(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=2)
    for png in (tmp_path / "COVID" / "images").iterdir():
        png.write_bytes(b"broken")
    with pytest.raises(DataError, match="'COVID' has no readable images"):
        scan_dataset(tmp_path, skip_corrupt=True)


def test_mask_of_another_shape_is_an_error(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=2)
    _write_png(tmp_path / "Normal" / "masks" / "Normal-1.png", size=(8, 5))
    with pytest.raises(DataError, match=r"Normal-1\.png.*is 8x5 but its image is 8x8"):
        scan_dataset(tmp_path)


def test_mask_that_is_a_uniform_rescale_is_accepted(tmp_path: Path) -> None:
    # The Kaggle release pairs 299x299 images with 256x256 masks.
    _tiny_dataset(tmp_path, per_class=2)
    _write_png(tmp_path / "Normal" / "images" / "Normal-1.png", size=(299, 299))
    _write_png(tmp_path / "Normal" / "masks" / "Normal-1.png", size=(256, 256), value=255)
    assert len(scan_dataset(tmp_path).index) == 8
    assert load_mask(tmp_path / "Normal" / "masks" / "Normal-1.png", 32).shape == (32, 32)


def test_corrupt_mask_is_an_error_even_when_skipping_images(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=2)
    (tmp_path / "COVID" / "masks" / "COVID-0.png").write_bytes(b"broken")
    with pytest.raises(DataError, match=r"cannot read mask .*COVID-0\.png"):
        scan_dataset(tmp_path, skip_corrupt=True)


def test_split_csv_round_trip_and_checks(tmp_path: Path) -> None:
    root = _tiny_dataset(tmp_path / "data", per_class=10)
    split = make_split(scan_dataset(root), seed=3)
    path = save_split(split, tmp_path / "split.csv")
    loaded = load_split(path, root)
    pd.testing.assert_frame_equal(loaded, split.reset_index(drop=True), check_dtype=False)
    assert loaded["split"].value_counts().to_dict() == {"train": 32, "val": 4, "test": 4}

    (root / "COVID" / "images" / "COVID-0.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) listed .* first: 'COVID/images/COVID-0.png'"):
        load_split(path, root)

    broken = loaded.copy()
    broken.loc[0, "label"] = 2  # says Normal, folder says COVID
    save_split(broken, tmp_path / "broken.csv")
    with pytest.raises(DataError, match="label 2 does not match class 'COVID'"):
        load_split(tmp_path / "broken.csv")


def test_load_image_is_grey_replicated_in_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(pixels, mode="L").save(path)
    x = load_image(path, 8)
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.from_numpy(pixels).float() / 255)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert load_image(path, 16).shape == (3, 16, 16)


def test_rgb_images_become_grey(tmp_path: Path) -> None:
    path = tmp_path / "rgb.png"
    _write_png(path, value=200, mode="RGB")
    x = load_image(path, 8)
    assert torch.allclose(x, torch.full_like(x, 200 / 255))


def test_dataset_parts_and_augmentation(synthetic_root: Path) -> None:
    split = make_split(scan_dataset(synthetic_root), seed=42)
    train = CXRDataset(split, synthetic_root, 32, "train", training_augmentation(10.0))
    test = CXRDataset(split, synthetic_root, 32, "test")
    assert len(train) == 128 and len(test) == 16
    torch.manual_seed(0)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.min() >= 0.0 and x.max() <= 1.0
    assert isinstance(y, int)
    # Augmentation is random but seeded: same seed, same view; and it does change the image.
    torch.manual_seed(0)
    assert torch.equal(train[0][0], x)
    plain = CXRDataset(split, synthetic_root, 32, "train")[0][0]
    views = [train[0][0] for _ in range(5)]
    assert any(not torch.equal(v, plain) for v in views)
    with pytest.raises(ValueError, match="expected part in"):
        CXRDataset(split, synthetic_root, 32, "validation")


def test_fingerprint_follows_the_bytes(tmp_path: Path) -> None:
    root = _tiny_dataset(tmp_path / "data", per_class=10)
    split = make_split(scan_dataset(root), seed=0)
    before = data_fingerprint(split, root)
    assert data_fingerprint(split, root) == before
    _write_png(root / "COVID" / "images" / "COVID-3.png", value=1)
    assert data_fingerprint(split, root) != before


# --- the other layouts: image folder, split folders, CSV manifest -----------------------------------


def _image_folder(root: Path, per_class: dict[str, int], suffix: str = ".png") -> Path:
    for name, n in per_class.items():
        for i in range(n):
            _write_png(root / name / f"{name}-{i}{suffix}", value=20 * (i % 10), mode="RGB" if i % 2 else "L")
    return root


def test_image_folder_is_detected_and_scanned_with_classes_from_folder_names(tmp_path: Path) -> None:
    _image_folder(tmp_path, {"b": 10, "a": 12, "c": 10})
    _write_png(tmp_path / "a" / "extra.JPG")  # suffixes are matched case-insensitively
    (tmp_path / "a" / ".DS_Store").write_bytes(b"hidden files are ignored")
    assert detect_layout(tmp_path).kind is LayoutKind.IMAGE_FOLDER
    scan = scan_dataset(tmp_path)
    assert scan.layout is LayoutKind.IMAGE_FOLDER and scan.classes == ("a", "b", "c")
    assert scan.counts() == {"a": 13, "b": 10, "c": 10}
    assert (scan.index["mask"] == "").all() and "given_split" not in scan.index.columns
    split = make_split(scan, seed=1)
    assert split_classes(split) == ("a", "b", "c")
    assert split["split"].value_counts().to_dict() == {"train": 26, "val": 3, "test": 4}
    assert "stratified 80/10/10" in split.attrs["split_note"]


def test_every_accepted_suffix_and_mode_loads(tmp_path: Path) -> None:
    for i, suffix in enumerate((".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")):
        for name in ("x", "y"):
            path = tmp_path / name / f"{i}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((6, 9, 3), 90, dtype=np.uint8), mode="RGB").save(path)
    scan = scan_dataset(tmp_path)
    assert scan.counts() == {"x": 6, "y": 6}
    for image in scan.index["image"]:
        assert load_image(tmp_path / image, 8).shape == (3, 8, 8)


def _split_folders(root: Path, parts: dict[str, dict[str, int]]) -> Path:
    for part, per_class in parts.items():
        _image_folder(root / part, per_class)
    return root


def test_split_folders_are_used_as_given_not_re_split(tmp_path: Path) -> None:
    parts = {
        "train": {"cat": 6, "dog": 5},
        "valid": {"cat": 2, "dog": 3},  # "valid" is read as "val"
        "test": {"cat": 4, "dog": 1},
    }
    _split_folders(tmp_path, parts)
    (tmp_path / "README.md").write_text("files beside the split folders are fine")
    layout = detect_layout(tmp_path)
    assert layout.kind is LayoutKind.SPLIT_FOLDERS and sorted(layout.split_folders) == [
        "test",
        "train",
        "val",
    ]
    scan = scan_dataset(tmp_path)
    assert scan.classes == ("cat", "dog")
    assert scan.split_counts() == {
        "train": {"cat": 6, "dog": 5},
        "val": {"cat": 2, "dog": 3},
        "test": {"cat": 4, "dog": 1},
    }
    split = make_split(scan, seed=0)
    # Far too small for an 80/10/10 re-split: proof it is not re-split. Every row keeps its folder.
    expected = split["image"].str.split("/").str[0].replace({"valid": "val"})
    assert (split["split"] == expected).all()
    assert split.attrs["split_note"].startswith("the given train/val/test split is used as is")
    assert split_matches(split, tmp_path, seed=0) and split_matches(split, tmp_path, seed=99)


def test_split_folders_without_test_use_val_as_test_and_carve_validation(tmp_path: Path) -> None:
    _split_folders(tmp_path, {"train": {"cat": 20, "dog": 10}, "val": {"cat": 3, "dog": 2}})
    scan = scan_dataset(tmp_path)
    split = make_split(scan, seed=5)
    test = split[split["split"] == "test"]
    assert sorted(test["image"]) == sorted(scan.index.loc[scan.index["given_split"] == "val", "image"])
    val = split[split["split"] == "val"]
    assert val["image"].str.startswith("train/").all()
    assert val["class_name"].value_counts().to_dict() == {"cat": 2, "dog": 1}  # stratified 10 %
    assert split.attrs["split_note"] == (
        "no test split given: the given val split (5 images) is used as the test split; "
        "the validation split (3 images) is carved out of the given train split (30 -> 27 images), "
        "stratified, 10% with split_seed=5 (train 27, val 3, test 5)"
    )
    assert split_matches(split, tmp_path, seed=5)
    assert not split_matches(split, tmp_path, seed=6)


def test_a_class_missing_from_one_split_folder_is_named(tmp_path: Path) -> None:
    _split_folders(tmp_path, {"train": {"cat": 10, "dog": 10, "eel": 10}, "val": {"cat": 3, "dog": 3}})
    with pytest.raises(DataError) as err:
        scan_dataset(tmp_path)
    message = str(err.value)
    assert "lacks class folder(s) ['eel']" in message and str(tmp_path / "val") in message
    assert "expected every split to hold the classes ['cat', 'dog', 'eel'], got ['cat', 'dog']" in message


def test_a_train_folder_alone_is_not_a_split_layout(tmp_path: Path) -> None:
    _split_folders(tmp_path, {"train": {"cat": 10, "dog": 10}})
    with pytest.raises(DataError, match=r"has a 'train' folder but no 'val', 'valid' or 'test' folder"):
        detect_layout(tmp_path)


def _manifest(root: Path, rows: list[tuple[str, ...]], header: str = "path,label") -> Path:
    csv = root / "manifest.csv"
    csv.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
    return csv


def test_csv_manifest_with_relative_and_absolute_paths_is_split_here(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    rows = []
    for label in ("sick", "well"):
        for i in range(10):
            rel = f"img/{label}{i}.png"
            _write_png(data / rel)
            rows.append((rel, label))
        _write_png(elsewhere / f"{label}.jpg", mode="RGB")
        rows.append((str(elsewhere / f"{label}.jpg"), label))
    csv = _manifest(data, rows)
    for given in (csv, data):  # the file, or the folder holding it (as a card records the root)
        layout = detect_layout(given)
        assert layout.kind is LayoutKind.CSV and layout.manifest == csv and layout.root == data
    scan = scan_dataset(csv)
    assert scan.classes == ("sick", "well") and scan.counts() == {"sick": 11, "well": 11}
    assert str(elsewhere / "sick.jpg") in set(scan.index["image"])
    split = make_split(scan, seed=0)
    assert split["split"].value_counts().to_dict() == {"train": 17, "val": 2, "test": 3}
    path = save_split(split, tmp_path / "split.csv")
    assert load_split(path, csv)["image"].tolist() == split["image"].tolist()
    assert data_fingerprint(split, data)  # absolute paths resolve under any root


def test_csv_manifest_with_a_split_column_is_used_as_given(tmp_path: Path) -> None:
    rows = []
    for label in ("b", "a", "c"):
        for i, part in enumerate(["train"] * 3 + ["val", "test"]):
            _write_png(tmp_path / f"{label}{i}.png")
            rows.append((f"{label}{i}.png", label, part))
    csv = _manifest(tmp_path, rows, header="path,label,split")
    scan = scan_dataset(csv)
    assert scan.classes == ("a", "b", "c")
    assert scan.split_counts()["train"] == {"a": 3, "b": 3, "c": 3}
    split = make_split(scan, seed=0)
    assert split.set_index("image")["split"].to_dict() == {f"{r[0]}": r[2] for r in rows}
    assert split_classes(load_split(save_split(split, tmp_path / "out" / "split.csv"))) == ("a", "b", "c")


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (
            [("x.png", "a")],
            "file,label",
            r"lacks column\(s\) \['path'\]: expected columns path,label\[,split\], got \['file', 'label'\]",
        ),
        (
            [("x.png", "a"), ("gone/y.png", "b")],
            "path,label",
            r"row 2 \(line 3\): file 'gone/y.png' does not exist",
        ),
        (
            [("x.png", "a"), ("notes.txt", "b")],
            "path,label",
            r"row 2 \(line 3\): 'notes.txt' is not an accepted image type: expected one of .bmp .jpeg .jpg .png .tif .tiff",
        ),
        (
            [("x.png", "a"), ("x.png", "a")],
            "path,label",
            r"holds a single class \['a'\]: expected at least 2 classes",
        ),
        (
            [("x.png", "a", "train"), ("x.png", "b", "holdout")],
            "path,label,split",
            r"row 2 \(line 3\): split 'holdout' is not one of",
        ),
    ],
)
def test_bad_manifests_are_named(
    tmp_path: Path, rows: list[tuple[str, ...]], header: str, message: str
) -> None:
    _write_png(tmp_path / "x.png")
    (tmp_path / "notes.txt").write_text("not an image")
    csv = _manifest(tmp_path, rows, header=header)
    with pytest.raises(DataError, match=message) as err:
        scan_dataset(csv)
    assert str(csv) in str(err.value)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    _image_folder(tmp_path, {"a": 10, "b": 10})
    (tmp_path / "c").mkdir()
    with pytest.raises(
        DataError, match=r"class 'c' is empty: no .bmp .jpeg .jpg .png .tif .tiff files in .*/c'"
    ):
        scan_dataset(tmp_path)


def test_single_class_folder_is_an_error(tmp_path: Path) -> None:
    _image_folder(tmp_path, {"only": 10})
    with pytest.raises(DataError, match=r"holds a single class \['only'\]: expected at least 2 classes"):
        scan_dataset(tmp_path)


def test_unknown_image_type_is_named_with_the_accepted_suffixes(tmp_path: Path) -> None:
    _image_folder(tmp_path, {"a": 10, "b": 10})
    (tmp_path / "b" / "scan.dcm").write_bytes(b"DICM")
    with pytest.raises(DataError) as err:
        scan_dataset(tmp_path)
    assert str(err.value) == (
        f"{str(tmp_path / 'b' / 'scan.dcm')!r} in class folder {str(tmp_path / 'b')!r} is not an accepted "
        "image type: expected one of .bmp .jpeg .jpg .png .tif .tiff, got '.dcm'"
    )


def test_corrupt_image_in_an_image_folder_can_be_skipped(tmp_path: Path) -> None:
    _image_folder(tmp_path, {"a": 11, "b": 10})
    (tmp_path / "a" / "a-3.png").write_bytes(b"broken")
    with pytest.raises(DataError, match=r"a-3\.png.*corrupt.*skip_corrupt"):
        scan_dataset(tmp_path)
    scan = scan_dataset(tmp_path, skip_corrupt=True)
    assert scan.skipped == ("a/a-3.png",) and scan.counts() == {"a": 10, "b": 10}


def test_nothing_recognisable_lists_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        DataError,
        match=r"cannot tell the layout of .*expected a COVID-19 Radiography folder.*found \['notes.txt'\]",
    ):
        detect_layout(tmp_path)


def test_radiography_layout_is_still_detected_with_its_four_classes(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=2)
    layout = detect_layout(tmp_path)
    assert layout.kind is LayoutKind.RADIOGRAPHY and scan_dataset(tmp_path).classes == CLASSES


def test_old_split_files_read_and_record_their_classes(tmp_path: Path) -> None:
    # A split file written before the layouts existed: the four Radiography classes, no extra columns.
    old = tmp_path / "old.csv"
    old.write_text(
        "image,mask,label,class_name,split\n"
        + "".join(
            f"{n}/images/{n}-{p}.png,,{i},{n},{p}\n"
            for i, n in enumerate(CLASSES)
            for p in ("train", "val", "test")
        )
    )
    assert split_classes(load_split(old)) == CLASSES
    gap = tmp_path / "gap.csv"
    gap.write_text("image,mask,label,class_name,split\na.png,,0,a,train\nb.png,,2,b,train\n")
    with pytest.raises(DataError, match=r"maps labels \{0: 'a', 2: 'b'\}: expected labels 0..K-1"):
        load_split(gap)


@pytest.mark.skipif(not SHARED_SET.is_dir(), reason=f"the shared real data set is not at {SHARED_SET}")
def test_the_shared_real_set_is_split_folders_with_three_classes_and_every_image_loads() -> None:
    layout = detect_layout(SHARED_SET)
    assert layout.kind is LayoutKind.SPLIT_FOLDERS and layout.root == SHARED_SET
    scan = scan_dataset(SHARED_SET)  # verifies every file opens and decodes
    assert scan.classes == THREE and scan.split_counts() == SHARED_COUNTS
    assert {Path(p).suffix.lower() for p in scan.index["image"]} == {".jpeg", ".jpg", ".png"}
    split = make_split(scan, seed=42)
    counts = split.groupby(["split", "class_name"]).size().unstack().to_dict("index")
    assert counts["test"] == SHARED_COUNTS["val"]  # no test/ folder: val/ is the test split
    for name in THREE:
        assert counts["train"][name] + counts["val"][name] == SHARED_COUNTS["train"][name]
    assert sum(counts["val"].values()) == 26
    assert "no test split given" in split.attrs["split_note"]
    modes = set()
    for image in scan.index["image"]:
        with Image.open(SHARED_SET / image) as img:
            modes.add(img.mode)
        x = load_image(SHARED_SET / image, 32)
        assert x.shape == (3, 32, 32) and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0
    assert "L" in modes and "RGB" in modes


def test_train_model_on_a_three_class_image_folder_records_the_classes(tmp_path: Path) -> None:
    """End to end through the pipeline: 3 classes at 32 px, 1 epoch; the card names the 3 classes."""
    from advparity.harness import pipeline
    from advparity.harness.config import load_preset
    from advparity.model.checkpoint import load_checkpoint

    data = _image_folder(tmp_path / "data", {"Covid": 10, "Normal": 10, "Viral Pneumonia": 10})
    preset = load_preset("smoke")
    assert preset.train.image_size == 32 and preset.train.max_epochs == 1
    root = pipeline.prepare_data(preset, tmp_path / "out", data, progress=False)
    trained = pipeline.train_model(
        preset, root, tmp_path / "out" / "model", torch.device("cpu"), progress=False
    )
    assert trained.card["classes"] == list(THREE)
    assert trained.card["data"]["layout"] == "image_folder"
    assert trained.card["data"]["counts"]["test"] == {name: 1 for name in THREE}
    assert split_classes(load_split(tmp_path / "out" / "model" / "split.csv", root)) == THREE
    model, _ = load_checkpoint(trained.checkpoint)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    again = pipeline.train_model(
        preset, root, tmp_path / "out" / "model", torch.device("cpu"), progress=False
    )
    assert again.reused


def test_a_training_set_that_leaves_one_image_over_still_trains(tmp_path: Path) -> None:
    """17 training images in batches of 16: BatchNorm cannot train on the last batch of one (it raises)."""
    from advparity.harness import pipeline
    from advparity.harness.config import load_preset

    data = tmp_path / "data"
    _image_folder(data / "train", {"Covid": 6, "Normal": 6, "Viral Pneumonia": 5})
    _image_folder(data / "val", {"Covid": 1, "Normal": 1, "Viral Pneumonia": 1})
    _image_folder(data / "test", {"Covid": 1, "Normal": 1, "Viral Pneumonia": 1})
    preset = load_preset("smoke")
    assert 17 % preset.train.batch_size == 1
    root = pipeline.prepare_data(preset, tmp_path / "out", data, progress=False)
    trained = pipeline.train_model(
        preset, root, tmp_path / "out" / "model", torch.device("cpu"), progress=False
    )
    assert trained.card["data"]["counts"]["train"] == {"Covid": 6, "Normal": 6, "Viral Pneumonia": 5}


def test_a_manifest_beside_another_trains_and_runs_from_the_card(tmp_path: Path) -> None:
    """Two manifests in one folder: the one given is used through train and run (no re-detection)."""
    from advparity.harness.cli import EXIT_OK, main

    data = tmp_path / "data"
    rows = []
    for k, name in enumerate(("cat", "dog", "eel")):
        for i in range(10):
            _write_png(data / "img" / f"{name}-{i}.png", value=40 * k + i)
            rows.append((f"img/{name}-{i}.png", name))
    chosen = _manifest(data, rows)
    (data / "other.csv").write_text("path,label\nimg/cat-0.png,cat\nimg/dog-0.png,dog\n")
    out = tmp_path / "out"
    assert (
        main(["-q", "train", "--preset", "smoke", "--data", str(chosen), "--out", str(out / "model")])
        == EXIT_OK
    )
    card = json.loads((out / "model" / "model.json").read_text())
    assert card["classes"] == ["cat", "dog", "eel"] and card["data"]["source"] == str(chosen)
    checkpoint = out / "model" / "model.safetensors"
    assert (
        main(["-q", "run", "--preset", "smoke", "--checkpoint", str(checkpoint), "--out", str(out / "run")])
        == EXIT_OK
    )
