"""The guaranteed-adversarial test over the libraries (``harness/guaranteed.py``): every library's FGSM
and PGD find every certified sample of a small network; a library that returns x is weak; an attack a
two-class model cannot take is left out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from advparity.adapters import AttackSpec, runnable
from advparity.harness.guaranteed import Variant, results, summary, update, variants, write
from advparity.harness.store import Cell
from support.small_nets import synthetic_batch
from torch import nn

EPS = 4 / 255


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 64), nn.Tanh(), nn.Linear(64, 3)).eval()


def test_every_library_passes_on_a_small_network(mlp: nn.Module, tmp_path: Path) -> None:
    x, _ = synthetic_batch(4, seed=5)
    specs = [
        AttackSpec("fgsm", EPS),
        AttackSpec("pgd", EPS, steps=10, random_start=True, seed=0),
        AttackSpec("apgd", EPS, steps=10, loss="dlr"),  # DLR needs 3 classes: left out
    ]
    rows = results(mlp, x, [Variant(s, tuple(runnable())) for s in specs], samples=[10, 11, 12, 13])
    assert {r.attack for r in rows} == {"fgsm", "pgd"}
    assert {r.library for r in rows} >= {"reference", "art", "torchattacks", "foolbox"}
    for row in rows:
        assert (row.certified, row.found, row.missed, row.weak) == (4, 4, (), False), row
    records = json.loads(write(rows, tmp_path / "guaranteed.json").read_text())["rows"]
    assert len(records) == len(rows) and records[0]["weak"] is False


def test_a_targeted_attack_is_sent_to_the_other_class(mlp: nn.Module) -> None:
    x, _ = synthetic_batch(4, seed=5)
    spec = AttackSpec("pgd", EPS, steps=10, random_start=True, seed=0, targeted="least-likely")
    rows = results(mlp, x, [Variant(spec, ("reference", "torchattacks", "art"))])
    assert rows and all((r.certified, r.found, r.weak) == (4, 4, False) for r in rows), rows


def test_a_library_that_returns_x_is_weak(mlp: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    torchattacks = pytest.importorskip("torchattacks")

    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        return images.clone()  # MUTATION: the attack returns its input

    monkeypatch.setattr(torchattacks.FGSM, "forward", forward)
    x, _ = synthetic_batch(4, seed=5)
    variant = Variant(AttackSpec("fgsm", EPS), ("torchattacks",))
    (row,) = results(mlp, x, [variant], samples=[10, 11, 12, 13])
    assert row.weak and row.found == 0 and row.missed == (10, 11, 12, 13)


def test_the_smoke_demo_runs_it_and_reports_every_library(smoke_demo: tuple[Path, str]) -> None:
    """CI's small case: the smoke preset's 4 images, each attack variant at its largest eps."""
    demo, printed = smoke_demo
    rows = json.loads((demo / "run" / "guaranteed.json").read_text())["rows"]
    assert f"guaranteed-adversarial test: {len(rows)} library attacks on 4 images in " in printed
    assert "; weak: none" in printed
    assert {r["library"] for r in rows} == {"reference", "art", "torchattacks", "foolbox"}
    assert {r["attack_label"] for r in rows} == {"FGSM", "PGD-3", "APGD-CE-10"}
    assert all(r["samples"] == 4 and r["certified"] == 4 and not r["weak"] for r in rows), rows
    report = (demo / "run" / "report.html").read_text()
    assert '<h2 id="guaranteed">Attacks that must succeed</h2>' in report
    assert f"every one of the {len(rows)} library attacks found every certified sample" in report


@pytest.mark.parametrize("key", ["guaranteed_samples", "invariant_samples"])
@pytest.mark.parametrize("value", [-1, True])
def test_a_bad_sample_count_is_refused(key: str, value: object) -> None:
    from advparity.harness.config import load_preset

    with pytest.raises(ValueError, match=f"expected {key} >= 0"):
        dataclasses.replace(load_preset("smoke").attack, **{key: value})


def _cells(libraries: tuple[str, ...]) -> list[Cell]:
    fgsm = AttackSpec("fgsm", EPS).params
    pgd = AttackSpec("pgd", EPS, steps=3, random_start=True).params
    return [
        *(Cell(lib, "fgsm", eps, 0, fgsm) for lib in libraries for eps in (EPS / 4, EPS)),
        *(Cell(lib, "pgd", EPS / 2, seed, pgd) for lib in libraries for seed in (0, 1)),
    ]


def test_each_variant_runs_at_its_largest_eps_with_its_libraries() -> None:
    chosen = variants(_cells(("reference", "art")))
    assert [(v.spec.attack, v.spec.eps, v.spec.seed, v.libraries) for v in chosen] == [
        ("fgsm", EPS, 0, ("reference", "art")),
        ("pgd", EPS / 2, 0, ("reference", "art")),
    ]


def test_variants_at_one_budget_share_one_binarized_model(
    mlp: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advparity.harness import guaranteed

    built: list[tuple[str, float]] = []
    real = guaranteed.binarize

    def counted(model, x, eps, norm):  # type: ignore[no-untyped-def]
        built.append((norm, eps))
        return real(model, x, eps, norm)

    monkeypatch.setattr(guaranteed, "binarize", counted)
    x, _ = synthetic_batch(3, seed=5)
    both = [
        Variant(AttackSpec("fgsm", EPS), ("reference",)),
        Variant(AttackSpec("pgd", EPS, steps=3, random_start=True), ("reference",)),
    ]
    assert len(results(mlp, x, both)) == 2
    assert built == [("linf", EPS)]


def test_a_resumed_run_keeps_the_record_unless_its_plan_changed(mlp: nn.Module, tmp_path: Path) -> None:
    x, _ = synthetic_batch(3, seed=5)
    path = tmp_path / "guaranteed.json"
    assert update(mlp, x, _cells(("reference",)), tmp_path) is not None
    first = path.read_bytes()
    assert update(mlp, x, _cells(("reference",)), tmp_path) is None and path.read_bytes() == first
    added = update(mlp, x, _cells(("reference", "torchattacks")), tmp_path)  # a library installed since
    assert added is not None and {r.library for r in added} == {"reference", "torchattacks"}
    fewer = update(mlp, x[:2], _cells(("reference", "torchattacks")), tmp_path)  # another image count
    assert fewer is not None and {r.samples for r in fewer} == {2}
    path.write_text("{not json")  # a damaged record is redone, not trusted
    assert update(mlp, x[:2], _cells(("reference", "torchattacks")), tmp_path) is not None
    assert summary(None, 0.0) == (
        "guaranteed-adversarial test: kept guaranteed.json (the same images, attacks and libraries)"
    )
    weak = [dataclasses.replace(r, missed=(1,)) if r.library == "torchattacks" else r for r in fewer]
    assert summary(weak, 2.4).endswith(
        "library attacks on 2 images in 2 s; weak: torchattacks FGSM, torchattacks PGD-3"
    )


def test_it_changes_no_cell_so_it_leaves_the_config_hash_alone() -> None:
    from advparity.harness.config import load_preset

    attack = load_preset("smoke").attack
    assert attack.guaranteed_samples == 4
    assert attack.experiment() == dataclasses.replace(attack, guaranteed_samples=0).experiment()


def test_a_damaged_record_is_named_in_the_report(tmp_path: Path) -> None:
    from advparity.reports.guaranteed_html import guaranteed_section

    (tmp_path / "guaranteed.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="guaranteed.json is not a guaranteed-adversarial record"):
        guaranteed_section(tmp_path)
