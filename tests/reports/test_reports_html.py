"""The HTML report and the run-directory round trip: written, self-contained, the summary, verdict matrix
and curves first, every matrix cell linked to its verdict's reason."""

from __future__ import annotations

import base64
import json
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from advparity.reports.crosscheck import verdicts
from advparity.reports.html import write_report
from advparity.reports.html_sections import VERDICT_COLOURS, cell_anchor
from advparity.reports.load import Run, load_run
from advparity.reports.pipeline import report
from advparity.reports.schema import library_label
from advparity.reports.verdict_text import exit_code, summary_lines, verdict_summary_text
from scipy.stats import binomtest
from support.report_frames import (
    FGSM_FLIPS,
    MANIFEST,
    N,
    agreeing_run,
    cell,
    clean_frame,
    flipped_preds,
    replace_cell,
)

SECTIONS = ("first-screen", "tables", "paper", "verdicts", "rules", "sanity", "long-tables", "manifest")


def _disagreeing_results() -> pd.DataFrame:
    """The agreeing scene with torchattacks FGSM @ 0.3/255: x_adv and prediction differ on 20 of 200 samples."""
    eps = 0.3 / 255
    linf = np.zeros(N)
    linf[90:110] = 0.6 * eps
    return replace_cell(
        agreeing_run(),
        cell(
            "torchattacks",
            "fgsm",
            eps,
            flipped_preds(FGSM_FLIPS[eps] + 20),
            linf_to_ref=linf,
            pixels_differ=np.where(linf > 0, 300, 0),
        ),
    )


def _write_run_dir(root: Path, results: pd.DataFrame) -> Path:
    run_dir = root / "run"
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    clean_frame().to_parquet(run_dir / "clean.parquet")
    keys = ["library", "attack", "eps", "steps", "random_start", "seed"]
    for i, (_, part) in enumerate(results.groupby(keys, sort=False)):
        part.to_parquet(run_dir / "cells" / f"cell-{i:03d}.parquet")
    model_dir = root / "model"
    model_dir.mkdir()
    pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [1.2, 0.6],
            "train_acc": [0.5, 0.8],
            "val_loss": [1.0, 0.7],
            "val_acc": [0.6, 0.78],
            "lr": [1e-3, 5e-4],
            "seconds": [40.0, 41.0],
        }
    ).to_csv(model_dir / "history.csv", index=False)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_run_dir(tmp_path_factory.mktemp("reports"), _disagreeing_results())


@pytest.fixture(scope="module")
def written(run_dir: Path) -> tuple[Run, Path, str]:
    run = load_run(run_dir)
    path = write_report(run)
    return run, path, path.read_text(encoding="utf-8")


