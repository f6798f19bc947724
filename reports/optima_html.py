"""The "against closed-form optima" part of ``report.html``: each library's attacks on affine models
whose worst case is solved exactly, read from ``RUN_DIR/optima.json`` (written by ``demo`` and by
``python -m advparity optima --run RUN_DIR``; see ``harness/optima.py``)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
from advparity.reports.html_sections import _table
from advparity.reports.schema import library_label

OPTIMA_FILE = "optima.json"

_EXPLANATION = (
    "Every library's attacks on a two- and a four-class affine classifier (1×8×8 inputs, 32 samples each, "
    "labelled with the model's own predictions), whose worst case within eps and [0, 1] is solved exactly. "
    "<i>fooled / optimum fools</i>: samples the attack misclassifies against those an adversarial example "
    "exists for; <i>gap</i>: the library's margin z<sub>y</sub> − max z<sub>j≠y</sub> minus the optimum's, "
    "averaged over the samples (an attack that returns x where it fails, as APGD does, counts that margin). "
    "On two classes in L∞ FGSM and PGD must reach the optimum; a margin below it would be an output outside "
    "the budget or a wrong optimum, and must be 0."
)


def optima_section(run_dir: Path) -> str:
    """The section, or '' where the run directory has no ``optima.json``."""
    path = Path(run_dir) / OPTIMA_FILE
    if not path.is_file():
        return ""
    rows = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    if rows.empty:
        return ""
    eps = [
        f"{e * 255:g}/255" if n == "linf" else f"{e:g}"
        for e, n in zip(rows["eps"], rows["norm"], strict=True)
    ]
    shown = pd.DataFrame(
        {
            "classes": rows["classes"],
            "attack": rows["attack_label"],
            "eps": eps,
            "library": [library_label(lib) for lib in rows["library"]],
            "fooled / optimum fools": [
                f"{a} / {b}" for a, b in zip(rows["fooled"], rows["optimum_fooled"], strict=True)
            ],
            "missed": rows["missed"],
            "mean gap": rows["mean_gap"],
            "max gap": rows["max_gap"],
            "below optimum": rows["below_optimum"],
        }
    )
    return (
        '<h2 id="optima">Against closed-form optima</h2>'
        f'<p class="small">{_EXPLANATION}</p>'
        f"<details><summary>{len(rows)} rows ({html.escape(', '.join(dict.fromkeys(shown['library'])))})</summary>"
        f"{_table(shown)}</details>"
    )
