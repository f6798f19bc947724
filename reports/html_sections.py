"""The sections of ``report.html``, one function each, returning HTML; :func:`reports.html.write_report`
puts them in order (:mod:`reports.html` says which comes first and why). Their leading underscores mark
them as the page's own: only ``reports.html`` (and its tests) call them.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from advparity.reports import paper
from advparity.reports.crosscheck import MISMATCH_KINDS, RULES, VERDICTS
from advparity.reports.sanity import Finding
from advparity.reports.schema import REFERENCE, eps_label, library_label, ordered_libraries
from advparity.reports.summary import SEED_POLICY
from advparity.reports.tablefiles import format_value
from advparity.reports.tables import TABLE_TITLES

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

# Verdict marks beside the colour, so the matrix also reads in grey scale.
VERDICT_MARKS: dict[str, str] = {
    "agree": "✓",
    "inconclusive": "?",
    "disagree": "✗",
    "invalid": "!",
    "unavailable": "–",
}


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


def cell_anchor(library: str, attack_label: str, eps: float) -> str:
    """The HTML id of a verdict's row, which its matrix cell links to: ``v-art-pgd-10-0.1``."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in f"{library}-{attack_label}".lower())
    return f"v-{'-'.join(part for part in slug.split('-') if part)}-{eps * 255:.6g}"


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
    # L∞ eps are shown in pixel levels (×1/255), L2 eps as the plain numbers a preset writes.
    norms = dict(
        zip(verdict_frame["attack_label"].astype(str), verdict_frame["norm"].astype(str), strict=True)
    )
    attack_head = "".join(
        f'<th colspan="{len(grid)}" class="group">{html.escape(label)}'
        f"{'' if norms[label] == 'linf' else ' (eps)'}</th>"
        for label, grid in columns
    )
    eps_head = "".join(
        ('<th class="group">' if i == 0 else "<th>") + f"{e * 255 if norms[label] == 'linf' else e:.3g}</th>"
        for label, grid in columns
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
