"""One self-contained ``report.html`` (figures embedded as base64 PNG, no external links), plus the terminal summary.

Order of the page: the verdict summary first (what a user opened it for), then the rules the verdicts
follow, the sanity flags, the figures and Tables 2–6, the paper comparison, and last the manifest and
how to reproduce the run.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reports import figures, gradcam, paper
from reports.crosscheck import FAILING_VERDICTS, MISMATCH_KINDS, RULES, VERDICTS, verdicts
from reports.load import Run
from reports.sanity import Finding, run_all
from reports.schema import check_manifest, eps_label, library_label
from reports.summary import SEED_POLICY
from reports.tables import TABLE_TITLES, build_tables, choose_eps, format_value

log = logging.getLogger(__name__)

VERDICT_COLOURS: dict[str, str] = {
    "agree": "#d8f0d8",
    "inconclusive": "#f6ecc0",
    "disagree": "#fbd3c4",
    "invalid": "#f3c1c1",
}
FINDING_COLOURS: dict[str, str] = {
    "pass": "#d8f0d8",
    "flag": "#fbd3c4",
    "note": "#fff3c4",
    "not tested": "#eeeeee",
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td.text { text-align: left; max-width: 48em; }
.counts span { display: inline-block; padding: 0.2em 0.6em; margin-right: 0.4em; border-radius: 3px; }
img { max-width: 100%; } pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.small { font-size: 0.85em; color: #555; }
"""


def exit_code(verdict_frame: pd.DataFrame) -> int:
    """1 if any verdict is ``disagree`` or ``invalid`` (DESIGN.md CLI exit codes), else 0."""
    return int(bool(verdict_frame["verdict"].isin(FAILING_VERDICTS).any()))


def verdict_summary_text(verdict_frame: pd.DataFrame) -> str:
    """A few lines for the terminal: counts by verdict, then the reason of every row that does not agree."""
    counts = verdict_frame["verdict"].value_counts()
    head = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS)
    on_xadv = int((verdict_frame["judged_on"] == "x_adv").sum())
    lines = [
        f"Cross-check: {head} ({len(verdict_frame)} verdicts; {on_xadv} judged on x_adv itself, "
        f"{len(verdict_frame) - on_xadv} on statistics)."
    ]
    bad = verdict_frame[verdict_frame["verdict"] != "agree"]
    if bad.empty:
        lines.append("Every library agrees with the reference at every attack and eps.")
    for row in bad.itertuples():
        lines.append(f"  {str(row.verdict).upper()}: {row.reason}")
    return "\n".join(lines)


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


def _esc(value: Any) -> str:
    return html.escape(format_value(value))


def _table(
    frame: pd.DataFrame, text_columns: Sequence[str] = (), row_colours: Sequence[str] | None = None
) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        style = f' style="background:{row_colours[i]}"' if row_colours is not None else ""
        cells = "".join(
            f'<td class="text">{_esc(v)}</td>'
            if col in text_columns or isinstance(v, str)
            else f"<td>{_esc(v)}</td>"
            for col, v in zip(frame.columns, row, strict=True)
        )
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _verdict_section(verdict_frame: pd.DataFrame) -> str:
    counts = verdict_frame["verdict"].value_counts()
    badges = "".join(
        f'<span style="background:{VERDICT_COLOURS[v]}">{int(counts.get(v, 0))} {v}</span>' for v in VERDICTS
    )
    shown = pd.DataFrame(
        {
            "library": verdict_frame["library"].map(library_label),
            "attack": verdict_frame["attack_label"],
            "eps": verdict_frame["eps_label"],
            "verdict": verdict_frame["verdict"],
            "x_adv differs / n": [
                f"{d} / {n}" if j == "x_adv" else "not compared"
                for d, n, j in zip(
                    verdict_frame["samples_xadv_differ"],
                    verdict_frame["n"],
                    verdict_frame["judged_on"],
                    strict=True,
                )
            ],
            "Δacc pp": verdict_frame["delta_acc_pp"],
            "predictions differ / n": [
                f"{d} / {n}" for d, n in zip(verdict_frame["n_differ"], verdict_frame["n"], strict=True)
            ],
            "reason": verdict_frame["reason"],
        }
    )
    colours = [VERDICT_COLOURS.get(v, "#fff") for v in verdict_frame["verdict"]]
    bad = verdict_frame[verdict_frame["verdict"] != "agree"]
    if bad.empty:
        headline = "<p>Every library agrees with the reference at every attack and eps.</p>"
    else:
        # The rows that need action, above the full table, so nobody has to scan for the colour.
        items = "".join(
            f"<li><b>{html.escape(str(r.verdict))}</b>: {html.escape(str(r.reason))}</li>"
            for r in bad.itertuples()
        )
        headline = f"<ul>{items}</ul>"
    return (
        '<section id="verdicts"><h2>Verdicts: do the libraries agree with the reference?</h2>'
        f'<p class="counts">{badges}</p>{headline}'
        + _table(shown, text_columns=("reason",), row_colours=colours)
        + "</section>"
    )


