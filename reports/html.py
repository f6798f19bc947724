"""One self-contained ``report.html`` (figures embedded as base64 PNG, no external links), assembled.

The first screen answers what a user opened the report for: three lines in words, the verdict matrix
(library × attack × eps, coloured by verdict, each cell linking to its reason) and the robustness
curves. The paper's tables come next; the long tables (every verdict's reason, the rules, 8-bit
survival, the agreement numbers, the manifest) follow collapsed under ``<details>``.

The sections are built in :mod:`reports.html_sections`; the three lines, the terminal summary and the
exit code are :mod:`reports.verdict_text`'s.
"""

from __future__ import annotations

import base64
import html
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from advparity.reports import figures
from advparity.reports.crosscheck import run_verdicts
from advparity.reports.gradcam_html import report_block
from advparity.reports.guaranteed_html import guaranteed_section
from advparity.reports.html_sections import (
    _findings_section,
    _first_screen,
    _long_tables_section,
    _manifest_section,
    _paper_section,
    _rules_section,
    _tables_section,
    _verdict_details,
)
from advparity.reports.invariants_html import invariants_section
from advparity.reports.load import Run
from advparity.reports.optima_html import optima_section
from advparity.reports.sanity import Finding, run_all
from advparity.reports.schema import check_manifest, naming_libraries
from advparity.reports.summary import cell_summary
from advparity.reports.tables import build_tables, choose_eps

# Re-exported (see __all__): tests/mutation/suite.py imports exit_code from here.
from advparity.reports.verdict_text import exit_code, summary_lines

__all__ = ["exit_code", "find_history", "write_report"]

log = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td.text { text-align: left; max-width: 48em; }
.counts span { display: inline-block; padding: 0.2em 0.6em; margin-right: 0.4em; border-radius: 3px; }
img { max-width: 100%; } pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.small { font-size: 0.85em; color: #555; }
.summary { font-size: 1.02em; line-height: 1.45; margin: 0.4em 0 0.8em; padding-left: 1.2em; }
table.matrix { font-size: 0.78em; line-height: 1.15; } table.matrix td { text-align: center; padding: 0; min-width: 3.1em; }
table.matrix td a { display: block; padding: 0.2em 0.25em; color: #222; text-decoration: none; }
table.matrix td a:hover { outline: 2px solid #555; } table.matrix th.row { text-align: left; }
table.matrix td.none { background: #fafafa; } table.matrix .group { border-left: 2px solid #777; } table.matrix thead th { text-align: center; }
h1 { margin: 0.2em 0; } p.counts { margin: 0.3em 0 0.6em; }
details { margin: 0.5em 0; } summary { cursor: pointer; font-weight: 600; }
tr:target { outline: 3px solid #333; }
#first-screen img { max-height: 240px; }
"""

# A cell link lands on a row inside a collapsed <details>: open it first. Inline (the file stays
# self-contained) and tiny; the report reads fine without it.
_OPEN_TARGET_JS = """
function openTarget() {
  var el = location.hash ? document.getElementById(location.hash.slice(1)) : null;
  for (var d = el; d; d = d.parentElement) { if (d.tagName === "DETAILS") { d.open = true; } }
  if (el) { el.scrollIntoView(); }
}
window.addEventListener("hashchange", openTarget);
window.addEventListener("DOMContentLoaded", openTarget);
"""


def find_history(run: Run) -> Path | None:
    """``history.csv`` next to the checkpoint (as the manifest names it), else ``run_dir/../model/history.csv``."""
    candidates = []
    checkpoint = run.manifest.get("checkpoint")
    if isinstance(checkpoint, Mapping) and checkpoint.get("path"):
        ckpt = Path(str(checkpoint["path"]))
        candidates += [ckpt.parent / "history.csv", run.run_dir / ckpt.parent / "history.csv"]
    candidates.append(run.run_dir.parent / "model" / "history.csv")
    for path in candidates:
        if path.is_file():
            return path
    return None


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_report(
    run: Run,
    out_path: str | Path | None = None,
    history: str | Path | None = None,
    *,
    verdict_frame: pd.DataFrame | None = None,
    findings: Sequence[Finding] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    figures_dir: str | Path | None = None,
) -> Path:
    """Write the self-contained HTML report (default ``run.run_dir / "report.html"``) and return its path.

    ``history`` is a ``history.csv`` for the training curves (default: :func:`find_history`).
    Precomputed ``verdict_frame``/``findings``/``tables`` are reused when given; figures are written to
    ``figures_dir`` when given (to keep them), else to a temporary directory, and embedded either way.
    """
    with naming_libraries(run.libraries):
        manifest = check_manifest(run.manifest)
        classes = list(manifest["classes"])
        v = run_verdicts(run) if verdict_frame is None else verdict_frame
        f = run_all(run.results, run.clean) if findings is None else list(findings)
        eps = choose_eps(run.results)
        t = (
            build_tables(run.results, run.clean, manifest, eps=eps, verdict_frame=v)
            if tables is None
            else tables
        )
        history_path = Path(history) if history is not None else find_history(run)
        out = Path(out_path) if out_path is not None else run.run_dir / "report.html"
        with tempfile.TemporaryDirectory() as tmp:
            fig_dir = Path(figures_dir) if figures_dir is not None else Path(tmp)
            paths = figures.make_figures(run.results, classes, eps, fig_dir, history_csv=history_path)
            images = {name: _image(path, name) for name, path in paths.items()}
        title = f"advparity report — {manifest.get('preset', '')} — {manifest.get('created_at', '')}"
        cells = cell_summary(run.results)  # the curves' numbers: the summary and the matrix quote them
        lines = summary_lines(v, f, cells, run.clean, eps, run.libraries_not_run)
        document = "".join(
            [
                '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
                f"<script>{_OPEN_TARGET_JS}</script></head><body>",
                f"<h1>{html.escape(title)}</h1>",
                f'<p class="small">{len(run.clean)} test samples, {run.results["sample"].nunique()} attacked; '
                f"config hash {html.escape(str(manifest.get('config_hash', '')))}.</p>",
                _first_screen(v, lines, cells, images),
                _tables_section(t, eps, images),
                # The paper's Grad-CAM claim, measured: a part of the paper comparison (RUN_DIR/gradcam/).
                _paper_section(t, report_block(run.run_dir)),
                optima_section(run.run_dir),
                invariants_section(run.results),
                guaranteed_section(run.run_dir),
                _verdict_details(v),
                _rules_section(),
                _findings_section(f),
                _long_tables_section(t, images),
                _manifest_section(manifest, images.get("training")),
                "</body></html>",
            ]
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document, encoding="utf-8")
        log.info("wrote %s", out)
        return out
