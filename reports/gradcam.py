"""Grad-CAM under attack: where the model looks on the clean and on the adversarial image, measured.

The paper (Eq. 10–12, section "Visual Progression and Grad-CAM Analysis") claims that attacks move
DenseNet-121's attention off the lungs ("semantic decoupling"), measured as the cosine similarity
``Sc`` of the flattened Grad-CAM maps of the clean and the adversarial image, but shows it only with
pictures. This module measures it, per image and per true class:

- the maps themselves come from ``harness/cam.py`` (the ``grad-cam`` package on one target layer,
  target = the class the model predicts for *that* image, Eq. 10–11): this package reads them from the
  run directory and runs no model;
- :func:`cosine_similarity` (Eq. 12) and :func:`lung_share` (CAM mass inside the lung mask);
- :func:`image_rows` — one row per image per attack setting; :func:`summarize` — per true class ×
  library × attack × eps, mean ``Sc`` with a bootstrap CI, lung share clean vs adversarial, split by
  whether the prediction flipped;
- :func:`figure_grid` (image, clean CAM, adversarial CAM, perturbation) and :func:`gradcam_section` /
  :func:`report_block`, the part of ``report.html`` that shows it.

``harness/gradcam.py`` regenerates the adversarial images, maps them and writes ``RUN_DIR/gradcam/``: ``gradcam.parquet`` (the rows), ``summary.csv``, ``meta.json`` and
``figures/*.png``.

Zero maps
---------
The package min-max normalises every map to [0, 1]. A map whose raw CAM is ``<= 0`` everywhere (no
location speaks for the class) or constant (no location is preferred) comes out as all zeros. The
conventions, chosen so that no number is invented and no NaN reaches ``Sc``:

- ``cosine_similarity``: both maps zero → 1.0 (the two maps are identical); exactly one zero → 0.0
  (the dot product is 0: the maps share no location; the zero map has no mass anywhere the other
  could overlap). The formula itself is undefined there (0/0).
- ``lung_share`` of a zero map → NaN: a share of no mass is undefined, and any number would bias the
  class means (0 would fake "attention left the lungs", the mask's area would fake chance). Means skip
  it; :func:`summarize` counts zero maps per group (``zero_maps``) so a reader sees how many there were.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI machines and servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from advparity.model.jsonfile import read_json_object  # noqa: E402
from advparity.reports.schema import attack_label, eps_label, library_label, library_sort_key  # noqa: E402
from advparity.reports.tables import format_value  # noqa: E402
from PIL import Image  # noqa: E402

log = logging.getLogger(__name__)

GRADCAM_DIR = "gradcam"
ROWS_FILE = "gradcam.parquet"
SUMMARY_FILE = "summary.csv"
META_FILE = "meta.json"
FIGURES_DIR = "figures"

BOOTSTRAP_RESAMPLES = 2000
SUBSETS: tuple[str, ...] = ("all", "flipped", "not flipped")

# The per-image table written to RUN_DIR/gradcam/gradcam.parquet (harness/gradcam.py may add columns).
ROW_COLUMNS: tuple[str, ...] = (
    "library", "attack", "eps", "steps", "alpha", "random_start", "seed", "sample", "image", "label",
    "class_name", "pred_clean", "pred_adv", "pred_adv_run", "reproduced", "flipped", "sc",
    "lung_share_clean", "lung_share_adv", "mask_area", "zero_map_clean", "zero_map_adv",
)  # fmt: skip

SUMMARY_COLUMNS: tuple[str, ...] = (
    "label", "class_name", "library", "attack", "steps", "random_start", "eps", "eps_label", "subset", "n",
    "sc_mean", "sc_ci_low", "sc_ci_high", "lung_share_clean", "lung_share_adv", "lung_delta",
    "lung_delta_ci_low", "lung_delta_ci_high", "mask_area", "zero_maps", "not_reproduced",
)  # fmt: skip


# --- per-image measures ------------------------------------------------------------------------------


def cosine_similarity(cam_a: np.ndarray, cam_b: np.ndarray) -> float:
    """Paper Eq. 12 on the flattened maps: ``a·b / (‖a‖ ‖b‖)``; identical → 1, disjoint → 0.

    Zero maps (see the module docstring): both zero → 1.0, exactly one zero → 0.0; never NaN.
    """
    a = np.asarray(cam_a, dtype=np.float64).ravel()
    b = np.asarray(cam_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"expected maps of equal size, got {np.shape(cam_a)} and {np.shape(cam_b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("expected finite maps, got NaN or inf")
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 and norm_b == 0.0:
        return 1.0
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    # Round-off can put identical maps a hair above 1.
    return float(np.clip(np.dot(a, b) / (norm_a * norm_b), -1.0, 1.0))


def lung_share(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the CAM's mass inside the lung mask: all inside → 1, all outside → 0; zero map → NaN.

    A uniform map scores the mask's area fraction (``mask.mean()``): that is chance level.
    """
    values = np.asarray(cam, dtype=np.float64)
    inside = np.asarray(mask, dtype=bool)
    if values.shape != inside.shape:
        raise ValueError(f"expected a mask of the map's shape {values.shape}, got {inside.shape}")
    if not np.isfinite(values).all():
        raise ValueError("expected a finite map, got NaN or inf")
    if (values < 0).any():
        raise ValueError(f"expected a non-negative map (Grad-CAM is ReLU'd), got minimum {values.min():.3g}")
    total = float(values.sum())
    if total == 0.0:
        return math.nan
    return float(values[inside].sum() / total)