def _rules_section() -> str:
    items = "".join(f"<li>{html.escape(rule)}</li>" for rule in RULES)
    kinds = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in MISMATCH_KINDS.items())
    return (
        '<section id="rules"><h2>Cross-check rules</h2>'
        f"<ol>{items}</ol><p>Each sample's x_adv is classified against the exact x_adv its library must return:</p>"
        f"<ul>{kinds}</ul><p>{html.escape(SEED_POLICY)}</p></section>"
    )


def _findings_section(findings: Sequence[Finding]) -> str:
    statuses = [
        "not tested" if not f.tested else "pass" if f.passed else ("note" if f.severity == "info" else "flag")
        for f in findings
    ]
    frame = pd.DataFrame(
        {
            "check": [f.name for f in findings],
            "status": statuses,
            "severity": [f.severity for f in findings],
            "finding": [f.message for f in findings],
            "what it means": [f.explanation for f in findings],
        }
    )
    colours = [FINDING_COLOURS[s] for s in statuses]
    return (
        '<section id="sanity"><h2>Sanity checks</h2>'
        + _table(frame, text_columns=("finding", "what it means"), row_colours=colours)
        + "</section>"
    )


def _tables_section(tables: Mapping[str, pd.DataFrame], eps: float, images: Mapping[str, str]) -> str:
    parts = ['<section id="tables"><h2>Robustness: the paper\'s tables for every library</h2>']
    parts.append(
        f"<p>Tables 2–4 and the confusion matrices are at eps = {html.escape(eps_label(eps))} "
        "(the paper's 0.1/255 when this run has it, else the nearest eps).</p>"
    )
    for key in ("table2_per_class", "table3_asr", "table4_accuracy", "table5_fgsm_sweep", "table6_pgd_sweep"):
        parts.append(f"<h3>{html.escape(TABLE_TITLES[key])}</h3>{_table(tables[key])}")
    if "robustness" in images:
        parts.append(f"<h3>Robustness curves</h3>{images['robustness']}")
    if "confusion" in images:
        parts.append(f"<h3>Confusion matrices at {html.escape(eps_label(eps))}</h3>{images['confusion']}")
    parts.append(
        f"<h3>{html.escape(TABLE_TITLES['eight_bit_survival'])}</h3>{_table(tables['eight_bit_survival'])}"
    )
    if "linf_to_ref" in images:
        parts.append(f"<h3>Distance to the reference</h3>{images['linf_to_ref']}")
    parts.append(
        f"<h3>Agreement table (all numbers)</h3>{_table(tables['agreement'], text_columns=('reason',))}"
    )
    parts.append("</section>")
    return "".join(parts)


def _paper_section(tables: Mapping[str, pd.DataFrame], gradcam_html: str = "") -> str:
    return (
        '<section id="paper"><h2>Paper comparison</h2>'
        f"<p>{html.escape(paper.CITATION)}. The paper's own inconsistencies (kept as published) are listed in "
        "<code>reports/paper.py</code>. A large difference is a finding about the model, not noise to explain "
        "away.</p>"
        + (
            _table(tables["paper_comparison"], text_columns=("note",))
            if len(tables["paper_comparison"])
            else "<p>Not shown: this run's classes are not the paper's "
            f"({html.escape(', '.join(paper.CLASSES))}), so its numbers are not comparable with the paper's.</p>"
        )
        + gradcam_html
        + "</section>"
    )