class _Scan(HTMLParser):
    """Collects external references, in-page links, ids, images, section ids, the rows of the verdict
    table and the cells of the verdict matrix (their links and colours)."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.fragments: list[str] = []
        self.ids: list[str] = []
        self.images: list[str] = []
        self.sections: list[str] = []
        self.tags: set[str] = set()
        self._section = ""
        self._in_matrix = False
        self._cell_style = ""
        self.verdict_rows = 0
        self.matrix_cells: list[tuple[str, str]] = []  # (href, background style)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if tag == "section":
            self._section = values.get("id") or ""
            self.sections.append(self._section)
        if tag == "tr" and self._section == "verdicts":
            self.verdict_rows += 1
        if tag == "table":
            self._in_matrix = values.get("id") == "verdict-matrix"
        if tag == "td" and self._in_matrix:
            self._cell_style = values.get("style") or ""
        if tag == "a" and self._in_matrix:
            self.matrix_cells.append((values.get("href") or "", self._cell_style))
        for name in ("src", "href"):
            value = values.get(name)
            if value is None or value.startswith("data:image/png;base64,"):
                continue
            (self.fragments if value.startswith("#") else self.external).append(value)
        if tag == "img":
            self.images.append(values.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_matrix = False


def test_load_run_round_trip(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert len(run.results) == len(_disagreeing_results())
    assert run.manifest["config_hash"] == "abc123"
    assert len(run.clean) == N


def test_load_run_clear_errors(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_run(tmp_path)
    broken = tmp_path / "broken"
    (broken / "cells").mkdir(parents=True)
    manifest = {k: v for k, v in MANIFEST.items() if k != "config_hash"}
    (broken / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    clean_frame().to_parquet(broken / "clean.parquet")
    with pytest.raises(ValueError, match=r"missing \['config_hash'\]"):
        load_run(broken)
    (broken / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    with pytest.raises(ValueError, match="found none"):
        load_run(broken)


def test_report_is_written_and_self_contained(written: tuple[Run, Path, str]) -> None:
    run, path, document = written
    assert path == run.run_dir / "report.html"
    scan = _Scan()
    scan.feed(document)
    assert scan.external == []
    # In-page links only, each to an element that exists; one inline script (opens collapsed rows).
    assert scan.fragments and {f[1:] for f in scan.fragments} <= set(scan.ids)
    assert document.count("<script") == 1 and "<script>" in document
    assert not {"link", "iframe"} & scan.tags
    # Robustness curves, confusion matrices, linf_to_ref histogram, training curves (history found).
    assert len(scan.images) == 4
    for src in scan.images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    assert scan.sections == list(SECTIONS)


def test_report_opens_with_summary_matrix_and_curves(written: tuple[Run, Path, str]) -> None:
    run, _, document = written
    v = verdicts(run.results)
    scan = _Scan()
    scan.feed(document)
    # Summary, then the matrix, then the curves, all before the paper's tables.
    order = [
        document.index(marker)
        for marker in ('id="summary"', 'id="verdict-matrix"', 'id="curves"', 'id="tables"')
    ]
    assert order == sorted(order)
    assert document.index("robustness") < document.index('id="tables"')
    # One matrix cell per verdict, each linking to the row holding that verdict's reason, in its colour.
    assert len(scan.matrix_cells) == len(v)
    expected = {
        f"#{cell_anchor(r.library, r.attack_label, r.eps)}": VERDICT_COLOURS[r.verdict]
        for r in v.itertuples()
    }
    assert dict((href, style.removeprefix("background:")) for href, style in scan.matrix_cells) == expected
    bad = v[v["verdict"] == "disagree"].iloc[0]
    anchor = cell_anchor(bad["library"], bad["attack_label"], bad["eps"])
    assert expected[f"#{anchor}"] == VERDICT_COLOURS["disagree"]
    row_start = document.index(f'id="{anchor}"')
    assert escape(bad["reason"]) in document[row_start : document.index("</tr>", row_start)]
    assert scan.verdict_rows == len(v) + 1  # header + one row per verdict
    assert document.index('id="verdicts"') < document.index('id="sanity"')
    for reason in v["reason"]:
        assert escape(reason) in document
    assert "1 disagree" in document
    assert "#fbd3c4" in document  # the disagree colour is used
    assert escape(MANIFEST["command"]) in document
    assert "f" * 64 in document  # checkpoint sha256
    assert "Training curves" in document


def test_runner_style_seeds_are_shown() -> None:
    # The runner writes seeds per role; the manifest section prints both (no full report needed).
    from advparity.reports.html_sections import _manifest_section

    manifest = {**MANIFEST, "seeds": {"reference": [0, 1], "libraries": [0]}}
    assert "reference: 0, 1; libraries: 0" in _manifest_section(manifest, None)


def test_summary_text_and_exit_code() -> None:
    v = verdicts(_disagreeing_results())
    text = verdict_summary_text(v)
    assert (
        text.splitlines()[0]
        == "Cross-check: 23 agree, 0 inconclusive, 1 disagree, 0 invalid (24 verdicts; 24 judged on x_adv itself, 0 on statistics)."
    )
    assert (
        "DISAGREE: torchattacks FGSM @ 0.3/255: x_adv differs from the expected one in 300 of 12,288 pixels"
        in text
    )
    assert exit_code(v) == 1
    assert exit_code(verdicts(agreeing_run())) == 0
    assert "Every library agrees" in verdict_summary_text(verdicts(agreeing_run()))


def test_pipeline_writes_everything(run_dir: Path, tmp_path: Path) -> None:
    out = report(run_dir, out_dir=tmp_path / "out")
    assert out.exit_code == 1
    assert out.html.is_file()
    assert len(out.tables) == 24  # 8 tables × CSV/MD/JSON
    assert (tmp_path / "out" / "figures" / "robustness_curves.png").is_file()
    assert "DISAGREE" in out.summary
    assert all(f.passed for f in out.findings)


def test_the_report_names_and_orders_libraries_as_the_manifest_records(tmp_path: Path) -> None:
    """The runner records each library's display name and place (from the adapters); the report follows
    them — summary, matrix, tables, verdict reasons — and a run recorded before, the names of then."""
    run_dir = _write_run_dir(tmp_path, agreeing_run())
    named = [
        ("reference", "reference"),
        ("foolbox", "Foolbox"),
        ("art", "XYZ"),
        ("torchattacks", "torchattacks"),
    ]
    manifest = {**MANIFEST, "libraries": [{"name": name, "display": display} for name, display in named]}
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    out = report(run_dir)
    document = out.html.read_text(encoding="utf-8")
    assert "All 3 libraries (Foolbox, XYZ, torchattacks) agree" in document
    assert '<th class="row">XYZ</th>' in document and ">ART<" not in document
    matrix = document[document.index('id="verdict-matrix"') :]
    assert matrix.index(">Foolbox<") < matrix.index(">XYZ<") < matrix.index(">torchattacks<")
    sweep = (run_dir / "tables" / "table5_fgsm_sweep.csv").read_text(encoding="utf-8")
    assert "XYZ acc %" in sweep and "ART" not in sweep
    art = out.verdicts[out.verdicts["library"] == "art"]
    assert art["reason"].str.contains("XYZ FGSM @ 0.1/255").any()
    assert list(dict.fromkeys(out.verdicts["library"])) == [name for name, _ in named]
    assert library_label("art") == "ART"  # outside a report: the names of runs recorded before


def test_summary_lines_say_what_was_found(written: tuple[Run, Path, str]) -> None:
    from advparity.reports.sanity import run_all
    from advparity.reports.summary import cell_summary
    from advparity.reports.tables import choose_eps

    run, _, document = written
    results = run.results
    v = verdicts(results)
    lines = summary_lines(
        v, run_all(results, run.clean), cell_summary(results), run.clean, choose_eps(results)
    )
    assert len(lines) == 3
    assert lines[0] == (
        "Of 18 cells over ART, torchattacks, Foolbox: 17 agree, 1 disagree. "
        "Not agreeing: torchattacks FGSM: disagree at 0.3/255."
    )
    # Clean accuracy and its Clopper-Pearson interval, from the clean frame by hand.
    k = int((run.clean["pred_clean"] == run.clean["label"]).sum())
    lo, hi = binomtest(k, len(run.clean)).proportion_ci(method="exact")
    assert lines[1].startswith(
        f"Clean accuracy {100 * k / len(run.clean):.1f} % (95 % CI {100 * lo:.1f}–{100 * hi:.1f} %, n = {len(run.clean)})"
    )
    for line in lines:
        assert escape(line) in document
    agreeing = agreeing_run()
    all_agree = summary_lines(
        verdicts(agreeing), run_all(agreeing, clean_frame()), cell_summary(agreeing), clean_frame(), 0.1 / 255
    )
    assert all_agree[0].startswith(
        "All 3 libraries (ART, torchattacks, Foolbox) agree with the reference in all 18 cells"
    )


def test_eps_tick_labels_never_crowd() -> None:
    from advparity.reports.figures import tick_labels

    demo_grid = np.array([0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 4])
    labels = tick_labels(demo_grid)
    assert [lab for lab in labels if lab] == [
        "0.01",
        "0.025",
        "0.05",
        "0.1",
        "0.2",
        "0.3",
        "0.5",
        "1",
        "2",
        "4",
    ]
    placed = np.log10(demo_grid[[bool(lab) for lab in labels]])
    assert np.diff(placed).min() >= 0.15
    assert tick_labels(np.array([0.1, 0.3, 0.5, 1, 2])) == ["0.1", "0.3", "0.5", "1", "2"]
