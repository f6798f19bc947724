"""Image loading at every bit depth and mode, and an image folder named like the Radiography database."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from advparity.model.data import (
    CLASSES,
    CXRDataset,
    DataError,
    LayoutKind,
    detect_layout,
    load_image,
    load_mask,
    make_split,
    scan_dataset,
)
from PIL import Image


def _write_png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8), mode="L").save(path)


def _tiny_dataset(root: Path, per_class: int) -> Path:
    """The Radiography layout (as tests/model/test_data.py builds it): <class>/images/ and <class>/masks/."""
    for name in CLASSES:
        for i in range(per_class):
            _write_png(root / name / "images" / f"{name}-{i}.png", value=10 * i)
            _write_png(root / name / "masks" / f"{name}-{i}.png", value=255)
    return root


def _ramp16(height: int = 12, width: int = 20, seed: int = 0) -> np.ndarray:
    """A uint16 image whose values span the whole 16-bit range (most of them above 255)."""
    return np.random.default_rng(seed).integers(0, 65536, (height, width)).astype(np.uint16)


def _write16(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)  # uint16 -> mode "I;16", a 16-bit greyscale PNG
    return path


# --- 16-bit greyscale -------------------------------------------------------------------------------


def test_pillow_reads_a_16_bit_png_as_i16_and_convert_l_would_clip_it(tmp_path: Path) -> None:
    """Why load_image must not convert("L") a 16-bit image: Pillow clips it to 0..255."""
    pixels = _ramp16()
    path = _write16(tmp_path / "x16.png", pixels)
    with Image.open(path) as img:
        assert img.mode == "I;16"
        assert np.array_equal(np.asarray(img), pixels)
        clipped = np.asarray(img.convert("L"))
    assert np.array_equal(clipped, np.minimum(pixels, 255))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_image_keeps_its_full_depth(tmp_path: Path, suffix: str) -> None:
    square = _ramp16(16, 16)
    path = _write16(tmp_path / f"sq16{suffix}", square)
    x = load_image(path, 16)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    expected = square.astype(np.float32) / np.float32(65535)
    assert np.array_equal(x[0].numpy(), expected)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    # Spread over [0, 1], not 0/1 only as the convert("L") path gave.
    assert len(np.unique(x[0].numpy())) > 200
    assert ((x > 0.05) & (x < 0.95)).float().mean() > 0.5


def test_16_bit_big_endian_tiff_keeps_its_full_depth(tmp_path: Path) -> None:
    square = _ramp16(8, 8, seed=3)
    path = tmp_path / "be.tif"
    Image.frombytes("I;16B", (8, 8), square.astype(">u2").tobytes()).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16B"
    assert np.array_equal(load_image(path, 8)[0].numpy(), square.astype(np.float32) / np.float32(65535))


def test_16_bit_image_is_resized_in_float(tmp_path: Path) -> None:
    pixels = _ramp16(24, 24, seed=1)
    path = _write16(tmp_path / "x16.png", pixels)
    x = load_image(path, 10)
    assert x.shape == (3, 10, 10)
    reference = Image.fromarray(pixels.astype(np.float32), mode="F").resize(
        (10, 10), Image.Resampling.BILINEAR
    )
    expected = np.asarray(reference) / 65535
    assert np.allclose(x[0].numpy(), expected, atol=1e-6)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert len(np.unique(x[0].numpy())) > 50  # not clipped to 0/1


def test_mode_i_within_16_bits_reads_as_16_bit(tmp_path: Path) -> None:
    pixels = _ramp16(8, 8, seed=2).astype(np.int32)
    path = tmp_path / "i32.tif"
    Image.fromarray(pixels).save(path)
    with Image.open(path) as img:
        assert img.mode == "I"
    assert np.array_equal(load_image(path, 8)[0].numpy(), pixels.astype(np.float32) / np.float32(65535))


@pytest.mark.parametrize("bad", [65536 * 3, -1])
def test_mode_i_outside_16_bits_is_refused_naming_the_file_and_range(tmp_path: Path, bad: int) -> None:
    pixels = np.full((8, 8), 1000, dtype=np.int32)
    pixels[2, 3] = bad
    path = tmp_path / "wide.tif"
    Image.fromarray(pixels).save(path)
    low, high = min(1000, bad), max(1000, bad)
    with pytest.raises(DataError, match=rf"wide\.tif.*mode 'I' with values from {low} to {high}.*0\.\.65535"):
        load_image(path, 8)


# --- float ------------------------------------------------------------------------------------------


def test_float_image_in_unit_range_is_used_as_is(tmp_path: Path) -> None:
    pixels = np.random.default_rng(4).random((8, 8), dtype=np.float32)
    path = tmp_path / "f.tif"
    Image.fromarray(pixels, mode="F").save(path)
    with Image.open(path) as img:
        assert img.mode == "F"
    assert np.array_equal(load_image(path, 8)[0].numpy(), pixels)
    assert load_image(path, 5).shape == (3, 5, 5)


@pytest.mark.parametrize("bad", [1.5, -0.25, float("nan"), float("inf")])
def test_float_image_outside_unit_range_is_refused_naming_the_file(tmp_path: Path, bad: float) -> None:
    pixels = np.full((8, 8), 0.5, dtype=np.float32)
    pixels[4, 4] = bad
    path = tmp_path / "float.tif"
    Image.fromarray(pixels, mode="F").save(path)
    with pytest.raises(DataError, match=r"float\.tif.*mode 'F'.*finite values in \[0, 1\]"):
        load_image(path, 8)


# --- 8-bit and colour: unchanged ------------------------------------------------------------------


def test_8_bit_image_is_exactly_the_old_result(tmp_path: Path) -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (16, 16)).astype(np.uint8)
    path = tmp_path / "x8.png"
    Image.fromarray(pixels, mode="L").save(path)
    x = load_image(path, 16)
    assert x.dtype == torch.float32
    assert np.array_equal(x[0].numpy(), (np.asarray(pixels) / 255).astype(np.float32))
    # Resized: BILINEAR on the uint8 image, then /255 in float32 (the old code path).
    small = np.asarray(Image.fromarray(pixels, mode="L").resize((7, 7), Image.Resampling.BILINEAR))
    assert small.dtype == np.uint8
    expected = torch.from_numpy(small.copy()).to(torch.float32) / 255.0
    assert torch.equal(load_image(path, 7)[0], expected)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P", "1", "CMYK"])
def test_other_modes_are_the_luma_of_convert_l(tmp_path: Path, mode: str) -> None:
    rgb = np.random.default_rng(6).integers(0, 256, (10, 10, 3)).astype(np.uint8)
    image = Image.fromarray(rgb, mode="RGB")
    image = image.convert(mode) if mode != "RGBA" else image.convert("RGBA")
    if mode == "RGBA":
        image.putalpha(40)  # alpha is dropped, not blended
    path = tmp_path / f"x-{mode}.{'tif' if mode == 'CMYK' else 'png'}"
    image.save(path)
    with Image.open(path) as img:
        assert img.mode == mode
        luma = np.asarray(img.convert("L"))
    assert np.array_equal(load_image(path, 10)[0].numpy(), (luma / 255).astype(np.float32))


def test_rgb_luma_is_itu_r_601_2(tmp_path: Path) -> None:
    path = tmp_path / "red.png"
    Image.fromarray(np.tile(np.array([200, 0, 0], np.uint8), (4, 4, 1)), mode="RGB").save(path)
    assert torch.allclose(load_image(path, 4), torch.full((3, 4, 4), round(0.299 * 200) / 255))


# --- masks ------------------------------------------------------------------------------------------


def test_8_bit_mask_thresholds_above_127(tmp_path: Path) -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "m8.png"
    Image.fromarray(pixels, mode="L").save(path)
    assert torch.equal(load_mask(path, 16), torch.from_numpy(pixels > 127))


def test_16_bit_mask_thresholds_at_half_range(tmp_path: Path) -> None:
    pixels = np.array([[0, 255, 32767, 32768], [40000, 65535, 1000, 32766]], dtype=np.uint16)
    path = _write16(tmp_path / "m16.png", np.kron(pixels, np.ones((2, 1), np.uint16)))  # 4x4
    mask = load_mask(path, 4)
    assert mask.dtype == torch.bool
    expected = np.kron(pixels > 32767, np.ones((2, 1), bool))
    assert np.array_equal(mask.numpy(), expected)
    # convert("L") would have made every pixel above 255 white: 255 and 1000 would have been lung.
    assert not mask[0, 1] and not mask[2, 2]
    # Nearest-neighbour resize keeps it binary and on the same threshold.
    big = load_mask(path, 8)
    assert big.shape == (8, 8) and np.array_equal(big.numpy()[::2, ::2], expected)


# --- end to end -------------------------------------------------------------------------------------


def test_an_image_folder_of_16_bit_pngs_scans_and_loads_at_full_depth(tmp_path: Path) -> None:
    for c, name in enumerate(("a", "b")):
        for i in range(10):
            _write16(tmp_path / name / f"{name}-{i}.png", _ramp16(12, 12, seed=10 * c + i))
    scan = scan_dataset(
        tmp_path
    )  # verify=True opens every image: a 16-bit one is neither refused nor mangled
    assert scan.layout is LayoutKind.IMAGE_FOLDER and scan.counts() == {"a": 10, "b": 10}
    split = make_split(scan, seed=0)
    data = CXRDataset(split, scan.root, 12)
    for i in range(len(data)):
        x, _ = data[i]
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert ((x > 0) & (x < 1)).float().mean() > 0.9, f"image {i} is (nearly) all 0/1"
    x, _ = data[0]
    source = np.asarray(Image.open(scan.root / split["image"].iloc[0]))
    assert np.array_equal(x[0].numpy(), source.astype(np.float32) / np.float32(65535))


def test_a_radiography_set_with_16_bit_images_and_masks_scans(tmp_path: Path) -> None:
    for name in CLASSES:
        for i in range(10):
            _write16(tmp_path / name / "images" / f"{name}-{i}.png", _ramp16(12, 12, seed=i))
            mask = np.full((10, 10), 65535, np.uint16)
            mask[:, :5] = 1000  # dark: not lung (convert("L") would have clipped it to white)
            _write16(tmp_path / name / "masks" / f"{name}-{i}.png", mask)
    scan = scan_dataset(tmp_path)
    assert scan.layout is LayoutKind.RADIOGRAPHY and (scan.index["mask"] != "").all()
    mask = load_mask(tmp_path / scan.index["mask"].iloc[0], 10)
    assert mask[:, 5:].all() and not mask[:, :5].any()


# --- an image folder named like the Radiography database --------------------------------------------


def _radiography_named_image_folder(root: Path, per_class: int = 10) -> Path:
    for name in CLASSES:
        for i in range(per_class):
            _write_png(root / name / f"{name}-{i}.png", value=10 * i)
    return root


def test_radiography_class_names_without_images_subfolders_are_an_image_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _radiography_named_image_folder(tmp_path)
    with caplog.at_level(logging.INFO, logger="advparity.model.layouts"):
        layout = detect_layout(tmp_path)
    assert layout.kind is LayoutKind.IMAGE_FOLDER and layout.root == tmp_path
    notes = [r.getMessage() for r in caplog.records if "read as an image folder" in r.getMessage()]
    assert len(notes) == 1 and "no lung masks" in notes[0]
    scan = scan_dataset(tmp_path)
    assert scan.layout is LayoutKind.IMAGE_FOLDER and scan.classes == CLASSES
    assert scan.counts() == dict.fromkeys(CLASSES, 10) and (scan.index["mask"] == "").all()


def test_radiography_class_folders_some_with_images_some_without_are_named(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=2)
    for name in ("Normal", "Viral Pneumonia"):  # these two hold their images directly
        for image in (tmp_path / name / "images").iterdir():
            image.rename(tmp_path / name / image.name)
        (tmp_path / name / "images").rmdir()
        for mask in (tmp_path / name / "masks").iterdir():
            mask.unlink()
        (tmp_path / name / "masks").rmdir()
    with pytest.raises(DataError) as err:
        detect_layout(tmp_path)
    message = str(err.value)
    assert "but ['Normal', 'Viral Pneumonia'] lack an 'images' subfolder (the others have one)" in message
    assert "every class folder with images/" in message  # what the Radiography layout expects
    assert "holding its image files" in message  # what an image folder expects


def test_radiography_class_folders_with_neither_images_nor_image_files_are_an_error(tmp_path: Path) -> None:
    for name in CLASSES:
        (tmp_path / name / "scans").mkdir(parents=True)
    with pytest.raises(
        DataError, match=r"lack an 'images' subfolder: expected either the Radiography layout"
    ):
        detect_layout(tmp_path)


def test_the_real_radiography_layout_is_detected_as_before(tmp_path: Path) -> None:
    _tiny_dataset(tmp_path, per_class=10)
    layout = detect_layout(tmp_path)
    assert layout.kind is LayoutKind.RADIOGRAPHY and layout.root == tmp_path
    scan = scan_dataset(tmp_path)
    assert scan.layout is LayoutKind.RADIOGRAPHY and scan.classes == CLASSES
    assert (scan.index["mask"] != "").all() and scan.counts() == dict.fromkeys(CLASSES, 10)
