"""The data layer: folder scan, its errors, the stratified split, image loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from model.data import (
    CLASSES,
    KAGGLE_FOLDER,
    CXRDataset,
    DataError,
    data_fingerprint,
    find_dataset_root,
    load_image,
    load_mask,
    load_split,
    make_split,
    save_split,
    scan_dataset,
    stratified_split,
    training_augmentation,
)

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