@dataclass(frozen=True)
class Setting:
    """One attack cell of the run whose adversarial images were mapped (the run's cell fields)."""

    library: str
    attack: str
    eps: float
    steps: int
    alpha: float
    random_start: bool
    seed: int
    params: str = ""  # the attack's parameters as the run recorded them (JSON; "" in older runs)

    @property
    def label(self) -> str:
        return f"{library_label(self.library)} {attack_label(self.attack, self.steps, self.random_start)} @ {eps_label(self.eps)}"


def image_rows(
    setting: Setting,
    samples: pd.DataFrame,
    pred_adv: np.ndarray,
    cam_clean: np.ndarray,
    cam_adv: np.ndarray,
    masks: Sequence[np.ndarray | None],
    pred_adv_run: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per image for one attack setting (columns :data:`ROW_COLUMNS`).

    ``samples`` holds ``sample, image, label, class_name, pred_clean`` per image (as in the run's
    ``clean.parquet``); ``cam_clean``/``cam_adv`` are ``[N, H, W]``; ``masks`` a bool ``[H, W]`` lung
    mask per image, or None where the data set has none (lung shares are then NaN).
    ``pred_adv_run`` is what the run recorded for these samples; ``reproduced`` says whether the
    regenerated prediction equals it (missing when not given).
    """
    n = len(samples)
    pred_adv = np.asarray(pred_adv)
    if not (len(pred_adv) == len(cam_clean) == len(cam_adv) == len(masks) == n):
        raise ValueError(
            f"expected {n} predictions, clean maps, adversarial maps and masks, got "
            f"{len(pred_adv)}, {len(cam_clean)}, {len(cam_adv)}, {len(masks)}"
        )
    missing = [
        c for c in ("sample", "image", "label", "class_name", "pred_clean") if c not in samples.columns
    ]
    if missing:
        raise ValueError(f"samples lack column(s) {missing}")

    def share(cam: np.ndarray, mask: np.ndarray | None) -> float:
        return math.nan if mask is None else lung_share(cam, mask)

    pred_clean = samples["pred_clean"].to_numpy()
    recorded = pd.array(
        [pd.NA] * n if pred_adv_run is None else np.asarray(pred_adv_run, dtype=np.int64), dtype="Int64"
    )
    frame = pd.DataFrame(
        {
            "library": setting.library,
            "attack": setting.attack,
            "eps": float(setting.eps),
            "steps": int(setting.steps),
            "alpha": float(setting.alpha),
            "random_start": bool(setting.random_start),
            "seed": int(setting.seed),
            "sample": samples["sample"].to_numpy(),
            "image": samples["image"].astype(str).to_numpy(),
            "label": samples["label"].to_numpy(),
            "class_name": samples["class_name"].astype(str).to_numpy(),
            "pred_clean": pred_clean,
            "pred_adv": pred_adv.astype(np.int64),
            "pred_adv_run": recorded,
            "reproduced": pd.array(
                [pd.NA] * n if pred_adv_run is None else recorded == pred_adv, dtype="boolean"
            ),
            "flipped": pred_adv != pred_clean,
            "sc": [cosine_similarity(a, b) for a, b in zip(cam_clean, cam_adv, strict=True)],
            "lung_share_clean": [share(c, m) for c, m in zip(cam_clean, masks, strict=True)],
            "lung_share_adv": [share(c, m) for c, m in zip(cam_adv, masks, strict=True)],
            "mask_area": [math.nan if m is None else float(np.mean(m)) for m in masks],
            "zero_map_clean": [not bool(np.any(c > 0)) for c in cam_clean],
            "zero_map_adv": [not bool(np.any(c > 0)) for c in cam_adv],
        }
    )
    return frame[list(ROW_COLUMNS)]


# --- aggregation -------------------------------------------------------------------------------------


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (NaNs dropped); ``(nan, nan)`` for fewer than 2 values.

    A fresh ``numpy.random.Generator(seed)`` per call: a group's interval does not depend on which
    groups were computed before it. With one value every resample is that value, and a zero-width
    interval would look like certainty, hence NaN.
    """
    if not 0 < level < 1:
        raise ValueError(f"expected level in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"expected resamples >= 1, got {resamples}")
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    if len(data) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return (float(low), float(high))


def _nanmean(values: pd.Series) -> float:
    data = values.to_numpy(dtype=np.float64)
    data = data[~np.isnan(data)]
    return float(data.mean()) if len(data) else math.nan


def summarize(
    frame: pd.DataFrame, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """Per true class × library × attack × eps × subset (all / flipped / not flipped): ``n``, mean Sc
    with a percentile bootstrap CI, mean lung share clean and adversarial, the paired mean change
    (adversarial − clean) with its bootstrap CI, the mean mask area (the lung share of a uniform map),
    the number of rows with a zero map, and of regenerated predictions that differ from the run's.

    Lung-share means skip NaNs (no mask, or a zero map). Subsets with no images are left out.
    """
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"expected Grad-CAM rows (reports.gradcam.ROW_COLUMNS), missing {missing}")
    keys = ["label", "class_name", "library", "attack", "steps", "random_start", "eps"]
    out: list[dict[str, Any]] = []
    for key, group in frame.groupby(keys, sort=False):
        base = dict(zip(keys, key, strict=True))
        for subset in SUBSETS:
            part = group if subset == "all" else group[group["flipped"].astype(bool) == (subset == "flipped")]
            if part.empty:
                continue
            delta = (part["lung_share_adv"] - part["lung_share_clean"]).to_numpy(dtype=np.float64)
            sc_low, sc_high = bootstrap_mean_ci(part["sc"].to_numpy(), level, resamples, seed)
            d_low, d_high = bootstrap_mean_ci(delta, level, resamples, seed)
            reproduced = part["reproduced"].astype("boolean")
            out.append(
                {
                    **base,
                    "eps_label": eps_label(float(base["eps"])),
                    "subset": subset,
                    "n": len(part),
                    "sc_mean": float(part["sc"].mean()),
                    "sc_ci_low": sc_low,
                    "sc_ci_high": sc_high,
                    "lung_share_clean": _nanmean(part["lung_share_clean"]),
                    "lung_share_adv": _nanmean(part["lung_share_adv"]),
                    "lung_delta": _nanmean(pd.Series(delta)),
                    "lung_delta_ci_low": d_low,
                    "lung_delta_ci_high": d_high,
                    "mask_area": _nanmean(part["mask_area"]),
                    "zero_maps": int((part["zero_map_clean"] | part["zero_map_adv"]).sum()),
                    "not_reproduced": int((~reproduced).fillna(False).sum()),
                }
            )
    summary = pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))
    if summary.empty:
        return summary
    order = summary.assign(
        _lib=summary["library"].map(library_sort_key),
        _subset=summary["subset"].map(SUBSETS.index),
    ).sort_values(["label", "_lib", "attack", "eps", "_subset"], kind="stable")
    return order.drop(columns=["_lib", "_subset"]).reset_index(drop=True)


