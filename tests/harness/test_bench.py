"""`python -m advparity bench`: the measurement's bookkeeping on a tiny batch (timings themselves are
in tests/benchmarks, run by `tox -e bench`)."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from advparity.harness.bench import (
    BARE_CALLS,
    BenchConfig,
    BenchResult,
    BenchRow,
    bench_batch,
    bench_model,
    estimate_phase,
    run_bench,
)
from advparity.harness.cli import main
from advparity.harness.config import load_preset

from advparity import adapters

TINY = BenchConfig(size=32, batch=2, repeats=1, pgd_steps=2)


@pytest.fixture(scope="module")
def tiny_result() -> BenchResult:
    torch.set_num_threads(1)
    return run_bench(TINY)


def _offered(library: str, attack: str) -> bool:
    return adapters.get(library).declaration.accepts(TINY.spec(attack))


def test_every_library_and_attack_is_measured_with_its_counted_passes(tiny_result: BenchResult) -> None:
    rows = {(r.library, r.attack): r for r in tiny_result.rows}
    offered = {(lib, a) for lib in TINY.libraries for a in ("fgsm", "pgd") if _offered(lib, a)}
    assert set(rows) == offered and len(rows) == len(tiny_result.rows)
    steps = TINY.pgd_steps
    # Passes per image as the adapters' hooks count them (see adapters/*.py docstrings).
    expected = {
        ("reference", "fgsm"): (1, 1), ("reference", "pgd"): (steps, steps),
        ("art", "fgsm"): (1, 1), ("art", "pgd"): (steps + 2, steps),
        ("torchattacks", "fgsm"): (1, 1), ("torchattacks", "pgd"): (steps, steps),
        ("foolbox", "fgsm"): (2, 1), ("foolbox", "pgd"): (steps + 1, steps),
        ("secml-torch", "fgsm"): (2, 1), ("secml-torch", "pgd"): (steps, steps),
        ("adv-lib", "pgd"): (steps, steps),
        ("deeprobust", "fgsm"): (1, 1), ("deeprobust", "pgd"): (steps + 1, steps),
    }  # fmt: skip
    for key, (forward, backward) in expected.items():
        if key[0] not in TINY.libraries:
            continue  # an optional library not installed here
        assert (rows[key].forward_per_image, rows[key].backward_per_image) == (forward, backward), key
    for row in rows.values():
        assert len(row.adapter_runs) == len(row.bare_runs) == TINY.repeats
        assert row.images_per_second == pytest.approx(TINY.batch / row.seconds)
        assert row.overhead_pct == pytest.approx(100 * (row.seconds / row.bare_seconds - 1))
    assert rows[("reference", "pgd")].ratio_to_reference == 1.0
    assert rows[("art", "pgd")].ratio_to_reference == pytest.approx(
        rows[("art", "pgd")].seconds / rows[("reference", "pgd")].seconds
    )


def test_adv_lib_has_no_fgsm_row(tiny_result: BenchResult) -> None:
    if "adv-lib" not in TINY.libraries:
        pytest.skip(adapters.availability("adv-lib").reason)
    assert ("adv-lib", "pgd") in TINY.pairs() and ("adv-lib", "fgsm") not in TINY.pairs()
    assert [r.attack for r in tiny_result.rows if r.library == "adv-lib"] == ["pgd"]
    table_rows = [line.split()[:2] for line in tiny_result.table().splitlines()[2:]]
    assert ["adv-lib", "pgd"] in table_rows and ["adv-lib", "fgsm"] not in table_rows


def test_the_bare_calls_compute_the_adapters_attack() -> None:
    """Overhead means something only if the bare call is the same attack: FGSM must match bit for bit."""
    torch.set_num_threads(1)
    model = bench_model(TINY)
    x, y = bench_batch(TINY)
    spec = TINY.spec("fgsm")
    for library, bare in BARE_CALLS.items():
        if library not in TINY.libraries or not _offered(library, "fgsm"):
            continue
        assert torch.equal(bare(model, x, y, spec), adapters.get(library).generate(model, x, y, spec)), (
            library
        )
    for library, bare in BARE_CALLS.items():
        if library not in TINY.libraries:
            continue
        pgd = bare(model, x, y, TINY.spec("pgd"))
        assert (
            float((pgd - x).abs().max()) <= TINY.eps + 1.2e-7
            and 0 <= float(pgd.min()) <= float(pgd.max()) <= 1
        )


def _tiny_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    x, y = bench_batch(TINY)
    return bench_model(TINY), x, y


@pytest.mark.parametrize("library", ["secml-torch", "adv-lib", "deeprobust"])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_the_new_bare_calls_equal_their_adapter_bit_for_bit(library: str, attack: str) -> None:
    """Same classes, hyper-parameters and seeding as the adapter: PGD's random start included."""
    if library not in TINY.libraries:
        pytest.skip(adapters.availability(library).reason)
    spec = TINY.spec(attack)
    if not _offered(library, attack):
        with pytest.raises(ValueError, match="offers no"):
            BARE_CALLS[library](*_tiny_batch(), spec)
        return
    torch.set_num_threads(1)
    model, x, y = _tiny_batch()
    expected = adapters.get(library).generate(model, x, y, spec)
    assert not torch.equal(expected, x)  # an attack that moved nothing would match trivially
    assert torch.equal(BARE_CALLS[library](model, x, y, spec), expected)
    if attack == "pgd":  # the seed reaches the random start: another seed gives another x_adv
        assert not torch.equal(BARE_CALLS[library](model, x, y, replace(spec, seed=1)), expected)


