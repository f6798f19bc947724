"""The Grad-CAM figures: :func:`figure_grid` draws one PNG grid, a row per :class:`CamPanel` — image |
clean CAM | adversarial CAM | perturbation — under the titles :func:`panel_titles` makes from a
:func:`reports.gradcam.image_rows` row.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI machines and servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from advparity.reports.schema import eps_label  # noqa: E402
from PIL import Image  # noqa: E402


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

    setting = f"{row['attack_label']} {eps_label(float(row['eps']), str(row.get('norm', 'linf')))}"
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
