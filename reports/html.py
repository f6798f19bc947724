"""One self-contained ``report.html`` (figures embedded as base64 PNG, no external links), plus the terminal summary.

The first screen answers what a user opened the report for: three lines in words, the verdict matrix
(library × attack × eps, coloured by verdict, each cell linking to its reason) and the robustness
curves. The paper's tables come next; the long tables (every verdict's reason, the rules, 8-bit
survival, the agreement numbers, the manifest) follow collapsed under ``<details>``.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from advparity.reports import figures, gradcam, paper
from advparity.reports.crosscheck import (
    FAILING_VERDICTS,
    MISMATCH_KINDS,
    RULES,
    VERDICTS,
    counts_text,
    run_verdicts,
)
from advparity.reports.load import Run
from advparity.reports.sanity import Finding, run_all
from advparity.reports.schema import REFERENCE, check_manifest, eps_label, library_label, ordered_libraries
from advparity.reports.stats import clopper_pearson_ci
from advparity.reports.summary import SEED_POLICY, cell_summary
from advparity.reports.tables import TABLE_TITLES, build_tables, choose_eps, format_value

log = logging.getLogger(__name__)

VERDICT_COLOURS: dict[str, str] = {
    "agree": "#d8f0d8",
    "inconclusive": "#f6ecc0",
    "disagree": "#fbd3c4",
    "invalid": "#f3c1c1",
    "unavailable": "#e2e2e2",
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

# Verdict marks beside the colour, so the matrix also reads in grey scale.
VERDICT_MARKS: dict[str, str] = {
    "agree": "✓",
    "inconclusive": "?",
    "disagree": "✗",
    "invalid": "!",
    "unavailable": "–",
}


def exit_code(verdict_frame: pd.DataFrame) -> int:
    """1 if any verdict is ``disagree`` or ``invalid`` (docs/design.md, Exit codes), else 0."""
    return int(bool(verdict_frame["verdict"].isin(FAILING_VERDICTS).any()))


def verdict_summary_text(verdict_frame: pd.DataFrame) -> str:
    """A few lines for the terminal: counts by verdict, then the reason of every row that does not agree —
    one line per library, attack and verdict, the first cell's reason in full and the other eps named."""
    counts = verdict_frame["verdict"].value_counts()
    head = counts_text(counts)
    on_xadv = int((verdict_frame["judged_on"] == "x_adv").sum())
    on_statistics = int((verdict_frame["judged_on"] == "statistics").sum())
    lines = [
        f"Cross-check: {head} ({len(verdict_frame)} verdicts; {on_xadv} judged on x_adv itself, "
        f"{on_statistics} on statistics)."
    ]
    bad = verdict_frame[verdict_frame["verdict"] != "agree"]
    if bad.empty:
        lines.append("Every library agrees with the reference at every attack and eps.")
    for _, group in bad.groupby(["library", "attack_label", "verdict"], sort=False):
        first = group.iloc[0]
        verdict = str(first["verdict"]).upper()
        if len(group) == 1:
            lines.append(f"  {verdict}: {first['reason']}")
            continue
        others = ", ".join(str(e) for e in group["eps_label"].iloc[1:])
        lines.append(f"  {verdict}: {first['reason']} [The same verdict at {others}.]")
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
    frame: pd.DataFrame,
    text_columns: Sequence[str] = (),
    row_colours: Sequence[str] | None = None,
    row_ids: Sequence[str] | None = None,
) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        style = f' style="background:{row_colours[i]}"' if row_colours is not None else ""
        style += f' id="{html.escape(row_ids[i])}"' if row_ids is not None else ""
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


