"""`python -m harness bench`: the measurement's bookkeeping on a tiny batch (timings themselves are
in tests/benchmarks, run by `tox -e bench`)."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
import torch

import adapters
from harness.bench import (
    BARE_CALLS,
    BenchConfig,
    BenchResult,
    BenchRow,
    bench_batch,
    bench_model,
    estimate_phase,
    run_bench,
)
from harness.cli import main
from harness.config import load_preset

TINY = BenchConfig(size=32, batch=2, repeats=1, pgd_steps=2)


@pytest.fixture(scope="module")
def tiny_result() -> BenchResult:
    torch.set_num_threads(1)
    return run_bench(TINY)


def test_every_library_and_attack_is_measured_with_its_counted_passes(tiny_result: BenchResult) -> None:
    rows = {(r.library, r.attack): r for r in tiny_result.rows}
    assert set(rows) == {(lib, a) for lib in TINY.libraries for a in ("fgsm", "pgd")}
    steps = TINY.pgd_steps
    # Passes per image as the adapters' hooks count them (see adapters/*.py docstrings).
    expected = {
        ("reference", "fgsm"): (1, 1), ("reference", "pgd"): (steps, steps),
        ("art", "fgsm"): (1, 1), ("art", "pgd"): (steps + 2, steps),
        ("torchattacks", "fgsm"): (1, 1), ("torchattacks", "pgd"): (steps, steps),
        ("foolbox", "fgsm"): (2, 1), ("foolbox", "pgd"): (steps + 1, steps),
    }  # fmt: skip
    for key, (forward, backward) in expected.items():
        assert (rows[key].forward_per_image, rows[key].backward_per_image) == (forward, backward), key
    for row in rows.values():
        assert len(row.adapter_runs) == len(row.bare_runs) == TINY.repeats
        assert row.images_per_second == pytest.approx(TINY.batch / row.seconds)
        assert row.overhead_pct == pytest.approx(100 * (row.seconds / row.bare_seconds - 1))
    assert rows[("reference", "pgd")].ratio_to_reference == 1.0
    assert rows[("art", "pgd")].ratio_to_reference == pytest.approx(
        rows[("art", "pgd")].seconds / rows[("reference", "pgd")].seconds
    )


def test_the_bare_calls_compute_the_adapters_attack() -> None:
    """Overhead means something only if the bare call is the same attack: FGSM must match bit for bit."""
    torch.set_num_threads(1)
    model = bench_model(TINY)
    x, y = bench_batch(TINY)
    spec = TINY.spec("fgsm")
    for library, bare in BARE_CALLS.items():
        assert torch.equal(bare(model, x, y, spec), adapters.get(library).generate(model, x, y, spec)), (
            library
        )
        pgd = bare(model, x, y, TINY.spec("pgd"))
        assert (
            float((pgd - x).abs().max()) <= TINY.eps + 1.2e-7
            and 0 <= float(pgd.min()) <= float(pgd.max()) <= 1
        )


def test_json_and_table(tiny_result: BenchResult) -> None:
    data = json.loads(tiny_result.to_json())
    assert data["config"]["size"] == 32 and data["config"]["device"] == "cpu"
    assert len(data["rows"]) == 8 and data["environment"]["versions"]["torch"] == version("torch")
    table = tiny_result.table()
    assert "DenseNet-121 at 32 px, batch 2" in table
    assert (
        sum(line.startswith(("reference", "art", "torchattacks", "foolbox")) for line in table.splitlines())
        == 8
    )


def test_the_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = [
        "-q",
        "bench",
        "--size",
        "32",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--attacks",
        "fgsm",
        "--json",
        str(out),
    ]
    assert main([*args, "--libraries", "reference,torchattacks"]) == 0
    assert [r["library"] for r in json.loads(out.read_text())["rows"]] == ["reference", "torchattacks"]
    assert "images/s" in capsys.readouterr().out
    assert main([*args, "--libraries", "cleverhans"]) == 2
    assert "unknown libraries ['cleverhans']" in capsys.readouterr().err
    # A preset's attack phase, extrapolated from the rates (the smoke preset: 8 images, 3-step PGD).
    assert main(["-q", "bench", "--batch", "1", "--repeats", "1", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "DenseNet-121 at 32 px, batch 1" in out and "PGD 3 steps" in out  # the preset's size and steps
    assert "smoke preset, attack phase on 8 images (17 cells)" in out
    assert main(["-q", "bench", "--images", "10"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"size": 16}, "size >= 32"), ({"batch": 0}, "batch >= 1"), ({"attacks": ("cw",)}, "unknown attacks")],
)
def test_bad_configs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)  # type: ignore[arg-type]


def _row(library: str, attack: str, images_per_second: float) -> BenchRow:
    seconds = 1 / images_per_second
    return BenchRow(
        library, attack, images_per_second, seconds, seconds, 0.0, 1, 1, 1.0, (seconds,), (seconds,)
    )


def test_the_paper_phase_estimate_counts_cells_like_the_runner() -> None:
    """Worked by hand: FGSM 10 images/s, PGD-10 1 image/s for everyone, 100 images, the paper's grid
    (12 FGSM eps, 5 PGD eps; reference seeds 0-2, library seeds 0-1)."""
    rows = [_row(lib, "fgsm", 10.0) for lib in TINY.libraries] + [
        _row(lib, "pgd", 1.0) for lib in TINY.libraries
    ]
    estimate = estimate_phase(rows, load_preset("paper").attack, n_images=100, bench_steps=10)
    # Reference: one FGSM gradient for the whole grid (10 s) + 5 eps x 3 seeds x 100 s of PGD.
    assert estimate.seconds_by_library["reference"] == pytest.approx(10 + 1500)
    # Each library: 12 FGSM cells x 10 s + 5 eps x 2 seeds x 100 s.
    for library in ("art", "torchattacks", "foolbox"):
        assert estimate.seconds_by_library[library] == pytest.approx(120 + 1000)
    assert estimate.cells == 12 * 4 + 5 * (3 + 3 * 2)
    assert estimate.seconds == pytest.approx(4870)
    # PGD measured at 5 steps costs twice as much per call at the preset's 10.
    half = estimate_phase(rows, load_preset("paper").attack, n_images=100, bench_steps=5)
    assert half.seconds_by_library["art"] == pytest.approx(120 + 2000)
    with pytest.raises(ValueError, match="no measurement"):
        estimate_phase(rows[:2], load_preset("paper").attack, n_images=100, bench_steps=10)
