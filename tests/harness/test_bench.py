"""`python -m advparity bench`: the measurement's bookkeeping on a tiny batch (timings themselves are
in tests/benchmarks, run by `tox -e bench`)."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
from advparity.adapters.expected import expectation
from advparity.adapters.spec import AttackSpec
from advparity.harness.bench import (
    BARE_CALLS,
    ENTRIES,
    NUM_CLASSES,
    BenchConfig,
    BenchResult,
    BenchRow,
    bench_batch,
    bench_model,
    estimate_phase,
    run_bench,
)
from advparity.harness.cli import main
from advparity.harness.config import AttackConfig, load_preset
from support.factory_models import small_cnn

from advparity import adapters

# Every bench entry, the opt-in ones included, on a tiny batch.
TINY = BenchConfig(size=32, batch=2, repeats=1, pgd_steps=2, attacks=ENTRIES)
NEW = ("bim", "mifgsm", "fgsm-l2", "pgd-l2")


@pytest.fixture(scope="module")
def tiny_result() -> BenchResult:
    """Every row on a two-layer CNN: the rows, labels and counted passes do not depend on the model,
    and 34 pairs of DenseNet-121 calls would cost a minute here (the CLI test below runs it)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return run_bench(TINY, model=small_cnn(NUM_CLASSES))


def _offered(library: str, attack: str) -> bool:
    return adapters.get(library).declaration.refusal(TINY.spec(attack)) == ""


S = TINY.pgd_steps
RUN = "counted on the expectation"
# Passes per image as the adapters' hooks count them (see adapters/*.py docstrings), for every
# (library, entry) the library offers: written out, so that a pair the bench drops or a pass that
# goes uncounted fails here.
EXPECTED_PASSES = {
    ("reference", "fgsm"): (1, 1), ("reference", "pgd"): (S, S), ("reference", "bim"): (S, S),
    ("reference", "mifgsm"): (S, S), ("reference", "fgsm-l2"): (1, 1), ("reference", "pgd-l2"): (S, S),
    ("art", "fgsm"): (1, 1), ("art", "pgd"): (S + 2, S), ("art", "bim"): (S + 2, S),
    ("art", "mifgsm"): (S + 2, S), ("art", "fgsm-l2"): (1, 1), ("art", "pgd-l2"): (S + 2, S),
    ("torchattacks", "fgsm"): (1, 1), ("torchattacks", "pgd"): (S, S), ("torchattacks", "bim"): (S, S),
    ("torchattacks", "mifgsm"): (S, S), ("torchattacks", "fgsm-l2"): (1, 1), ("torchattacks", "pgd-l2"): (S, S),
    ("foolbox", "fgsm"): (2, 1), ("foolbox", "pgd"): (S + 1, S), ("foolbox", "bim"): (S + 1, S),
    ("foolbox", "mifgsm"): (S + 1, S), ("foolbox", "fgsm-l2"): (2, 1), ("foolbox", "pgd-l2"): (S + 1, S),
    ("secml-torch", "fgsm"): (2, 1), ("secml-torch", "pgd"): (S, S),
    ("adv-lib", "pgd"): (S, S),
    ("deeprobust", "fgsm"): (1, 1), ("deeprobust", "pgd"): (S + 1, S),
    ("cleverhans", "fgsm"): (1, 1), ("cleverhans", "pgd"): (S, S), ("cleverhans", "bim"): (S, S),
    ("cleverhans", "fgsm-l2"): (1, 1), ("cleverhans", "pgd-l2"): (S, S),
    # APGD: the clean forward, then the start and each step (adv-lib: no clean forward). The original,
    # torchattacks' port and ART attack only the samples classified correctly at x: their passes are
    # those counted on the expectation.
    ("reference", "apgd"): (S + 2, S + 1), ("torchattacks", "apgd"): RUN, ("autoattack", "apgd"): RUN,
    ("art", "apgd"): RUN, ("adv-lib", "apgd"): (S + 1, S + 1),
}  # fmt: skip
LABELS = {
    "fgsm": "FGSM", "pgd": "PGD-2", "bim": "BIM-2", "mifgsm": "MI-FGSM-2", "fgsm-l2": "FGM-L2",
    "pgd-l2": "PGD-L2-2", "apgd": "APGD-CE-2",
}  # fmt: skip