def cell_anchor(library: str, attack_label: str, eps: float) -> str:
    """The HTML id of a verdict's row, which its matrix cell links to: ``v-art-pgd-10-0.1``."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in f"{library}-{attack_label}".lower())
    return f"v-{'-'.join(part for part in slug.split('-') if part)}-{eps * 255:.6g}"


def _short_reason(reason: str) -> str:
    """An error for the summary line: without the file paths Python puts in import errors."""
    return re.sub(r" \((?:/|[A-Za-z]:\\)[^)]*\)", "", reason)


def _arbiter_name(library: str) -> str:
    return "the reference" if library == REFERENCE else library_label(library)


def summary_lines(
    verdict_frame: pd.DataFrame,
    findings: Sequence[Finding],
    cells: pd.DataFrame,
    clean: pd.DataFrame,
    eps: float,
    libraries_not_run: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Three sentences for the top of the report: the verdicts, the model's robustness, the sanity checks
    and the libraries that did not run.

    ``cells`` is :func:`reports.summary.cell_summary` of the run (the numbers the curves plot);
    ``libraries_not_run`` is ``Run.libraries_not_run``.
    """
    ran = verdict_frame[verdict_frame["verdict"] != "unavailable"]
    libraries = [lib for lib in ordered_libraries(ran["library"]) if lib != REFERENCE]
    checked = ran[ran["library"] != REFERENCE]
    counts = checked["verdict"].value_counts()
    on_xadv = checked[checked["judged_on"] == "x_adv"]
    names = ", ".join(library_label(lib) for lib in libraries)
    bad = checked[checked["verdict"] != "agree"]
    if checked.empty:
        verdict_line = "No library besides the reference ran, so there is nothing to cross-check."
    elif bad.empty:
        verdict_line = (
            f"All {len(libraries)} libraries ({names}) agree with the reference in all {len(checked)} cells; "
            f"in the {len(on_xadv)} cells judged on x_adv itself, every sample's x_adv equals the one the "
            "library must return, up to float32 round-off."
        )
    else:
        tally = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS if counts.get(v, 0))
        # One phrase per library, attack and verdict: "secml-torch PGD-10 disagrees at 5 eps".
        groups = bad.groupby(["library", "attack_label", "verdict"], sort=False)
        shown = "; ".join(
            f"{library_label(str(lib))} {label}: {verdict}"
            + (f" at {g['eps_label'].iloc[0]}" if len(g) == 1 else f" at {len(g)} eps")
            for (lib, label, verdict), g in groups
        )
        verdict_line = f"Of {len(checked)} cells over {names}: {tally}. Not agreeing: {shown}."

    k, n = int((clean["pred_clean"] == clean["label"]).sum()), len(clean)
    low, high = clopper_pearson_ci(k, n) if n else (math.nan, math.nan)
    robustness = (
        f"Clean accuracy {100 * k / max(n, 1):.1f} % (95 % CI {100 * low:.1f}–{100 * high:.1f} %, n = {n})"
    )
    arbiter = cells[
        cells["library"] == (REFERENCE if (cells["library"] == REFERENCE).any() else cells["library"].iloc[0])
    ]
    at_eps = arbiter[np.isclose(arbiter["eps"], eps, rtol=1e-9, atol=0)]
    if len(at_eps):
        robustness += (
            f"; at eps {eps_label(eps)} {_arbiter_name(str(at_eps['library'].iloc[0]))} leaves "
            + ", ".join(f"{100 * r.acc:.1f} % under {r.attack_label}" for r in at_eps.itertuples())
        )
    top = arbiter[np.isclose(arbiter["eps"], arbiter["eps"].max(), rtol=1e-9, atol=0)]
    if len(top) and not np.isclose(top["eps"].iloc[0], eps, rtol=1e-9, atol=0):
        robustness += f"; at the largest eps {eps_label(float(top['eps'].iloc[0]))}, " + ", ".join(
            f"{100 * r.acc:.1f} % under {r.attack_label}" for r in top.itertuples()
        )
    robustness += "."

    flagged = [f.name for f in findings if f.tested and not f.passed and f.severity != "info"]
    passed = sum(1 for f in findings if f.tested and f.passed)
    untested = sum(1 for f in findings if not f.tested)
    notes = sum(1 for f in findings if f.tested and not f.passed and f.severity == "info")
    sanity = f"Sanity checks: {passed} pass, {len(flagged)} flagged" + (
        f" ({', '.join(flagged)})" if flagged else ""
    )
    sanity += (
        (f", {notes} note(s)" if notes else "")
        + (f", {untested} not tested by this grid" if untested else "")
        + "."
    )
    if libraries_not_run:
        sanity += (
            " Not run: "
            + "; ".join(
                f"{library_label(lib)} ("
                + ("installed but cannot run" if status.get("state") == "unavailable" else "not installed")
                + f": {_short_reason(str(status.get('reason', '')))})"
                for lib, status in libraries_not_run.items()
            )
            + "."
        )
    return [verdict_line, robustness, sanity]


