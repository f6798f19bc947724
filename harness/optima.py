"""How far each library's attacks land from the exact worst case (``python -m advparity optima``).

Every library that can run here attacks the closed-form models of ``adapters/optima.py`` — a two-class
and a four-class affine classifier on 1×8×8 images, 32 samples in [0.1, 0.9] labelled with the model's
own predictions, so that every sample is attacked — with each spec of :data:`SPECS` it offers. Per
(library, spec, model) the row holds the margin gap (the library's margin minus the optimum's m*,
≥ 0 up to round-off: an attack cannot go below the optimum within its budget), the samples the
optimum fools and those the library fools, and the samples it misses (m* < 0, its own margin ≥ 0).

What theory fixes: on the two-class model, FGSM and PGD in L∞ reach m* exactly (the gradient's sign
is the optimum's at every point), and APGD does on every sample it fools; elsewhere a gap is a
measurement of the attack, not a verdict on the library.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from advparity.adapters.optima import affine_model, margins, optimum
from advparity.adapters.spec import AttackSpec
from advparity.harness.store import write_atomic

from advparity import adapters

SHAPE = (1, 8, 8)
N = 32
CLASSES = (2, 4)
SPECS: tuple[AttackSpec, ...] = (
    AttackSpec("fgsm", 8 / 255),
    AttackSpec("pgd", 8 / 255, steps=10, random_start=False),
    AttackSpec("fgsm", 1.0, norm="l2"),
    AttackSpec("pgd", 1.0, steps=20, random_start=False, norm="l2"),
    AttackSpec("apgd", 8 / 255, steps=20, loss="ce"),
    AttackSpec("apgd", 8 / 255, steps=20, loss="dlr"),
)
# A margin this far below m* (relative to 1 + |m*|) is the float32 model's round-off, not a better attack.
ROUND_OFF = 1e-5


@dataclass(frozen=True)
class Gap:
    library: str
    attack_label: str
    norm: str
    eps: float
    classes: int
    samples: int
    optimum_fooled: int  # samples with m* < 0: an adversarial example exists within eps
    fooled: int  # samples the library's x_adv misclassifies
    missed: int  # m* < 0, the library's margin >= 0
    mean_gap: float  # mean over samples of (the library's margin − m*)
    max_gap: float
    below_optimum: int  # samples whose margin is below m* beyond round-off: must be 0


def _batch(model: torch.nn.Module, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = 0.1 + 0.8 * torch.rand(N, *SHAPE, generator=generator)
    with torch.no_grad():
        return x, model(x).argmax(dim=1)


def runnable_of(libraries: Sequence[str]) -> list[str]:
    """Those of ``libraries`` that can run here (a run's list may name one that is not installed)."""
    return [
        lib for lib in libraries if lib in adapters.names() and adapters.availability(lib).state == "ready"
    ]


def gaps(libraries: Sequence[str] | None = None) -> list[Gap]:
    """One :class:`Gap` per library (default: every one that can run here) × offered spec × model."""
    chosen = list(adapters.runnable()) if libraries is None else list(libraries)
    rows = []
    for classes in CLASSES:
        model = affine_model(classes, SHAPE, seed=classes)
        x, y = _batch(model, seed=classes)
        for spec in SPECS:
            try:
                spec.definition.check_classes(spec.params, classes)
            except ValueError:
                continue  # DLR on two classes
            best = optimum(model, x, y, spec.eps, spec.norm).margin
            for library in chosen:
                if not adapters.get(library).declaration.accepts(spec):
                    continue
                reached = margins(model, adapters.get(library).generate(model, x, y, spec), y)
                gap = reached - best
                rows.append(
                    Gap(
                        library=library,
                        attack_label=spec.label,
                        norm=spec.norm,
                        eps=spec.eps,
                        classes=classes,
                        samples=N,
                        optimum_fooled=int((best < 0).sum()),
                        fooled=int((reached < 0).sum()),
                        missed=int(((best < 0) & (reached >= 0)).sum()),
                        mean_gap=float(gap.mean()),
                        max_gap=float(gap.max()),
                        below_optimum=int((gap < -ROUND_OFF * (1 + best.abs())).sum()),
                    )
                )
    return rows


def table(rows: Sequence[Gap]) -> str:
    """The rows as a Markdown table, one line per (model, attack, library)."""
    lines = [
        "| classes | attack | eps | library | fooled / optimum fools | missed | mean gap | max gap | below optimum |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eps = f"{r.eps * 255:g}/255" if r.norm == "linf" else f"{r.eps:g}"
        lines.append(
            f"| {r.classes} | {r.attack_label} | {eps} | {r.library} | {r.fooled} / {r.optimum_fooled} | "
            f"{r.missed} | {r.mean_gap:.3g} | {r.max_gap:.3g} | {r.below_optimum} |"
        )
    return "\n".join(lines)


def as_records(rows: Sequence[Gap]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]


def write(rows: Sequence[Gap], path: Path) -> Path:
    """The rows as JSON at ``path``; ``RUN_DIR/optima.json`` is what the report reads
    (``reports/optima_html.py``'s ``OPTIMA_FILE``)."""
    write_atomic(path, (json.dumps(as_records(rows), indent=1) + "\n").encode())
    return path