def test_every_library_and_attack_is_measured_with_its_counted_passes(tiny_result: BenchResult) -> None:
    rows = {(r.library, r.attack): r for r in tiny_result.rows}
    offered = {(lib, a) for lib in TINY.libraries for a in ENTRIES if _offered(lib, a)}
    assert set(rows) == offered and len(rows) == len(tiny_result.rows)
    known = {lib for lib, _ in EXPECTED_PASSES}
    # The pairs written out above, no more and no fewer, for the libraries installed here.
    assert {k for k in rows if k[0] in known} == {k for k in EXPECTED_PASSES if k[0] in TINY.libraries}
    assert {a for lib, a in rows} == set(ENTRIES)  # every new entry has rows
    for key, passes in EXPECTED_PASSES.items():
        if key[0] not in TINY.libraries:
            continue  # an optional library not installed here
        row = rows[key]
        declaration, spec = adapters.get(key[0]).declaration, TINY.spec(key[1])
        if passes == RUN:
            torch.manual_seed(0)
            model, (x, y) = small_cnn(NUM_CLASSES), bench_batch(TINY)
            passes = expectation(model, x, y, spec, declaration).passes
            assert declaration.passes_follow_expectation(spec), key
        assert (row.forward_per_image, row.backward_per_image) == passes, key
        # Counted by the hooks, equal to what the library declares it spends (at most, where the
        # passes follow the run).
        declared = declaration.passes(spec)
        assert row.forward_per_image <= declared[0] and row.backward_per_image <= declared[1], key
        if not declaration.passes_follow_expectation(spec):
            assert (row.forward_per_image, row.backward_per_image) == declared, key
    for row in rows.values():
        assert row.label == LABELS[row.attack] == TINY.spec(row.attack).label
        assert len(row.adapter_runs) == len(row.bare_runs) == TINY.repeats
        assert row.images_per_second == pytest.approx(TINY.batch / row.seconds)
        assert row.overhead_pct == pytest.approx(100 * (row.seconds / row.bare_seconds - 1))
        # Against the reference's row of the same entry (the reference offers every one).
        assert row.ratio_to_reference == pytest.approx(row.seconds / rows[("reference", row.attack)].seconds)
    assert rows[("reference", "pgd")].ratio_to_reference == 1.0
    assert rows[("reference", "pgd-l2")].ratio_to_reference == 1.0


def test_only_the_libraries_that_offer_an_attack_get_its_row(tiny_result: BenchResult) -> None:
    by_attack: dict[str, list[str]] = {}
    for row in tiny_result.rows:
        by_attack.setdefault(row.attack, []).append(row.library)
    core = [lib for lib in ("reference", "art", "torchattacks", "foolbox") if lib in TINY.libraries]
    with_cleverhans = [*core, *(["cleverhans"] if "cleverhans" in TINY.libraries else [])]
    assert by_attack["mifgsm"] == core  # nobody else offers MI-FGSM
    apgd = ("reference", "art", "torchattacks", "adv-lib", "autoattack")
    assert by_attack["apgd"] == [lib for lib in TINY.libraries if lib in apgd]
    assert by_attack["bim"] == with_cleverhans  # CleverHans's BIM is its PGD without a random start
    # secml-torch, adv-lib and DeepRobust: L∞ only.
    assert by_attack["fgsm-l2"] == by_attack["pgd-l2"] == with_cleverhans
    if "adv-lib" not in TINY.libraries:
        pytest.skip(adapters.availability("adv-lib").reason)
    assert ("adv-lib", "pgd") in TINY.pairs() and ("adv-lib", "fgsm") not in TINY.pairs()
    assert [r.attack for r in tiny_result.rows if r.library == "adv-lib"] == ["pgd", "apgd"]
    table_rows = [line.split()[:2] for line in tiny_result.table().splitlines()[2:]]
    assert ["adv-lib", "PGD-2"] in table_rows and ["adv-lib", "FGSM"] not in table_rows


def test_each_entry_runs_its_spec() -> None:
    """Every entry's spec, built in one place: an L2 eps is a plain number, iterative attacks take the
    config's steps with alpha = eps/4."""
    eps = TINY.eps
    assert TINY.spec("fgsm") == AttackSpec("fgsm", eps)
    assert TINY.spec("pgd") == AttackSpec("pgd", eps, steps=2, random_start=True)
    assert TINY.spec("bim") == AttackSpec("bim", eps, steps=2)
    assert TINY.spec("mifgsm") == AttackSpec("mifgsm", eps, steps=2, decay=1.0)
    assert TINY.spec("fgsm-l2") == AttackSpec("fgsm", 0.5, norm="l2")
    assert TINY.spec("pgd-l2") == AttackSpec("pgd", 0.5, steps=2, norm="l2", random_start=True)
    assert TINY.spec("apgd") == AttackSpec("apgd", eps, steps=2, loss="ce", restarts=1, rho=0.75)
    assert TINY.spec("pgd-l2").step_size == 0.125 and TINY.spec("mifgsm").step_size == eps / 4
    assert replace(TINY, eps_l2=1.5).spec("fgsm-l2").eps == 1.5
    assert replace(TINY, seed=3).spec("pgd-l2").seed == 3