def _matrix(verdict_frame: pd.DataFrame, cells: pd.DataFrame) -> str:
    """One row per library, one column per attack variant × eps; each cell coloured by its verdict, showing
    the accuracy under attack and linking to the verdict's reason. Rows per library (not per library ×
    attack) keep seven libraries on the first screen."""
    accuracy = {(str(r.library), str(r.attack_label), float(r.eps)): float(r.acc) for r in cells.itertuples()}
    by_key = {(str(r.library), str(r.attack_label), float(r.eps)): r for r in verdict_frame.itertuples()}
    columns = [
        (label, sorted(set(verdict_frame.loc[verdict_frame["attack_label"] == label, "eps"].astype(float))))
        for label in dict.fromkeys(verdict_frame["attack_label"].astype(str))
    ]
    attack_head = "".join(
        f'<th colspan="{len(grid)}" class="group">{html.escape(label)}</th>' for label, grid in columns
    )
    eps_head = "".join(
        f'<th class="group">{e * 255:.3g}</th>' if i == 0 else f"<th>{e * 255:.3g}</th>"
        for _, grid in columns
        for i, e in enumerate(grid)
    )
    rows = []
    for library in ordered_libraries(verdict_frame["library"]):
        tds = []
        for label, grid in columns:
            for i, e in enumerate(grid):
                group = ' class="group"' if i == 0 else ""
                row = by_key.get((library, label, e))
                if row is None:
                    # Not run: the library does not offer this attack (adv-lib has no FGSM).
                    tds.append(f'<td class="none{" group" if i == 0 else ""}" title="not run"></td>')
                    continue
                verdict = str(row.verdict)
                acc = accuracy.get((library, label, e), math.nan)
                text = (
                    f"{VERDICT_MARKS.get(verdict, '')} {100 * acc:.0f}"
                    if acc == acc
                    else VERDICT_MARKS.get(verdict, "")
                )
                tds.append(
                    f'<td{group} style="background:{VERDICT_COLOURS.get(verdict, "#fff")}">'
                    f'<a href="#{cell_anchor(library, label, e)}" title="{html.escape(verdict)}: '
                    f'{html.escape(str(row.reason))}">{html.escape(text)}</a></td>'
                )
        name = library_label(library) + (" (arbiter)" if library == REFERENCE else "")
        rows.append(f'<tr><th class="row">{html.escape(name)}</th>{"".join(tds)}</tr>')
    legend = " ".join(
        f'<span style="background:{VERDICT_COLOURS[v]}">{VERDICT_MARKS[v]} {v}</span>' for v in VERDICTS
    )
    return (
        '<table class="matrix" id="verdict-matrix"><thead>'
        f'<tr><th class="row" rowspan="2">library \\ eps (×1/255)</th>{attack_head}</tr>'
        f"<tr>{eps_head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p class="small counts">{legend} Colour: does the library compute the attack it claims? '
        "Number: accuracy under attack (%, as the curves). Click a cell for its reason.</p>"
    )


def _first_screen(
    verdict_frame: pd.DataFrame, lines: Sequence[str], cells: pd.DataFrame, images: Mapping[str, str]
) -> str:
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    curves = images.get("robustness", "<p>No robustness curves: the run has no attacked cells.</p>")
    return (
        '<section id="first-screen">'
        f'<ol class="summary" id="summary">{summary}</ol>'
        f"{_matrix(verdict_frame, cells)}"
        f'<div id="curves">{curves}</div>'
        "</section>"
    )


