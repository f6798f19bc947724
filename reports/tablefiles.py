"""How a table is printed and written: :func:`format_value` for one cell (Markdown and HTML),
:func:`to_markdown`, and :func:`write_tables`, which writes each table as CSV, Markdown (own formatter —
``DataFrame.to_markdown`` needs ``tabulate``) and JSON records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from advparity.reports.tables import TABLE_TITLES


def format_value(value: Any) -> str:
    """How a cell is printed in Markdown and HTML: 4 significant digits, blank for NaN, p-values in e-notation."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return ""
        if x.is_integer() and abs(x) < 1e6:
            return str(int(x))
        return f"{x:.4g}"
    return str(value)


def to_markdown(frame: pd.DataFrame, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped), with an optional ``## title``."""
    header = [str(c) for c in frame.columns]
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in frame.itertuples(index=False):
        lines.append(
            "| " + " | ".join(format_value(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |"
        )
    return "\n".join(lines) + "\n"


def write_tables(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each table as ``<name>.csv``, ``<name>.md`` and ``<name>.json`` (records) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in tables.items():
        csv_path = out / f"{name}.csv"
        frame.to_csv(csv_path, index=False)
        md_path = out / f"{name}.md"
        md_path.write_text(to_markdown(frame, TABLE_TITLES.get(name, name)), encoding="utf-8")
        json_path = out / f"{name}.json"
        json_path.write_text(frame.to_json(orient="records", indent=2, force_ascii=False), encoding="utf-8")
        paths += [csv_path, md_path, json_path]
    return paths