def _seeds_text(seeds: Any) -> str:
    """``[0, 1]`` or the runner's ``{"reference": [0, 1], "libraries": [0]}`` as one line."""
    if isinstance(seeds, Mapping):
        return "; ".join(f"{k}: {', '.join(str(s) for s in v)}" for k, v in seeds.items())
    if isinstance(seeds, (list, tuple)):
        return ", ".join(str(s) for s in seeds)
    return "" if seeds is None else str(seeds)


def _manifest_section(manifest: Mapping[str, Any], history_image: str | None) -> str:
    checkpoint = manifest.get("checkpoint", {})
    checkpoint = checkpoint if isinstance(checkpoint, Mapping) else {}
    key_rows = pd.DataFrame(
        {
            "item": ["preset", "created", "config hash", "seeds", "checkpoint", "checkpoint sha256"],
            "value": [
                str(manifest.get("preset", "")),
                str(manifest.get("created_at", "")),
                str(manifest.get("config_hash", "")),
                _seeds_text(manifest.get("seeds")),
                str(checkpoint.get("path", "")),
                str(checkpoint.get("sha256", "")),
            ],
        }
    )

    def kv(mapping: Any) -> pd.DataFrame:
        mapping = mapping if isinstance(mapping, Mapping) else {}
        return pd.DataFrame({"name": list(mapping), "value": [str(v) for v in mapping.values()]})

    command = manifest.get("command")
    if command:
        text = command if isinstance(command, str) else " ".join(str(c) for c in command)
        reproduce = f"<pre>{html.escape(text)}</pre>"
    else:
        reproduce = (
            "<p>The manifest records no command; rerun the preset "
            f"<code>{html.escape(str(manifest.get('preset', '')))}</code> with the configuration below "
            "(same config hash, checkpoint sha256 and seeds).</p>"
        )
    parts = [
        '<section id="manifest"><h2>Manifest</h2>',
        _table(key_rows, text_columns=("item", "value")),
        "<h3>Versions</h3>",
        _table(kv(manifest.get("versions")), text_columns=("name", "value")),
        "<h3>Hardware</h3>",
        _table(kv(manifest.get("hardware")), text_columns=("name", "value")),
        f"<h3>Configuration</h3><pre>{html.escape(json.dumps(manifest.get('config', {}), indent=2, sort_keys=True, default=str))}</pre>",
        f"<h3>How to reproduce</h3>{reproduce}",
    ]
    if history_image:
        parts.append(f"<h3>Training curves</h3>{history_image}")
    parts.append("</section>")
    return "".join(parts)


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
    manifest = check_manifest(run.manifest)
    classes = list(manifest["classes"])
    v = verdicts(run.results) if verdict_frame is None else verdict_frame
    f = run_all(run.results, run.clean) if findings is None else list(findings)
    eps = choose_eps(run.results)
    t = build_tables(run.results, run.clean, manifest, eps=eps, verdict_frame=v) if tables is None else tables
    history_path = Path(history) if history is not None else find_history(run)
    out = Path(out_path) if out_path is not None else run.run_dir / "report.html"
    with tempfile.TemporaryDirectory() as tmp:
        fig_dir = Path(figures_dir) if figures_dir is not None else Path(tmp)
        paths = figures.make_figures(run.results, classes, eps, fig_dir, history_csv=history_path)
        images = {name: _image(path, name) for name, path in paths.items()}
    title = f"advparity report — {manifest.get('preset', '')} — {manifest.get('created_at', '')}"
    document = "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="small">{len(run.clean)} test samples, {run.results["sample"].nunique()} attacked; '
            f"config hash {html.escape(str(manifest.get('config_hash', '')))}.</p>",
            _verdict_section(v),
            _rules_section(),
            _findings_section(f),
            _tables_section(t, eps, images),
            # The paper's Grad-CAM claim, measured: a part of the paper comparison (RUN_DIR/gradcam/).
            _paper_section(t, gradcam.report_block(run.run_dir)),
            _manifest_section(manifest, images.get("training")),
            "</body></html>",
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    log.info("wrote %s", out)
    return out
