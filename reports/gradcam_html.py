"""The Grad-CAM part of ``report.html``: what was measured, the :func:`reports.gradcam.summarize` table
and the figures, embedded — :func:`gradcam_section`, and :func:`report_block`, which reads them from
``RUN_DIR/gradcam/``.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from advparity.model.jsonfile import read_json_object
from advparity.reports.gradcam import FIGURES_DIR, GRADCAM_DIR, META_FILE, ROWS_FILE, summarize
from advparity.reports.schema import library_label
from advparity.reports.tablefiles import format_value

log = logging.getLogger(__name__)

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
            "attack": summary["attack_label"],
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