# --- figures -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CamPanel:
    """One row of a figure grid: the image, both maps, the perturbation, and what to print above them."""

    image: np.ndarray  # [H, W] grey in [0, 1]
    cam_clean: np.ndarray  # [H, W] in [0, 1]
    cam_adv: np.ndarray
    perturbation: np.ndarray  # [H, W] (x_adv - x) averaged over channels, divided by eps: in [-1, 1]
    mask: np.ndarray | None
    titles: tuple[str, str, str, str]


def panel_titles(row: Mapping[str, Any], classes: Sequence[str]) -> tuple[str, str, str, str]:
    """Titles for a figure row from one :func:`image_rows` row: Sc and the lung shares in them."""

    def name(i: Any) -> str:
        return classes[int(i)] if 0 <= int(i) < len(classes) else str(i)

    def share(v: Any, zero: Any) -> str:
        if bool(zero):
            return "n/a (zero map)"
        return "n/a (no mask)" if v is None or math.isnan(float(v)) else f"{float(v):.2f}"

    setting = f"{attack_label(str(row['attack']), int(row['steps']), bool(row['random_start']))} {eps_label(float(row['eps']))}"
    return (
        f"#{int(row['sample'])} true {name(row['label'])}",
        f"clean → {name(row['pred_clean'])}\nlung {share(row['lung_share_clean'], row['zero_map_clean'])}",
        f"adv → {name(row['pred_adv'])}\nlung {share(row['lung_share_adv'], row['zero_map_adv'])}",
        f"{setting}\nSc {float(row['sc']):.2f}",
    )


