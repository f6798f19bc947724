"""The one call behind ``python -m advparity report RUN_DIR``: load, judge, write tables, figures and HTML.

The CLI only parses arguments, calls :func:`report`, prints ``outputs.summary`` and ``outputs.html``,
and exits with ``outputs.exit_code``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from advparity.reports.crosscheck import run_verdicts
from advparity.reports.html import write_report
from advparity.reports.load import load_run
from advparity.reports.sanity import Finding, run_all
from advparity.reports.schema import naming_libraries
from advparity.reports.tablefiles import write_tables
from advparity.reports.tables import build_tables, choose_eps
from advparity.reports.verdict_text import exit_code, verdict_summary_text


@dataclass(frozen=True)
class ReportOutputs:
    """What :func:`report` produced: paths, the verdicts and findings, the terminal summary, the exit code."""

    html: Path
    tables: list[Path]
    figures_dir: Path
    verdicts: pd.DataFrame
    findings: list[Finding]
    summary: str
    exit_code: int


def report(
    run_dir: str | Path, out_dir: str | Path | None = None, history: str | Path | None = None
) -> ReportOutputs:
    """Write ``report.html``, ``tables/`` (CSV, Markdown, JSON) and ``figures/`` under ``out_dir`` (default: the run dir).

    ``exit_code`` is 1 when any verdict is ``disagree`` or ``invalid``, else 0. A sanity flag does not
    change it: flags are for a person to read, verdicts are the contract.
    """
    run = load_run(run_dir)
    with naming_libraries(run.libraries):
        out = Path(out_dir) if out_dir is not None else run.run_dir
        v = run_verdicts(run)
        findings = run_all(run.results, run.clean)
        tables = build_tables(
            run.results, run.clean, run.manifest, eps=choose_eps(run.results), verdict_frame=v
        )
        table_paths = write_tables(tables, out / "tables")
        figures_dir = out / "figures"
        html_path = write_report(
            run,
            out / "report.html",
            history=history,
            verdict_frame=v,
            findings=findings,
            tables=tables,
            figures_dir=figures_dir,
        )
        return ReportOutputs(
            html=html_path,
            tables=table_paths,
            figures_dir=figures_dir,
            verdicts=v,
            findings=findings,
            summary=verdict_summary_text(v),
            exit_code=exit_code(v),
        )