def test_json_and_table(tiny_result: BenchResult) -> None:
    data = json.loads(tiny_result.to_json())
    assert data["config"]["size"] == 32 and data["config"]["device"] == "cpu"
    assert data["environment"]["versions"]["torch"] == version("torch")
    assert len(data["rows"]) == len(TINY.pairs())  # one per attack a library offers
    table = tiny_result.table()
    assert "DenseNet-121 at 32 px, batch 2" in table
    assert sum(line.startswith(TINY.libraries) for line in table.splitlines()) == len(TINY.pairs())


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
    assert main([*args, "--libraries", "advbox"]) == 2
    assert "unknown libraries ['advbox']" in capsys.readouterr().err
    # A preset's attack phase, extrapolated from the rates (the smoke preset: 8 images, 3-step PGD).
    assert main(["-q", "bench", "--batch", "1", "--repeats", "1", "--preset", "smoke"]) == 0
    printed = capsys.readouterr().out
    # The preset's size and steps.
    assert "DenseNet-121 at 32 px, batch 1" in printed and "PGD 3 steps" in printed
    assert "smoke preset, attack phase on 8 images (17 cells)" in printed
    assert main(["-q", "bench", "--images", "10"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 16}, "size >= 32"),
        ({"batch": 0}, "batch >= 1"),
        ({"attacks": ("cw",)}, "unknown attacks"),
        ({"libraries": ("reference", "advbox")}, r"unknown libraries \['advbox'\]"),
    ],
)
def test_bad_configs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BenchConfig(**kwargs)  # type: ignore[arg-type]


def test_the_default_libraries_are_those_that_can_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BenchConfig().libraries == tuple(adapters.runnable())
    assert BenchConfig().libraries[0] == "reference"
    # Read when a config is made, not when the module was imported.
    monkeypatch.setattr(adapters, "runnable", lambda: ["reference", "torchattacks"])
    assert BenchConfig().libraries == ("reference", "torchattacks")


