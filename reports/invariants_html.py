"""The "invariants" part of ``report.html``: what every cell's own calls showed without a reference
(``reports/invariants.py``), then whether success grows with eps and targeted successes hit their target."""

from __future__ import annotations

import html

import pandas as pd
from advparity.reports.html_sections import _table
from advparity.reports.invariants import FALLING_LEVEL, checks, monotone_success, on_target
from advparity.reports.schema import eps_label, library_label

_EXPLANATION = (
    "Checked by the runner on each cell's first samples (those listed), with the library's own calls: no "
    "reference is involved. A deterministic attack costs two more calls on those samples (eps = 0, and the "
    "samples reversed as a batch of their own, compared with the cell's x_adv), a seeded one three (eps = 0 "
    "and the same call twice). A broken check makes the cell invalid. A check that cannot run for a library "
    "says why and does not fail the run."
)


def _eps(frame: pd.DataFrame, column: str = "eps") -> list[str]:
    return [eps_label(float(e), str(n)) for e, n in zip(frame[column], frame["norm"], strict=True)]


def _checks_table(found: pd.DataFrame) -> str:
    cells = found.groupby(["library", "attack_label", "norm", "eps", "seed"], sort=False)
    rows = []
    for (library, label, norm, eps, seed), cell in cells:
        row = {
            "library": library_label(str(library)),
            "attack": label,
            "eps": eps_label(float(eps), str(norm)),
            "seed": int(seed),
            "samples checked": cell["checked"].iloc[0],
        }
        for check in cell.itertuples(index=False):
            text = str(check.outcome)
            if check.outcome == "broken":
                text += f": samples {check.samples}: {check.evidence}"
            elif check.outcome == "not run":
                text = str(check.evidence)
            row[str(check.check)] = text
        rows.append(row)
    return _table(pd.DataFrame(rows))


def invariants_section(results: pd.DataFrame) -> str:
    """The section, or '' where the run recorded no invariants (made before they were checked)."""
    found = checks(results)
    if found.empty:
        return ""
    whys = found.drop_duplicates("check")[["check", "why"]]
    broken = found[found["outcome"] == "broken"]
    n_cells = found.groupby(["library", "attack_label", "norm", "eps", "seed"]).ngroups
    summary = (
        f"{len(broken)} broken check(s) in {broken.groupby(['library', 'attack_label', 'eps']).ngroups} cell(s)"
        if len(broken)
        else "no check broken"
    )
    parts = [
        '<section id="invariants"><h2>Invariants: what no reference is needed for</h2>',
        f'<p class="small">{html.escape(_EXPLANATION)}</p>',
        "<ul>"
        + "".join(
            f"<li><b>{html.escape(str(r.check))}</b>: {html.escape(str(r.why))}</li>"
            for r in whys.itertuples(index=False)
        )
        + "</ul>",
        f"<p>{n_cells} cell(s) checked: {html.escape(summary)}.</p>",
        f"<details{' open' if len(broken) else ''}><summary>every cell's checks</summary>"
        f"{_checks_table(found)}</details>",
    ]
    parts.append(_monotone(results))
    parts.append(_targets(results))
    parts.append("</section>")
    return "".join(parts)


def _monotone(results: pd.DataFrame) -> str:
    pairs = monotone_success(results)
    if pairs.empty:
        return ""
    falling = pairs[pairs["falls"]]
    shown = pd.DataFrame(
        {
            "library": [library_label(str(lib)) for lib in pairs["library"]],
            "attack": pairs["attack_label"],
            "seed": pairs["seed"],
            "eps": [
                f"{a} → {b}" for a, b in zip(_eps(pairs, "eps_from"), _eps(pairs, "eps_to"), strict=True)
            ],
            "success": [
                f"{100 * a:.1f} % → {100 * b:.1f} %"
                for a, b in zip(pairs["success_from"], pairs["success_to"], strict=True)
            ],
            "lost / gained": [f"{a} / {b}" for a, b in zip(pairs["lost"], pairs["gained"], strict=True)],
            "p": pairs["pvalue"],
            "falls": ["yes" if f else "" for f in pairs["falls"]],
        }
    )
    text = (
        f"{len(falling)} of {len(pairs)} steps up the eps grid lose successes measurably (exact McNemar of the "
        f"samples lost against those gained, p < {FALLING_LEVEL:g})"
        if len(falling)
        else f"no step up the eps grid loses successes measurably (of {len(pairs)}; p < {FALLING_LEVEL:g})"
    )
    return (
        "<h3>Success as eps grows</h3>"
        '<p class="small">An untargeted attack with a larger budget can do all a smaller one can, so its success '
        "should not fall along the grid. A fixed step (FGSM) can overshoot, so this is a statistic, not a verdict: "
        f"{html.escape(text)}.</p>"
        f"<details{' open' if len(falling) else ''}><summary>{len(pairs)} steps</summary>{_table(shown)}</details>"
    )


def _targets(results: pd.DataFrame) -> str:
    cells = on_target(results)
    if cells.empty:
        return ""
    shown = pd.DataFrame(
        {
            "library": [library_label(str(lib)) for lib in cells["library"]],
            "attack": cells["attack_label"],
            "eps": _eps(cells),
            "seed": cells["seed"],
            "successes": cells["successes"],
            "on target": cells["on_target"],
            "elsewhere": cells["off_target"],
        }
    )
    return (
        "<h3>Targeted successes on their target</h3>"
        '<p class="small">A targeted attack\'s misclassified samples, and how many of them the model puts in the '
        "target class; a success elsewhere is not the attack's claim (a statistic: it may cross another class on "
        "its way).</p>"
        f"{_table(shown)}"
    )