def figure_grid(panels: Sequence[CamPanel], title: str, out_path: str | Path, dpi: int = 72) -> Path:
    """A PNG grid, one row per panel: image | clean CAM | adversarial CAM | perturbation (× 1/eps).

    Maps are overlaid on the image (jet, half transparent); the lung mask is outlined in white.
    """
    if not panels:
        raise ValueError("expected at least one panel")
    rows = len(panels)
    fig, axes = plt.subplots(
        rows, 4, figsize=(8.4, 2.35 * rows + 0.5), squeeze=False, constrained_layout=True
    )
    for r, panel in enumerate(panels):
        for c in range(4):
            ax = axes[r, c]
            ax.set_axis_off()
            ax.set_title(panel.titles[c], fontsize=7)
            if c < 3:
                ax.imshow(panel.image, cmap="gray", vmin=0, vmax=1)
            if c == 1 or c == 2:
                ax.imshow(panel.cam_clean if c == 1 else panel.cam_adv, cmap="jet", vmin=0, vmax=1, alpha=0.5)
            if c == 3:
                ax.imshow(panel.perturbation, cmap="coolwarm", vmin=-1, vmax=1)
            if c < 3 and panel.mask is not None and panel.mask.any() and not panel.mask.all():
                ax.contour(panel.mask.astype(float), levels=[0.5], colors="white", linewidths=0.6)
    fig.suptitle(title, fontsize=9)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi)
    plt.close(fig)
    # Sign-noise panels and jet overlays barely compress as RGB PNG (~1.5 MB a figure, embedded in
    # report.html); a 256-colour palette keeps them legible at a fraction of that.
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256).save(out, optimize=True)
    return out


