"""Synthetic chest X-rays with lung masks, written in the COVID-19 Radiography Database layout.

The real data set cannot be downloaded everywhere advparity must run, so the embedded default is a
generator whose classes differ the way the radiology describes them:

- ``Normal``: clear lung fields (ribs, vessels, heart and spine only);
- ``Lung_Opacity``: diffuse, hazy, low-frequency opacity over large parts of one or both lungs;
- ``COVID``: bilateral, peripheral, lower-zone ground-glass blobs;
- ``Viral Pneumonia``: central / perihilar streaks radiating from the hila, with perihilar haze.

Anatomy (pose, lung size, heart, ribs), exposure and noise vary per image, and each lesion's
strength is ``class amplitude × severity`` with severity ~ Beta(2, 1.5): some abnormal images look
almost normal, so a classifier trained on the set is good but not perfect, like the real one.
Every image is a pure function of ``(seed, class, index)``, so a set is reproducible image by image
and independent of generation order.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from advparity.model.jsonfile import read_json_object
from advparity.model.layouts import CLASSES
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

# Shares of the real data set (3,616 / 6,012 / 10,192 / 1,345 of 21,165), in CLASSES order.
REAL_COUNTS: dict[str, int] = {"COVID": 3616, "Lung_Opacity": 6012, "Normal": 10192, "Viral Pneumonia": 1345}
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic.json"


@dataclass(frozen=True)
class LesionAmplitude:
    """Peak brightness a lesion adds at severity 1 (pixel units, before exposure scaling).

    Chosen together with the demo preset's image size, data size and learning rate so that
    DenseNet-121 from scratch lands in the 85-98 % clean-accuracy band on 2 cores in minutes
    (see README "Synthetic data"); larger values make the task easier.
    """

    opacity: float = 0.20
    ground_glass: float = 0.22
    streaks: float = 0.20


@dataclass(frozen=True)
class SynthSpec:
    """What a synthetic data set is made of; written next to it as ``synthetic.json``."""

    counts: tuple[int, ...]  # images per class, in CLASSES order
    size: int = 64
    seed: int = 0
    amplitude: LesionAmplitude = LesionAmplitude()
    version: int = GENERATOR_VERSION

    def __post_init__(self) -> None:
        if len(self.counts) != len(CLASSES) or any(c < 1 for c in self.counts):
            raise ValueError(f"expected {len(CLASSES)} positive per-class counts, got {self.counts}")
        if not 16 <= self.size <= 1024:
            raise ValueError(f"expected size in [16, 1024] pixels, got {self.size}")
        if self.seed < 0:  # numpy's generators refuse it, after the folders would have been made
            raise ValueError(f"expected seed >= 0, got {self.seed}")

    def to_json(self) -> dict[str, object]:
        spec = asdict(self)
        spec["counts"] = dict(zip(CLASSES, self.counts, strict=True))
        return spec


def counts_for_total(total: int) -> tuple[int, ...]:
    """Split ``total`` images over the classes in the real set's proportions (largest remainder)."""
    if total < len(CLASSES):
        raise ValueError(f"expected total >= {len(CLASSES)} (one image per class), got {total}")
    real = np.array([REAL_COUNTS[name] for name in CLASSES], dtype=float)
    exact = total * real / real.sum()
    counts = np.maximum(np.floor(exact).astype(int), 1)
    for i in np.argsort(-(exact - np.floor(exact)))[: total - counts.sum()]:
        counts[i] += 1
    return tuple(int(c) for c in counts)