def test_the_default_times_fgsm_and_pgd_only() -> None:
    """The opt-in entries cost about a PGD row each per library: the default run stays minutes."""
    assert BenchConfig().attacks == ("fgsm", "pgd")
    assert BenchConfig().spec("pgd").label == "PGD-10"


def _tiny_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The bench's model and images, the first labelled with the model's prediction: APGD attacks only
    the samples the model classifies correctly (x for the others), adv-lib's PGD returns x for a
    sample it does not fool, and neither may match trivially."""
    x, y = bench_batch(TINY)
    model = bench_model(TINY)
    with torch.no_grad():
        y[0] = model(x[:1]).argmax(dim=1)[0]
    assert y[1] != model(x[1:2]).argmax(dim=1)[0]
    return model, x, y


@pytest.mark.parametrize("attack", ENTRIES)
@pytest.mark.parametrize("library", list(BARE_CALLS))
def test_the_bare_calls_equal_their_adapter_bit_for_bit(library: str, attack: str) -> None:
    """Overhead means something only if the bare call is the same attack: the same library object,
    hyper-parameters and seeding as the adapter, the random start included; a spec the library
    refuses is refused bare too, never run as another attack."""
    if library not in TINY.libraries:
        pytest.skip(adapters.availability(library).reason)
    spec = TINY.spec(attack)
    refusal = adapters.get(library).declaration.refusal(spec)
    if refusal:
        with pytest.raises(ValueError, match=f"^{library} offers"):
            BARE_CALLS[library](*_tiny_batch(), spec)
        return
    torch.set_num_threads(1)
    model, x, y = _tiny_batch()
    expected = adapters.get(library).generate(model, x, y, spec)
    assert not torch.equal(expected, x)  # an attack that moved nothing would match trivially
    bare = BARE_CALLS[library](model, x, y, spec).detach()  # torchattacks APGD leaves grad on
    assert torch.equal(bare, expected)
    assert float(spec.definition.distance(bare, x, spec.params).max()) <= spec.eps * (1 + 1e-5)
    assert 0 <= float(bare.min()) <= float(bare.max()) <= 1
    if spec.seeded:  # the seed reaches the random start: another seed gives another x_adv
        assert not torch.equal(BARE_CALLS[library](model, x, y, replace(spec, seed=1)), expected)


def test_json_and_table(tiny_result: BenchResult) -> None:
    data = json.loads(tiny_result.to_json())
    assert data["config"]["size"] == 32 and data["config"]["device"] == "cpu"
    assert data["environment"]["versions"]["torch"] == version("torch")
    assert len(data["rows"]) == len(TINY.pairs())  # one per attack a library offers
    assert data["config"]["attacks"] == list(ENTRIES) and data["config"]["eps_l2"] == 0.5
    # Each row names its entry and its label.
    assert {(r["attack"], r["label"]) for r in data["rows"]} == set(LABELS.items())
    table = tiny_result.table()
    assert "DenseNet-121 at 32 px, batch 2, eps 1/255, L2 eps 0.5, 2-step iterative attacks" in table
    lines = [line.split() for line in table.splitlines()[2:]]
    assert len(lines) == len(TINY.pairs()) and all(line[0] in TINY.libraries for line in lines)
    # The table names each attack by its label, the entry's name nowhere.
    assert [line[1] for line in lines] == [r.label for r in tiny_result.rows]
    assert {line[1] for line in lines} == set(LABELS.values())


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
    printed = capsys.readouterr().out
    assert "images/s" in printed and "L2 eps" not in printed  # no L2 entry benched
    # The opt-in entries, by name; rows and table by label.
    opt_in = [*args[:-4], "--steps", "2", "--attacks", "bim,fgsm-l2", *args[-2:]]
    # secml-torch, where installed, offers neither.
    optional = ",secml-torch" if "secml-torch" in adapters.runnable() else ""
    assert main([*opt_in, "--libraries", f"reference,foolbox{optional}"]) == 0
    rows = [(r["library"], r["attack"], r["label"]) for r in json.loads(out.read_text())["rows"]]
    assert rows == [
        ("reference", "bim", "BIM-2"),
        ("foolbox", "bim", "BIM-2"),
        ("reference", "fgsm-l2", "FGM-L2"),
        ("foolbox", "fgsm-l2", "FGM-L2"),
    ]
    printed = capsys.readouterr().out
    assert "L2 eps 0.5" in printed and printed.count("BIM-2") == 2 and printed.count("FGM-L2") == 2
    assert main([*opt_in[:-2], "--attacks", "pgd-linf"]) == 2
    assert "unknown attacks ['pgd-linf']" in capsys.readouterr().err
    assert main([*args, "--libraries", "advbox"]) == 2
    assert "unknown libraries ['advbox']" in capsys.readouterr().err
    # A preset's attack phase, extrapolated from the rates (the smoke preset: 8 images, 3-step PGD).
    assert main(["-q", "bench", "--batch", "1", "--repeats", "1", "--preset", "smoke"]) == 0
    printed = capsys.readouterr().out
    # The preset's size and steps.
    assert "DenseNet-121 at 32 px, batch 1" in printed and "3-step iterative attacks" in printed
    assert "smoke preset, attack phase on 8 images (20 cells)" in printed
    assert "APGD-CE-3" in printed  # the preset's APGD, benched at its step count for the estimate
    assert main(["-q", "bench", "--images", "10"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 16}, "size >= 32"),
        ({"batch": 0}, "batch >= 1"),
        ({"attacks": ("cw",)}, "unknown attacks"),
        (
            {"attacks": ("pgd-linf",)},
            r"unknown attacks \['pgd-linf'\]; expected some of \['fgsm', 'pgd', 'bim'",
        ),
        ({"eps_l2": 0.0}, "expected an L2 eps > 0"),  # refused even when no L2 entry is benched
        ({"eps_l2": 0.5 / 255, "eps": 2.0}, "outside"),
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
        library, attack, attack, images_per_second, seconds, seconds, 0.0, 1, 1, 1.0, (seconds,), (seconds,)
    )


CORE = ("reference", "art", "torchattacks", "foolbox")


def test_the_paper_phase_estimate_counts_cells_like_the_runner() -> None:
    """Worked by hand: FGSM 10 images/s, PGD-10 1 image/s and APGD-CE-10 10 images/s for everyone, 100
    images, the paper's grid (12 FGSM eps, 5 PGD eps, APGD-CE-100 and APGD-DLR-100 at those 5 eps;
    reference seeds 0-2, library seeds 0-1) on the core libraries, of which ART and torchattacks offer APGD."""
    rows = [_row(lib, "fgsm", 10.0) for lib in CORE] + [_row(lib, "pgd", 1.0) for lib in CORE]
    rows += [_row(lib, "apgd", 10.0) for lib in CORE if _offered(lib, "apgd")]
    paper = replace(load_preset("paper").attack, libraries=CORE)
    estimate = estimate_phase(rows, paper, n_images=100, bench_steps=10)
    # APGD-100 at 10x the benched steps: 1 s per image, 100 s per cell.
    # Reference: one FGSM gradient for the whole grid (10 s) + 5 eps x 3 seeds x 100 s of PGD, and as
    # much of each APGD.
    assert estimate.seconds_by_library["reference"] == pytest.approx(10 + 1500 + 2 * 1500)
    # Each library: 12 FGSM cells x 10 s + 5 eps x 2 seeds x 100 s (and as much of each APGD).
    assert estimate.seconds_by_library["foolbox"] == pytest.approx(120 + 1000)
    for library in ("art", "torchattacks"):
        assert estimate.seconds_by_library[library] == pytest.approx(120 + 1000 + 2 * 1000)
    assert estimate.cells == 12 * 4 + 5 * (3 + 3 * 2) + 2 * 5 * (3 + 2 * 2)
    assert estimate.seconds == pytest.approx(4870 + 3000 + 2 * 2000)
    # PGD measured at 5 steps costs twice as much per call at the preset's 10.
    half = estimate_phase(rows, paper, n_images=100, bench_steps=5)
    assert half.seconds_by_library["foolbox"] == pytest.approx(120 + 2000)
    with pytest.raises(ValueError, match="no measurement"):
        estimate_phase(rows[:2], paper, n_images=100, bench_steps=10)


def test_the_phase_estimate_skips_what_a_run_skips() -> None:
    """The paper preset lists the libraries of the paper's time: adv-lib has no FGSM cells, and a
    library that cannot run here (advertorch under current torch) costs nothing, as in a run."""
    listed = load_preset("paper").attack.libraries
    runnable = [lib for lib in adapters.runnable() if lib in listed]
    if "adv-lib" not in runnable:
        pytest.skip(adapters.availability("adv-lib").reason)
    rows = [_row(lib, a, 10.0 if a == "fgsm" else 1.0) for lib in runnable for a in ("fgsm", "pgd", "apgd")]
    rows = [r for r in rows if _offered(r.library, r.attack)]
    apgd = 2 * 5 * 100 * 10  # APGD-CE and -DLR, 5 eps, 100 images, 100 steps measured at 10: per seed
    estimate = estimate_phase(rows, load_preset("paper").attack, n_images=100, bench_steps=10)
    offers_apgd = {lib for lib in runnable if _offered(lib, "apgd")}
    assert estimate.seconds_by_library["adv-lib"] == pytest.approx(  # 5 eps x 2 seeds x 100 s
        1000 + ("adv-lib" in offers_apgd) * 2 * apgd
    )
    assert estimate.seconds_by_library["art"] == pytest.approx(120 + 1000 + ("art" in offers_apgd) * 2 * apgd)
    not_run = tuple(lib for lib in load_preset("paper").attack.libraries if lib not in runnable)
    assert estimate.not_run == not_run and set(estimate.seconds_by_library) == set(runnable)

    def offering(
        attack: str,
    ) -> int:  # libraries besides the reference (no adv-lib FGSM, AutoAttack APGD only)
        return sum(_offered(lib, attack) for lib in runnable if lib != "reference")

    cells = 12 * (1 + offering("fgsm")) + 5 * (3 + 2 * offering("pgd")) + 2 * 5 * (3 + 2 * offering("apgd"))
    assert estimate.cells == cells
    if not_run:
        assert f"not counted, as they cannot run here: {', '.join(not_run)}" in estimate.text("paper")


def test_the_phase_estimate_reads_each_cell_from_its_own_entry() -> None:
    """Worked by hand on reference + torchattacks, 100 images, rates measured at 10 steps (images/s):
    FGSM 10, FGM-L2 5, PGD 1, PGD-L2 2, BIM-10 0.5, MI-FGSM-10 0.25."""
    grid = AttackConfig(
        libraries=("reference", "torchattacks"),
        reference_seeds=(0, 1),
        library_seeds=(0,),
        attacks=(
            {"attack": "fgsm", "eps": ["2/255", "4/255"]},
            {"attack": "fgsm", "eps": [0.5, 1.0], "norm": "l2"},
            {"attack": "fgsm", "eps": ["1/255"], "random_start": True},
            {"attack": "pgd", "eps": [0.5], "norm": "l2", "steps": 10},
            {"attack": "bim", "eps": ["1/255"], "steps": 5},
            {"attack": "mifgsm", "eps": ["1/255"], "steps": 10},
        ),
    )
    rates = {"fgsm": 10.0, "fgsm-l2": 5.0, "pgd": 1.0, "pgd-l2": 2.0, "bim": 0.5, "mifgsm": 0.25}
    rows = [_row(lib, a, r) for lib in ("reference", "torchattacks") for a, r in rates.items()]
    estimate = estimate_phase(rows, grid, n_images=100, bench_steps=10)
    # Reference: one gradient per FGSM grid in each norm (0.1 + 0.2 s per image), FGSM from a random
    # start once per seed (2 x 0.1: no shared gradient), PGD-L2 2 seeds x 0.5, BIM-5 half of BIM-10's
    # 2 s, MI-FGSM-10 4 s.
    assert estimate.seconds_by_library["reference"] == pytest.approx(100 * (0.1 + 0.2 + 0.2 + 1 + 1 + 4))
    # torchattacks: every cell one call, one seed.
    assert estimate.seconds_by_library["torchattacks"] == pytest.approx(100 * (0.2 + 0.4 + 0.1 + 0.5 + 1 + 4))
    assert estimate.cells == (2 + 2 + 2 + 2 + 1 + 1) + (2 + 2 + 1 + 1 + 1 + 1)
    # Without the L2 rows, the L2 cells are read at their attack's L∞ rate.
    linf_only = [r for r in rows if r.attack not in ("fgsm-l2", "pgd-l2")]
    fallback = estimate_phase(linf_only, grid, n_images=100, bench_steps=10)
    assert fallback.seconds_by_library["reference"] == pytest.approx(100 * (0.1 + 0.1 + 0.2 + 2 + 1 + 4))
    # An attack with no row of its own is missing, and the message says how to bench it.
    with pytest.raises(ValueError, match=r"no measurement for \[\('reference', 'bim'\).*--attacks bim"):
        estimate_phase([r for r in rows if r.attack != "bim"], grid, n_images=100, bench_steps=10)
