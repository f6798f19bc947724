"""The "attacks that must succeed" part of ``report.html``: each library's attacks on models where an
adversarial example provably exists, read from ``RUN_DIR/guaranteed.json`` (written by a run whose preset
sets ``guaranteed_samples``; see ``harness/guaranteed.py`` and ``adapters/guaranteed.py``)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
from advparity.reports.html_sections import _table
from advparity.reports.schema import eps_label, library_label

GUARANTEED_FILE = "guaranteed.json"

_EXPLANATION = (
    "The model's features with a new two-class readout, one for all the images: each image and points "
    "inside half its budget are class 0, one point on its budget's boundary class 1, so that an adversarial "
    "example within eps provably exists: the boundary point, verified by the binarized model's own forward "
    "pass (the certificate). Every library's attack, given each image with label 0, must find one (class 1, within eps "
    "and [0, 1]). A miss is <b>weak</b>: a sanity flag, not a verdict — an attack can agree with the reference "
    "and still be weak, the reference included. After Zimmermann, Brendel, Tramèr and Carlini, "
    "<i>Increasing Confidence in Adversarial Robustness Evaluations</i> (NeurIPS 2022)."
)


def rows_of(run_dir: Path) -> pd.DataFrame:
    """The recorded rows, or an empty frame where the run has no ``guaranteed.json``."""
    path = Path(run_dir) / GUARANTEED_FILE
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.DataFrame(json.loads(path.read_text(encoding="utf-8"))["rows"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not a guaranteed-adversarial record ({err}); delete it and run `run` again into "
            f"{Path(run_dir)} to redo the test"
        ) from None


def guaranteed_section(run_dir: Path) -> str:
    """The section, or '' where the run did not run the test."""
    rows = rows_of(run_dir)
    if rows.empty:
        return ""
    weak = rows[rows["weak"]]
    shown = pd.DataFrame(
        {
            "library": [library_label(str(lib)) for lib in rows["library"]],
            "attack": rows["attack_label"],
            "eps": [eps_label(float(e), str(n)) for e, n in zip(rows["eps"], rows["norm"], strict=True)],
            "found / certified": [
                f"{a} / {b}" for a, b in zip(rows["found"], rows["certified"], strict=True)
            ],
            "samples": rows["samples"],
            "missed": [", ".join(str(s) for s in m) for m in rows["missed"]],
            "flag": ["weak" if w else "" for w in rows["weak"]],
            "note": rows["note"],
        }
    )
    summary = (
        f"{len(weak)} of {len(rows)} library attacks are weak: "
        + ", ".join(f"{library_label(str(r.library))} {r.attack_label}" for r in weak.itertuples(index=False))
        if len(weak)
        else f"every one of the {len(rows)} library attacks found every certified sample"
    )
    return (
        '<h2 id="guaranteed">Attacks that must succeed</h2>'
        f'<p class="small">{_EXPLANATION}</p>'
        f"<p>{html.escape(summary)}.</p>"
        f"{_table(shown)}"
    )