def generate_image(
    label: int, index: int, size: int, seed: int, amplitude: LesionAmplitude
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic radiograph and its lung mask, both ``uint8 [size, size]`` (mask is 0/255)."""
    rng = np.random.default_rng([seed, label, index])
    axis = np.linspace(-1.0, 1.0, size)
    # u: left-right (image left = patient's right), v: top-down.
    u, v = np.meshgrid(axis, axis)

    # --- pose and anatomy -------------------------------------------------------------------
    shift_u, shift_v = rng.normal(0.0, 0.05, size=2)
    scale = rng.uniform(0.88, 1.08)
    tilt = rng.normal(0.0, 0.04)  # radians; patients are never perfectly straight
    cu, cv = u - shift_u, v - shift_v
    uu = (cu * math.cos(tilt) + cv * math.sin(tilt)) / scale
    vv = (-cu * math.sin(tilt) + cv * math.cos(tilt)) / scale

    body = _soft_ellipse(uu, vv + 0.05, 0.9, 1.25, edge=0.06)
    image = 0.06 + 0.42 * body

    lungs = []
    for side in (-1.0, 1.0):
        cx = side * rng.uniform(0.33, 0.42)
        cy = rng.uniform(-0.12, 0.0)
        ax = rng.uniform(0.22, 0.29) * (0.92 if side > 0 else 1.0)  # the heart narrows the left lung
        ay = rng.uniform(0.52, 0.64)
        # Lungs widen towards the diaphragm: the horizontal semi-axis grows with depth.
        width = ax * (1.0 + 0.35 * np.clip((vv - cy) / ay, -1.0, 1.0))
        lungs.append(_soft_ellipse(uu - cx, vv - cy, width, ay, edge=0.05))
    lung_field = np.clip(lungs[0] + lungs[1], 0.0, 1.0)

    heart = _soft_ellipse(
        uu - rng.uniform(0.08, 0.16),
        vv - rng.uniform(0.25, 0.35),
        rng.uniform(0.24, 0.32),
        rng.uniform(0.2, 0.26),
        edge=0.06,
    )
    spine = np.exp(-((uu / 0.09) ** 2)) * body
    air = lung_field * (1.0 - 0.85 * heart) * (1.0 - 0.6 * spine)
    image -= rng.uniform(0.26, 0.34) * air

    # Ribs: posterior ribs curve down towards the sides; bright bands seen mostly against the lungs.
    rib_freq = rng.uniform(5.0, 6.5)
    rib_phase = rng.uniform(0.0, 2 * math.pi)
    rib_curve = vv - 0.35 * uu**2 - 0.1 * np.abs(uu)
    ribs = np.maximum(0.0, np.cos(2 * math.pi * rib_freq * rib_curve / 2.0 + rib_phase)) ** 6
    image += rng.uniform(0.05, 0.09) * ribs * (0.3 + 0.7 * lung_field) * body

    # Normal vascular markings: faint streaks from the hila in every class, so that the viral
    # pneumonia pattern is "more and stronger streaks", not "any streak".
    hila = [(-0.2, -0.05), (0.2, -0.05)]
    image += 0.05 * _streaks(uu, vv, rng, hila, count=int(rng.integers(4, 8)), width=0.012) * lung_field
    image += 0.12 * heart + 0.1 * spine

    # Benign distractor: a small calcified nodule in some images of every class.
    if rng.random() < 0.25:
        side = rng.choice([-1.0, 1.0])
        image += (
            rng.uniform(0.05, 0.12)
            * _blob(uu - side * rng.uniform(0.25, 0.5), vv - rng.uniform(-0.4, 0.3), rng.uniform(0.02, 0.035))
            * lung_field
        )

    # --- pathology --------------------------------------------------------------------------
    severity = rng.beta(2.0, 1.5)
    name = CLASSES[label]
    if name == "Lung_Opacity":
        haze = np.zeros_like(uu)
        sides = [(-1.0,), (1.0,), (-1.0, 1.0)][int(rng.integers(0, 3))]
        for side in sides:
            for _ in range(int(rng.integers(1, 3))):
                haze += _blob(
                    uu - side * rng.uniform(0.25, 0.45), vv - rng.uniform(-0.2, 0.4), rng.uniform(0.18, 0.3)
                )
        image += amplitude.opacity * severity * np.clip(haze, 0.0, 1.0) * lung_field
    elif name == "COVID":
        glass = np.zeros_like(uu)
        for side in (-1.0, 1.0):  # bilateral
            for _ in range(int(rng.integers(2, 5))):
                # Peripheral (lateral half of each lung) and lower zone.
                glass += _blob(
                    uu - side * rng.uniform(0.45, 0.62), vv - rng.uniform(0.1, 0.5), rng.uniform(0.07, 0.13)
                )
        image += amplitude.ground_glass * severity * np.clip(glass, 0.0, 1.0) * lung_field
    elif name == "Viral Pneumonia":
        streaks = _streaks(uu, vv, rng, hila, count=int(rng.integers(8, 14)), width=0.02)
        perihilar = _blob(uu - 0.2, vv + 0.02, 0.16) + _blob(uu + 0.2, vv + 0.02, 0.16)
        image += amplitude.streaks * severity * (streaks + 0.5 * perihilar) * lung_field

    # --- acquisition: exposure, blur, noise -------------------------------------------------
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0.0, 0.04)
    image = gaussian_filter(image, sigma=rng.uniform(0.3, 0.8) * size / 64.0)
    image = image + rng.normal(0.0, rng.uniform(0.01, 0.025), size=image.shape)
    gamma = rng.uniform(0.85, 1.15)
    image = np.clip(image, 0.0, 1.0) ** gamma

    mask = (lung_field > 0.5) & (heart < 0.5)
    return np.round(image * 255.0).astype(np.uint8), (mask * 255).astype(np.uint8)


def _soft_ellipse(
    du: np.ndarray, dv: np.ndarray, au: float | np.ndarray, av: float, edge: float
) -> np.ndarray:
    """1 inside the ellipse, 0 outside, with a logistic edge of about ``edge`` width."""
    radius = np.sqrt((du / au) ** 2 + (dv / av) ** 2)
    return 1.0 / (1.0 + np.exp((radius - 1.0) / edge))


def _blob(du: np.ndarray, dv: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-(du**2 + dv**2) / (2.0 * sigma**2))


def _streaks(
    uu: np.ndarray,
    vv: np.ndarray,
    rng: np.random.Generator,
    hila: list[tuple[float, float]],
    count: int,
    width: float,
) -> np.ndarray:
    """Thin bright line segments radiating outwards and downwards from the hila."""
    out = np.zeros_like(uu)
    for _ in range(count):
        hu, hv = hila[int(rng.integers(0, len(hila)))]
        outward = 1.0 if hu > 0 else -1.0
        angle = rng.uniform(-0.5, 1.1)  # from slightly upwards to steeply downwards
        length = rng.uniform(0.18, 0.4)
        su, sv = hu + rng.normal(0, 0.03), hv + rng.normal(0, 0.05)
        eu, ev = su + outward * length * math.cos(angle), sv + length * math.sin(angle)
        out = np.maximum(out, _segment(uu, vv, (su, sv), (eu, ev), width))
    return out


def _segment(
    uu: np.ndarray, vv: np.ndarray, start: tuple[float, float], end: tuple[float, float], width: float
) -> np.ndarray:
    du, dv = end[0] - start[0], end[1] - start[1]
    t = np.clip(((uu - start[0]) * du + (vv - start[1]) * dv) / (du * du + dv * dv), 0.0, 1.0)
    dist2 = (uu - start[0] - t * du) ** 2 + (vv - start[1] - t * dv) ** 2
    return np.exp(-dist2 / (2.0 * width**2))


def write_dataset(out: str | Path, spec: SynthSpec, progress: bool = True) -> Path:
    """Write ``<out>/<Class>/images/<Class>-<i>.png`` and ``.../masks/...`` plus ``synthetic.json``.

    An existing folder written with the same spec is reused as it is; a different one is refused
    rather than mixed with the new images.
    """
    out = Path(out)
    manifest = out / MANIFEST_NAME
    wanted = spec.to_json()
    if manifest.is_file():
        found = read_json_object(manifest, "synthetic data set record")
        if found == wanted:
            return out
        raise ValueError(
            f"{str(out)!r} already holds a synthetic data set with other settings ({found}); "
            "choose another --out or delete it"
        )
    # Without a manifest, a folder holding only class folders is an interrupted earlier run:
    # images are a pure function of the spec, so writing them again completes it safely.
    foreign = sorted(p.name for p in out.iterdir() if p.name not in CLASSES) if out.is_dir() else []
    if foreign:
        raise ValueError(
            f"{str(out)!r} holds files that are not a synthetic data set ({foreign[:3]}); "
            "choose an empty or new folder for synthetic data"
        )
    total = sum(spec.counts)
    bar = tqdm(total=total, desc="synth", unit="img", disable=not progress)
    for label, (name, count) in enumerate(zip(CLASSES, spec.counts, strict=True)):
        (out / name / "images").mkdir(parents=True, exist_ok=True)
        (out / name / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            image, mask = generate_image(label, i, spec.size, spec.seed, spec.amplitude)
            Image.fromarray(image, mode="L").save(out / name / "images" / f"{name}-{i}.png")
            Image.fromarray(mask, mode="L").save(out / name / "masks" / f"{name}-{i}.png")
            bar.update()
    bar.close()
    # The manifest goes last: its presence means the set is complete.
    tmp = manifest.with_name(MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(wanted, indent=2))
    tmp.replace(manifest)
    return out