# --- the report's section ----------------------------------------------------------------------------

_PAPER_CLAIM = (
    "The paper reports, for PGD at eps = 0.1/255, Sc ≈ 0.79 for COVID (attention stays on the lungs) and "
    "Sc ≪ 0.5 for Normal and Lung Opacity (attention moves to the background), from pictures of single images."
)


def _png(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{html.escape(format_value(v))}</td>'
            if isinstance(v, str)
            else f"<td>{html.escape(format_value(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ci(low: float, high: float) -> str:
    return "" if math.isnan(low) else f"[{low:.2f}, {high:.2f}]"


def _display(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "true class": summary["class_name"],
            "library": summary["library"].map(library_label),
            "attack": [
                attack_label(a, s, r)
                for a, s, r in zip(summary["attack"], summary["steps"], summary["random_start"], strict=True)
            ],
            "eps": summary["eps_label"],
            "images": summary["subset"],
            "n": summary["n"],
            "mean Sc": summary["sc_mean"],
            "Sc 95% CI": [
                _ci(lo, hi) for lo, hi in zip(summary["sc_ci_low"], summary["sc_ci_high"], strict=True)
            ],
            "lung share clean": summary["lung_share_clean"],
            "lung share adv": summary["lung_share_adv"],
            "Δ lung share 95% CI": [
                _ci(lo, hi)
                for lo, hi in zip(summary["lung_delta_ci_low"], summary["lung_delta_ci_high"], strict=True)
            ],
            "mask area": summary["mask_area"],
            "zero maps": summary["zero_maps"],
        }
    )