def test_a_library_that_cannot_run_here_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = [name for name in adapters.names() if adapters.availability(name).state != "ready"]
    for name in broken:  # advertorch under current torch, and any optional library not installed
        with pytest.raises(ValueError, match=f"{name} cannot run here") as raised:
            BenchConfig(libraries=("reference", name))
        assert adapters.availability(name).reason in str(raised.value)
    # The same whatever is installed: a library whose import fails.
    real = adapters.availability

    def availability(name: str) -> adapters.Availability:
        if name == "torchattacks":
            return adapters.Availability(name, "unavailable", "ImportError: no module torchattacks.x")
        return real(name)

    monkeypatch.setattr(adapters, "availability", availability)
    with pytest.raises(ValueError, match=r"torchattacks cannot run here \(unavailable\): ImportError: no"):
        BenchConfig(libraries=("reference", "torchattacks"))


def _row(library: str, attack: str, images_per_second: float) -> BenchRow:
    seconds = 1 / images_per_second
    return BenchRow(
        library, attack, images_per_second, seconds, seconds, 0.0, 1, 1, 1.0, (seconds,), (seconds,)
    )


CORE = ("reference", "art", "torchattacks", "foolbox")


def test_the_paper_phase_estimate_counts_cells_like_the_runner() -> None:
    """Worked by hand: FGSM 10 images/s, PGD-10 1 image/s for everyone, 100 images, the paper's grid
    (12 FGSM eps, 5 PGD eps; reference seeds 0-2, library seeds 0-1) on the core libraries."""
    rows = [_row(lib, "fgsm", 10.0) for lib in CORE] + [_row(lib, "pgd", 1.0) for lib in CORE]
    paper = replace(load_preset("paper").attack, libraries=CORE)
    estimate = estimate_phase(rows, paper, n_images=100, bench_steps=10)
    # Reference: one FGSM gradient for the whole grid (10 s) + 5 eps x 3 seeds x 100 s of PGD.
    assert estimate.seconds_by_library["reference"] == pytest.approx(10 + 1500)
    # Each library: 12 FGSM cells x 10 s + 5 eps x 2 seeds x 100 s.
    for library in ("art", "torchattacks", "foolbox"):
        assert estimate.seconds_by_library[library] == pytest.approx(120 + 1000)
    assert estimate.cells == 12 * 4 + 5 * (3 + 3 * 2)
    assert estimate.seconds == pytest.approx(4870)
    # PGD measured at 5 steps costs twice as much per call at the preset's 10.
    half = estimate_phase(rows, paper, n_images=100, bench_steps=5)
    assert half.seconds_by_library["art"] == pytest.approx(120 + 2000)
    with pytest.raises(ValueError, match="no measurement"):
        estimate_phase(rows[:2], paper, n_images=100, bench_steps=10)


def test_the_phase_estimate_skips_what_a_run_skips() -> None:
    """The paper preset lists every library: adv-lib has PGD cells only, and a library that cannot run
    here (advertorch under current torch) costs nothing, as in a run."""
    runnable = adapters.runnable()
    if "adv-lib" not in runnable:
        pytest.skip(adapters.availability("adv-lib").reason)
    rows = [_row(lib, a, 10.0 if a == "fgsm" else 1.0) for lib in runnable for a in ("fgsm", "pgd")]
    rows = [r for r in rows if _offered(r.library, r.attack)]
    estimate = estimate_phase(rows, load_preset("paper").attack, n_images=100, bench_steps=10)
    assert estimate.seconds_by_library["adv-lib"] == pytest.approx(1000)  # 5 eps x 2 seeds x 100 s
    assert estimate.seconds_by_library["art"] == pytest.approx(120 + 1000)
    not_run = tuple(lib for lib in load_preset("paper").attack.libraries if lib not in runnable)
    assert estimate.not_run == not_run and set(estimate.seconds_by_library) == set(runnable)
    libraries = len(runnable) - 1  # besides the reference
    assert estimate.cells == 12 * (1 + libraries - 1) + 5 * (3 + 2 * libraries)  # no adv-lib FGSM
    if not_run:
        assert f"not counted, as they cannot run here: {', '.join(not_run)}" in estimate.text("paper")
