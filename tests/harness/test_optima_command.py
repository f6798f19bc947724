"""``python -m advparity optima``: every library's attacks against the exact worst case of affine models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from advparity.harness.cli import EXIT_BAD_INPUT, EXIT_OK, main


def test_the_gaps_are_measured_and_none_is_below_the_optimum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "optima.json"
    assert main(["-q", "optima", "--libraries", "reference,torchattacks", "--json", str(out)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert printed.startswith("| classes | attack | eps | library |")
    rows = json.loads(out.read_text())
    assert {r["library"] for r in rows} == {"reference", "torchattacks"}
    assert all(r["below_optimum"] == 0 for r in rows)
    binary_linf = [
        r
        for r in rows
        if r["classes"] == 2 and r["norm"] == "linf" and not r["attack_label"].startswith("APGD")
    ]
    # Two classes, L∞: FGSM and PGD reach the optimum on every sample (round-off of the float32 model).
    assert {r["attack_label"] for r in binary_linf} == {"FGSM", "PGD-10 (no random start)"}
    assert all(r["missed"] == 0 and r["max_gap"] < 1e-6 for r in binary_linf)
    assert all(r["fooled"] == r["optimum_fooled"] > 0 for r in binary_linf)
    # Four classes: cross-entropy's FGSM misses samples the optimum fools (another class is nearer).
    four = next(
        r for r in rows if r["classes"] == 4 and r["attack_label"] == "FGSM" and r["library"] == "reference"
    )
    assert four["missed"] > 0 and four["optimum_fooled"] > four["fooled"]


def test_an_unknown_library_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "optima", "--libraries", "potato"]) == EXIT_BAD_INPUT
    assert "--libraries: unknown ['potato']" in capsys.readouterr().err


def test_the_demo_reports_the_gaps_of_its_libraries(smoke_demo: tuple[Path, str]) -> None:
    """``demo`` measures its run's libraries on the closed-form models and the report shows them."""
    demo, printed = smoke_demo
    rows = json.loads((demo / "run" / "optima.json").read_text())
    assert {r["library"] for r in rows} == {"reference", "art", "torchattacks", "foolbox"}
    assert "closed-form optima:" in printed
    report = (demo / "run" / "report.html").read_text()
    assert '<h2 id="optima">Against closed-form optima</h2>' in report
    assert "fooled / optimum fools" in report


def test_a_run_gains_the_section(smoke_demo: tuple[Path, str], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke_demo[0] / "run", run)
    (run / "optima.json").unlink()
    assert main(["-q", "optima", "--run", str(run)]) == EXIT_OK
    assert {r["library"] for r in json.loads((run / "optima.json").read_text())} == {
        "reference",
        "art",
        "torchattacks",
        "foolbox",
    }
    assert main(["-q", "optima", "--run", str(run), "--libraries", "art"]) == EXIT_BAD_INPUT


def test_the_demo_report_shows_every_cells_invariants(smoke_demo: tuple[Path, str]) -> None:
    """Every cell of the smoke demo recorded its invariants, none broken, and the report lists them."""
    from advparity.reports.invariants import checks
    from advparity.reports.load import load_run

    demo, _ = smoke_demo
    run = load_run(demo / "run")
    found = checks(run.results)
    cells = run.results.groupby(["library", "attack_label", "eps", "seed"]).ngroups
    assert found.groupby(["library", "attack_label", "eps", "seed"]).ngroups == cells
    assert set(found["outcome"]) <= {"held", "not run"} and "held" in set(found["outcome"])
    report = (demo / "run" / "report.html").read_text()
    assert "<h2>Invariants: what no reference is needed for</h2>" in report.replace(' id="invariants"', "")
    assert f"{cells} cell(s) checked: no check broken." in report
