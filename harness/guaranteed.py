"""Every library's attacks on models where an adversarial example provably exists (``adapters/guaranteed.py``).

A run whose preset sets ``guaranteed_samples = k`` (> 0) binarizes its model on its first k test
images, once per (norm, eps) — each attack variant of the grid at its largest eps — and runs every
library that offers the variant on it (seed 0), one call on the k images. Per (library, variant) a
:class:`Row` says how many samples are certified and how many of those the attack found; any certified
sample it missed makes the row **weak** — a sanity flag, not a verdict: the attack's agreement with the
reference is judged elsewhere, and an attack can agree and still be weak (the reference too). The rows go
to ``RUN_DIR/guaranteed.json`` (:data:`GUARANTEED_FILE`; ``reports/guaranteed_html.py`` shows them) with
the plan they answer — the images, the variants, their eps and libraries —, so a resumed run that adds a
library or an attack redoes the test, and one that changes nothing keeps it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from advparity.adapters.attacks.definition import targeted_of
from advparity.adapters.guaranteed import binarize, found
from advparity.adapters.spec import AttackSpec
from advparity.harness.store import Cell, write_atomic
from advparity.reports.guaranteed_html import GUARANTEED_FILE

from advparity import adapters

log = logging.getLogger(__name__)

__all__ = ["GUARANTEED_FILE", "Row", "Variant", "results", "summary", "update", "variants", "write"]


@dataclass(frozen=True)
class Row:
    library: str
    attack: str
    attack_label: str
    norm: str
    eps: float
    samples: int
    certified: int  # samples whose adversarial example is proven to exist
    found: int  # of those, the samples the attack found one for
    missed: tuple[int, ...]  # certified samples (test-set indices) it missed
    note: str = ""  # why the attack could not run here ('' where it ran)

    @property
    def weak(self) -> bool:
        return bool(self.missed) or bool(self.note)


@dataclass(frozen=True)
class Variant:
    """One attack variant of a run at its largest eps (seed 0), with the libraries that run it."""

    spec: AttackSpec
    libraries: tuple[str, ...]


def results(
    model: torch.nn.Module,
    x: torch.Tensor,
    variants: Sequence[Variant],
    samples: Sequence[int] | None = None,
) -> list[Row]:
    """Each variant's spec, by each of its libraries that offers it, on the binarized ``model`` for
    ``x``: one binarized model per (norm, eps), shared by the variants that have it.

    A spec that cannot attack a two-class model (APGD-DLR, APGD-T, targets listed per class of the
    original: their definitions say so) is left out with one log line. A targeted attack is given class 1
    as its target: with two classes it is the one target any targeting mode can choose. ``samples`` names
    x's samples in the rows (default 0..N-1)."""
    names = list(samples) if samples is not None else list(range(len(x)))
    rows = []
    binarized = {}
    for variant in variants:
        spec = variant.spec
        try:
            spec.definition.check_classes(spec.params, 2)
        except ValueError as err:
            log.info("guaranteed-adversarial test: %s left out (%s)", spec.label, err)
            continue
        key = (spec.norm, spec.eps)
        if key not in binarized:
            binarized[key] = binarize(model, x, spec.eps, spec.norm)
        test = binarized[key]
        y = 1 - test.labels if targeted_of(spec.params) else test.labels
        for library in variant.libraries:
            adapter = adapters.get(library)
            if not adapter.declaration.accepts(spec):
                continue
            note = ""
            try:
                x_adv = adapters.run_attack(adapter, test.model, x, y, spec).x_adv
                hit = found(test, x, x_adv)
            except adapters.AttackOutputError as err:
                note, hit = f"its output broke a bound: {err}", torch.zeros(len(x), dtype=torch.bool)
            except Exception as err:  # a library's crash here must not sink the run
                note, hit = f"it raised {type(err).__name__}: {err}", torch.zeros(len(x), dtype=torch.bool)
            certified = test.certified.cpu()
            hit = hit.cpu()
            rows.append(
                Row(
                    library=library,
                    attack=spec.attack,
                    attack_label=spec.label,
                    norm=spec.norm,
                    eps=spec.eps,
                    samples=len(x),
                    certified=int(certified.sum()),
                    found=int((certified & hit).sum()),
                    missed=tuple(names[i] for i in (certified & ~hit).nonzero().flatten().tolist()),
                    note=note,
                )
            )
    return rows


def variants(cells: Sequence[Cell]) -> list[Variant]:
    """The run's attack variants (an attack with its parameters), each at its largest eps, in plan order."""
    largest: dict[tuple[str, str], Cell] = {}
    libraries: dict[tuple[str, str], dict[str, None]] = {}
    for cell in cells:
        key = (cell.attack, cell.definition.cell_key(cell.params))
        if key not in largest or cell.eps > largest[key].eps:
            largest[key] = cell
        libraries.setdefault(key, {})[cell.library] = None
    return [
        Variant(AttackSpec(top.attack, top.eps, 0, top.params), tuple(libraries[key]))
        for key, top in largest.items()
    ]


def _plan(chosen: Sequence[Variant], samples: int) -> dict[str, object]:
    """What the recorded rows answer, as JSON: equal plans, equal rows (the model and images are the run's)."""
    return {
        "samples": samples,
        "variants": [
            {"label": v.spec.label, "norm": v.spec.norm, "eps": v.spec.eps, "libraries": list(v.libraries)}
            for v in chosen
        ],
    }


def recorded_plan(path: Path) -> object:
    """The plan ``path`` answers, or None where there is no readable file (then the test is redone)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("plan")
    except (OSError, ValueError, AttributeError):
        return None


def write(rows: Sequence[Row], path: Path, plan: dict[str, object] | None = None) -> Path:
    records = [{**asdict(r), "missed": list(r.missed), "weak": r.weak} for r in rows]
    write_atomic(path, (json.dumps({"plan": plan, "rows": records}, indent=1) + "\n").encode())
    return path


def update(model: torch.nn.Module, x: torch.Tensor, cells: Sequence[Cell], run_dir: Path) -> list[Row] | None:
    """The test of ``cells``' variants on the images ``x`` (the run's first test images) into
    ``run_dir/guaranteed.json``, unless the file already answers this plan (then None)."""
    chosen = variants(cells)
    plan = _plan(chosen, len(x))
    path = Path(run_dir) / GUARANTEED_FILE
    if recorded_plan(path) == plan:
        return None
    calls = sum(len(v.libraries) for v in chosen)
    log.info("guaranteed-adversarial test: up to %d library attacks on %d images", calls, len(x))
    rows = results(model, x, chosen)
    write(rows, path, plan)
    return rows


def summary(rows: Sequence[Row] | None, seconds: float) -> str:
    """The line ``run`` prints: the rows ``update`` computed, or None where it kept the record."""
    if rows is None:
        return f"guaranteed-adversarial test: kept {GUARANTEED_FILE} (the same images, attacks and libraries)"
    weak = sorted({f"{r.library} {r.attack_label}" for r in rows if r.weak})
    samples = max((r.samples for r in rows), default=0)
    return (
        f"guaranteed-adversarial test: {len(rows)} library attacks on {samples} images in {seconds:.0f} s; "
        f"weak: {', '.join(weak) or 'none'}"
    )
