"""What the runner's invariant checks found, and two properties read off the results themselves.

* :func:`checks` — per cell and seed, each invariant the runner checked on the library's own calls
  (``adapters/invariants.py``; recorded as the rows' ``invariants``): held, broken (with its samples)
  or not run (with why). A broken one makes the cell invalid (``reports/rules.py``).
* :func:`monotone_success` — an untargeted attack with a larger budget can do everything a smaller one
  can, so its success should not fall as eps grows along a grid. A fixed-step attack (FGSM) may
  overshoot, so this is a statistic, never a verdict: per pair of neighbouring eps, the samples fooled
  at the smaller eps and not at the larger (``lost``) against the reverse (``gained``), with the exact
  McNemar p-value of the two.
* :func:`on_target` — a targeted attack's successes (x_adv misclassified) that land on its target,
  and those that land elsewhere: again a statistic; a targeted attack may cross another class.
"""

from __future__ import annotations

import json

import pandas as pd
from advparity.reports.schema import check_results
from advparity.reports.stats import mcnemar_exact

# A drop in success whose McNemar p-value is below this is flagged in the report (not a verdict).
FALLING_LEVEL = 0.01

_CELL = ["library", "attack", "attack_label", "norm", "eps", "seed"]


def checks(results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, seed and check: ``library, attack_label, norm, eps, seed, check, outcome``
    (``held`` / ``broken`` / ``not run``), ``samples`` (those that broke it), ``evidence``, ``why``,
    ``checked`` (the samples the checks ran on). Cells whose run recorded none are left out."""
    frame = check_results(results)
    rows = []
    for key, cell in frame.groupby(_CELL, sort=False):
        text = str(cell["invariants"].iloc[0])
        if not text:
            continue
        record = json.loads(text)
        for check in record["checks"]:
            outcome = {True: "held", False: "broken", None: "not run"}[check["passed"]]
            rows.append(
                {
                    **dict(zip(_CELL, key, strict=True)),
                    "check": check["name"],
                    "outcome": outcome,
                    "samples": ", ".join(str(s) for s in check["samples"]),
                    "evidence": check["evidence"],
                    "why": check["why"],
                    "checked": ", ".join(str(s) for s in record["samples"]),
                }
            )
    columns = [*_CELL, "check", "outcome", "samples", "evidence", "why", "checked"]
    return pd.DataFrame(rows, columns=columns)


def monotone_success(results: pd.DataFrame) -> pd.DataFrame:
    """Per untargeted attack variant, library and seed, each pair of neighbouring eps of its grid:
    ``eps_from, eps_to, success_from, success_to`` (shares of the samples misclassified), ``lost``
    (fooled at eps_from, not at eps_to), ``gained``, ``pvalue`` (exact McNemar of lost against gained)
    and ``falls`` (success fell with p < :data:`FALLING_LEVEL`)."""
    frame = check_results(results)
    # A library that crashed has no prediction (-1): nothing to count.
    frame = frame[(frame["target"] < 0) & (frame["pred_adv"] >= 0)]
    rows = []
    for (library, label, norm, seed), variant in frame.groupby(
        ["library", "attack_label", "norm", "seed"], sort=False
    ):
        by_eps = {
            float(e): cell.set_index("sample")["pred_adv"] != cell.set_index("sample")["label"]
            for e, cell in variant.groupby("eps")
        }
        grid = sorted(by_eps)
        for small, large in zip(grid, grid[1:], strict=False):
            a, b = by_eps[small].align(by_eps[large], join="inner")
            lost, gained = int((a & ~b).sum()), int((~a & b).sum())
            pvalue = mcnemar_exact(lost, gained)
            rows.append(
                {
                    "library": library,
                    "attack_label": label,
                    "norm": norm,
                    "seed": int(seed),
                    "eps_from": small,
                    "eps_to": large,
                    "n": len(a),
                    "success_from": float(a.mean()) if len(a) else float("nan"),
                    "success_to": float(b.mean()) if len(b) else float("nan"),
                    "lost": lost,
                    "gained": gained,
                    "pvalue": pvalue,
                    "falls": lost > gained and pvalue < FALLING_LEVEL,
                }
            )
    columns = [
        "library", "attack_label", "norm", "seed", "eps_from", "eps_to", "n",
        "success_from", "success_to", "lost", "gained", "pvalue", "falls",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def on_target(results: pd.DataFrame) -> pd.DataFrame:
    """Per targeted cell (rows with a target): ``n``, ``successes`` (misclassified), ``on_target`` (of
    those, predicted as the target) and ``off_target`` (the rest)."""
    frame = check_results(results)
    frame = frame[(frame["target"] >= 0) & (frame["pred_adv"] >= 0)]
    rows = []
    for key, cell in frame.groupby(_CELL, sort=False):
        success = cell["pred_adv"] != cell["label"]
        hit = success & (cell["pred_adv"] == cell["target"])
        rows.append(
            {
                **dict(zip(_CELL, key, strict=True)),
                "n": len(cell),
                "successes": int(success.sum()),
                "on_target": int(hit.sum()),
                "off_target": int((success & ~hit).sum()),
            }
        )
    return pd.DataFrame(rows, columns=[*_CELL, "n", "successes", "on_target", "off_target"])