def gradcam_section(
    summary: pd.DataFrame, figure_paths: Sequence[Path], meta: Mapping[str, Any] | None = None
) -> str:
    """The Grad-CAM part of ``report.html``: what was measured, the table, the figures (embedded).

    ``meta`` is ``RUN_DIR/gradcam/meta.json`` as written by ``harness/gradcam.py`` (target layer, its
    spatial size, sample size, reproduction check, cost); missing keys are simply not shown.
    """
    meta = dict(meta or {})
    parts = ['<div id="gradcam"><h3>Grad-CAM under attack: does attention leave the lungs?</h3>']
    facts = []
    if meta.get("target_layer"):
        grid = meta.get("feature_shape")
        size = meta.get("image_size")
        where = f" ({grid[0]}×{grid[1]} cells, upsampled to {size}×{size} px)" if grid and size else ""
        facts.append(
            f"target layer <code>{html.escape(str(meta['target_layer']))}</code>{html.escape(where)}"
        )
    if meta.get("per_class"):
        facts.append(
            f"the first {int(meta['per_class'])} test images of each true class in the run's order"
            + (f" ({int(meta['n_images'])} images)" if meta.get("n_images") else "")
        )
    parts.append(
        "<p>Grad-CAM (paper Eq. 10–11, the <code>grad-cam</code> package) for the class the model predicts, on "
        "the clean and on each library's adversarial image; Sc is the cosine similarity of the two flattened "
        "maps (Eq. 12), lung share the CAM mass inside the data set's lung mask (a uniform map scores the mask "
        "area: chance). CIs are percentile bootstrap (2,000 resamples) of the mean over images; "
        "Δ lung share is adversarial − clean, paired per image."
        + (f" Maps: {'; '.join(facts)}." if facts else "")
        + "</p>"
    )
    parts.append(
        f"<p>{html.escape(_PAPER_CLAIM)} Here the claim is tested per class, split by whether the "
        "prediction flipped.</p>"
    )
    grid = meta.get("feature_shape")
    if grid and max(grid) <= 3:
        parts.append(
            f"<p><b>Coarse maps:</b> at this image size the last block is {grid[0]}×{grid[1]}; each map has "
            f"{grid[0] * grid[1]} free values before upsampling, so Sc and lung share measure little more than "
            "which quadrant lights up (the paper's 224 px gives 7×7).</p>"
        )
    parts.append(
        "<p>Zero maps (raw CAM ≤ 0 or constant everywhere, all-zero after the package's min-max scaling): Sc is "
        "1 when both maps are zero and 0 when one is; their lung share is undefined and left out of the means; "
        "the <i>zero maps</i> column counts them.</p>"
    )
    check = meta.get("reproduction")
    if isinstance(check, Mapping):
        compared, differ = int(check.get("compared", 0)), int(check.get("differ", 0))
        if differ == 0:
            parts.append(
                f"<p>Reproduction check: the regenerated adversarial predictions equal the run's for all "
                f"{compared} image × setting pairs.</p>"
            )
        else:
            examples = html.escape(", ".join(str(e) for e in check.get("examples", [])[:10]))
            parts.append(
                f'<p style="background:#fbd3c4"><b>Reproduction check failed:</b> {differ} of {compared} regenerated '
                f"adversarial predictions differ from the run's ({examples}). The run is not reproducible for "
                "these; their maps describe other adversarial images than the ones scored in the tables.</p>"
            )
        if check.get("clean_differ"):
            parts.append(
                '<p style="background:#fbd3c4"><b>Clean predictions differ</b> from the run\'s for samples '
                f"{html.escape(str(check['clean_differ']))}: another checkpoint, other images or another device.</p>"
            )
    for failure in meta.get("failures", []):
        parts.append(f"<p><b>Not mapped:</b> {html.escape(str(failure))}</p>")
    seconds = meta.get("seconds")
    if isinstance(seconds, Mapping) and seconds.get("total") is not None:
        run_attack = meta.get("run_attack_seconds")
        versus = f" (the run's attacks: {float(run_attack):.0f} s)" if run_attack else ""
        parts.append(
            f'<p class="small">Cost: {float(seconds["total"]):.1f} s in all{versus}: regenerating x_adv '
            f"{float(seconds.get('attacks', 0)):.1f} s, Grad-CAM {float(seconds.get('cam', 0)):.1f} s, figures "
            f"{float(seconds.get('figures', 0)):.1f} s.</p>"
        )
    if summary.empty:
        parts.append("<p>No Grad-CAM rows.</p>")
    else:
        parts.append(_html_table(_display(summary)))
    for path in figure_paths:
        # Files are named "<label>__<class>.png" (harness/gradcam.py) so they sort in class order.
        heading = Path(path).stem.split("__")[-1].replace("_", " ")
        parts.append(f"<h4>{html.escape(heading)}</h4>{_png(Path(path), heading)}")
    parts.append("</div>")
    return "".join(parts)


def report_block(run_dir: str | Path) -> str:
    """The Grad-CAM part of the report for ``run_dir``: the section if ``gradcam/gradcam.parquet``
    exists, else a line saying how to compute it."""
    run_dir = Path(run_dir)
    folder = run_dir / GRADCAM_DIR
    rows_path = folder / ROWS_FILE
    if not rows_path.is_file():
        return (
            '<div id="gradcam"><h3>Grad-CAM under attack</h3><p>Not computed — run '
            f"<code>python -m advparity gradcam {html.escape(str(run_dir))}</code> "
            "(add <code>--per-class N</code> for more images), then the report again.</p></div>"
        )
    meta_path = folder / META_FILE
    meta = read_json_object(meta_path, "Grad-CAM record") if meta_path.is_file() else {}
    figures = sorted((folder / FIGURES_DIR).glob("*.png"))
    try:
        summary = summarize(pd.read_parquet(rows_path))
    except ValueError as err:
        # A file from another advparity version must not sink the whole report; say so instead.
        log.warning("cannot summarise %s: %s", rows_path, err)
        return (
            f'<div id="gradcam"><h3>Grad-CAM under attack</h3><p><b>Could not be read</b> '
            f"({html.escape(str(err))}) — rerun <code>python -m advparity gradcam {html.escape(str(run_dir))}</code>."
            "</p></div>"
        )
    return gradcam_section(summary, figures, meta)