def _verdict_details(verdict_frame: pd.DataFrame) -> str:
    """Every verdict with its reason, collapsed; each row carries the id its matrix cell links to."""
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
    ids = [cell_anchor(str(r.library), str(r.attack_label), float(r.eps)) for r in verdict_frame.itertuples()]
    bad = verdict_frame[verdict_frame["verdict"] != "agree"]
    # The rows that need action stay open above the collapsed full table: one item per library, attack
    # and verdict (the first cell's reason; the other eps link to theirs).
    items = []
    for (library, label, verdict), group in bad.groupby(["library", "attack_label", "verdict"], sort=False):
        links = [
            f'<a href="#{cell_anchor(str(library), str(label), float(e))}">{html.escape(str(name))}</a>'
            for e, name in zip(group["eps"], group["eps_label"], strict=True)
        ]
        items.append(
            f"<li><b>{html.escape(str(verdict))}</b> at {', '.join(links)}: "
            f"{html.escape(str(group['reason'].iloc[0]))}</li>"
        )
    needs_action = f"<ul>{''.join(items)}</ul>" if items else ""
    return (
        '<section id="verdicts"><h2>Verdicts: every cell and its reason</h2>'
        f"{needs_action}<details><summary>All {len(verdict_frame)} verdicts with their reasons</summary>"
        + _table(shown, text_columns=("reason",), row_colours=colours, row_ids=ids)
        + "</details></section>"
    )


def _rules_section() -> str:
    items = "".join(f"<li>{html.escape(rule)}</li>" for rule in RULES)
    kinds = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in MISMATCH_KINDS.items())
    return (
        '<section id="rules"><details><summary>The cross-check rules the verdicts follow</summary>'
        f"<ol>{items}</ol><p>Each sample's x_adv is classified against the exact x_adv its library must return:</p>"
        f"<ul>{kinds}</ul><p>{html.escape(SEED_POLICY)}</p></details></section>"
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
    if "confusion" in images:
        parts.append(f"<h3>Confusion matrices at {html.escape(eps_label(eps))}</h3>{images['confusion']}")
    parts.append("</section>")
    return "".join(parts)


def _long_tables_section(tables: Mapping[str, pd.DataFrame], images: Mapping[str, str]) -> str:
    """The tables a reader opens when a verdict or a number needs explaining, collapsed."""
    survival = tables["eight_bit_survival"]
    parts = [
        '<section id="long-tables"><h2>Detail</h2>',
        f"<details><summary>{html.escape(TABLE_TITLES['eight_bit_survival'])} ({len(survival)} rows)</summary>"
        f"{_table(survival)}</details>",
    ]
    if "linf_to_ref" in images:
        parts.append(
            f"<details><summary>Distance to the reference</summary>{images['linf_to_ref']}</details>"
        )
    parts.append(
        f"<details><summary>Agreement table: every number behind the verdicts ({len(tables['agreement'])} rows)"
        f"</summary>{_table(tables['agreement'], text_columns=('reason',))}</details>"
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
    config = json.dumps(manifest.get("config", {}), indent=2, sort_keys=True, default=str)
    parts = [
        '<section id="manifest"><h2>Manifest and how to reproduce</h2>',
        _table(key_rows, text_columns=("item", "value")),
        f"<h3>How to reproduce</h3>{reproduce}",
        "<details><summary>Versions</summary>",
        _table(kv(manifest.get("versions")), text_columns=("name", "value")),
        "</details><details><summary>Hardware and CPU kernels</summary>",
        _table(kv(manifest.get("hardware")), text_columns=("name", "value")),
        f"</details><details><summary>Configuration</summary><pre>{html.escape(config)}</pre></details>",
    ]
    if history_image:
        parts.append(f"<details><summary>Training curves</summary>{history_image}</details>")
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
    v = run_verdicts(run) if verdict_frame is None else verdict_frame
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
            _paper_section(t, gradcam.report_block(run.run_dir)),
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
