"""Run a mutant through ``run`` and the cross-check on the smoke preset; print the mutation table.

    python tests/mutation/suite.py --table                  # trains the smoke model, runs every mutant
    python tests/mutation/suite.py --table --norm l2        # only the mutants of the L2 variants
    python tests/mutation/suite.py --table --only art-pgd-l2-start-on-sphere   # only these mutants

The smoke preset as it ships (8 test images, FGSM at 0.1, 1 and 4/255, random-start PGD-3 at 2/255,
APGD-CE-10 at 4/255, reference seeds 0 and 1, library seed 0), with four changes: 5 images per attack call instead of 8,
so that every run ends with a smaller, last batch (5 + 3) and a bug that only hits that batch can show;
every adapter among its libraries, so that one the preset does not list is run and mutated too;
the L2 variants (:data:`L2_ATTACKS`: FGM-L2 at 0.5 and 2, PGD-L2-3 at 1 with and without a random
start), where the libraries that offer them are judged too; BIM-3 and MI-FGSM-3 at 2/255
(:data:`ITERATIVE_ATTACKS`), which the smoke preset does not run; and random-start PGD-3 with two
options, 3 restarts (:data:`RESTART_ATTACKS`) and least-likely targets (:data:`TARGETED_ATTACKS`).
A mutant runs only its own variant's entries (``Mutant.norm``, ``Mutant.where``), and an entry with an
option (:data:`OPTIONS`) only where its ``where`` names that option.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from advparity.adapters import attacks as attack_registry  # noqa: E402
from advparity.harness.config import AttackGrid, Preset, attack_grid, load_preset  # noqa: E402
from advparity.harness.runner import RunRequest, run  # noqa: E402
from advparity.reports.crosscheck import FAILING_VERDICTS, verdicts  # noqa: E402
from advparity.reports.html import exit_code  # noqa: E402
from advparity.reports.load import load_run  # noqa: E402

from advparity import adapters  # noqa: E402

BATCH_SIZE = 5  # of the smoke preset's 8 test images: batches of 5 and 3

# The L2 variants the suite adds to the smoke preset, at eps (pixel units, over 3·32·32 values) where
# they change predictions of the smoke model, each as cheap as the L∞ entry of its attack: FGM-L2
# shares one gradient over its eps, PGD-L2 takes the smoke preset's 3 steps of eps/4 from a random
# start and from x. Both starts are needed: a start uniform in a ball of 3,072 dimensions lies within
# a hair of its sphere, so from it every iterate leaves the ball and a projection that also pushes
# points *inside* it out to the sphere never shows; from x the first step (eps/4 long) lies inside.
L2_ATTACKS: tuple[dict[str, object], ...] = (
    {"attack": "fgsm", "norm": "l2", "eps": [0.5, 2.0]},
    {"attack": "pgd", "norm": "l2", "eps": [1.0], "steps": 3, "alpha": "eps/4", "random_start": True},
    {"attack": "pgd", "norm": "l2", "eps": [1.0], "steps": 3, "alpha": "eps/4", "random_start": False},
)

# BIM and MI-FGSM (no random start), which the smoke preset does not run: as cheap as its PGD entry
# (3 steps of eps/4 at 2/255), MI-FGSM with the paper's decay 1.0.
ITERATIVE_ATTACKS: tuple[dict[str, object], ...] = (
    {"attack": "bim", "eps": ["2/255"], "steps": 3, "alpha": "eps/4"},
    {"attack": "mifgsm", "eps": ["2/255"], "steps": 3, "alpha": "eps/4", "decay": 1.0},
)


# The options of PGD the smoke preset does not run, each on one random-start PGD-3 entry as cheap as
# its own (steps of eps/4): 3 restarts at 2/255 (ART alone offers restarts; not FGSM's, whose ART
# selection is a declared departure), and least-likely targets at 4/255. At 2/255 no restart changes a
# prediction of the smoke model's 8 images, so every sample keeps its first restart: a bug that keeps
# another shows in x_adv, one that only mishandles a success in the passes it spends.
RESTART_ATTACKS: tuple[dict[str, object], ...] = (
    {"attack": "pgd", "eps": ["2/255"], "steps": 3, "alpha": "eps/4", "random_start": True, "restarts": 3},
)
TARGETED_ATTACKS: tuple[dict[str, object], ...] = (
    {
        "attack": "pgd",
        "eps": ["4/255"],
        "steps": 3,
        "alpha": "eps/4",
        "random_start": True,
        "targeted": "least-likely",
    },
)

# APGD, 10 iterations at 4/255 with either loss (the smoke preset's own entry is the CE one): its
# checkpoints come after 2, 1, 1, … iterations, so a bug of the schedule or of the halving shows. APGD
# returns x wherever it fails to fool, so only the samples it fools show its trajectory: the suite's
# model is one it can fool (support.factory_models.SuiteCNN).
APGD_ATTACKS: tuple[dict[str, object], ...] = (
    {"attack": "apgd", "eps": ["4/255"], "steps": 10, "loss": "dlr"},
)

# The settings that make an entry an option's: such an entry is run by a mutant only where its
# ``where`` names the key (``(("restarts", 3),)``), so the mutants of the plain attack do not run it.
OPTIONS: tuple[str, ...] = ("restarts", "targeted", "loss")


def _grids() -> tuple[AttackGrid, ...]:
    """Every attack entry of the suite: the smoke preset's (L∞), :data:`L2_ATTACKS`, :data:`ITERATIVE_ATTACKS`,
    :data:`RESTART_ATTACKS`, :data:`TARGETED_ATTACKS`, :data:`APGD_ATTACKS`."""
    tables = (*L2_ATTACKS, *ITERATIVE_ATTACKS, *RESTART_ATTACKS, *TARGETED_ATTACKS, *APGD_ATTACKS)
    return (*load_preset("smoke").attack.grids, *(attack_grid(table) for table in tables))


Where = tuple[tuple[str, object], ...]


def _entries(attacks: tuple[str, ...] | None, norm: str | None, where: Where = ()) -> tuple[AttackGrid, ...]:
    """The suite's entries of ``attacks`` in ``norm`` (None: all) whose settings include ``where``
    (``Mutant.where``: ``(("random_start", False),)`` keeps the entries written with that value).

    An entry with an option's setting (:data:`OPTIONS`) is kept only where ``where`` names that option,
    unless nothing narrows the choice (no ``attacks``, ``norm`` or ``where``: every entry, as the
    unmutated libraries run)."""
    everything = attacks is None and norm is None and not where
    named = {key for key, _ in where}
    return tuple(
        grid
        for grid in _grids()
        if (attacks is None or grid.attack in attacks)
        and (norm is None or grid.norm == norm)
        and all(dict(grid.settings).get(key) == value for key, value in where)
        and (everything or all(key in named for key in OPTIONS if key in dict(grid.settings)))
    )


# The suite's model: a two-layer CNN with BatchNorm (tests/support/factory_models.py) instead of the
# smoke preset's DenseNet-121. Whether a planted bug is caught is read off x_adv against its exact
# expectation, the passes and the model's state — none of it depends on the architecture — and at
# 32 px DenseNet-121's 120 layers cost ~10x the gradients' time here, for 89 runs.
SUITE_MODEL = "support.factory_models:suite_cnn"


def suite_preset(
    attacks: tuple[str, ...] | None = None, norm: str | None = None, where: Where = ()
) -> Preset:
    """The suite's preset; ``attacks``, ``norm`` and ``where`` keep only those grid entries (default: all)."""
    preset = load_preset("smoke")
    chosen = _entries(attacks, norm, where)
    if not chosen:
        raise ValueError(f"the suite has no entry for attacks {attacks} in norm {norm} with {dict(where)}")
    attack = dataclasses.replace(
        preset.attack,
        batch_size=BATCH_SIZE,
        libraries=tuple(adapters.names()),
        fgsm_eps=(),  # the smoke preset's shorthand entries are among the chosen grids
        pgd_eps=(),
        # Every library on every entry (the smoke preset's APGD entry names torchattacks alone).
        attacks=tuple(dataclasses.replace(grid, libraries=None) for grid in chosen),
        # Its bugs are judged on x_adv; the guaranteed-adversarial test is a sanity flag, not a verdict.
        guaranteed_samples=0,
    )
    return dataclasses.replace(
        preset, attack=attack, train=dataclasses.replace(preset.train, model=SUITE_MODEL)
    )


def cross_check(
    checkpoint: Path,
    data_root: Path,
    out: Path,
    libraries: tuple[str, ...],
    attacks: tuple[str, ...] | None = None,
    norm: str | None = None,
    where: Where = (),
) -> tuple[pd.DataFrame, int]:
    """``run`` the libraries (and the reference) into ``out``, on the entries of ``attacks`` in ``norm``
    with ``where`` (default: every entry), then the verdicts and the report's exit code."""
    request = RunRequest(
        preset=suite_preset(attacks, norm, where),
        checkpoint=checkpoint,
        data_root=data_root,
        out=out,
        libraries=libraries,
    )
    run(request, progress=False)
    frame = verdicts(load_run(out).results)
    return frame, exit_code(frame)


def labels(attack: str, norm: str, where: Where = ()) -> set[str]:
    """The labels of the suite's cells of ``attack`` in ``norm`` with ``where`` (``FGSM``, ``FGM-L2``,
    ``PGD-L2-3`` ...)."""
    definition = attack_registry.get(attack)
    return {
        definition.label(grid.params(eps)) for grid in _entries((attack,), norm, where) for eps in grid.eps
    }


def caught(
    frame: pd.DataFrame, library: str, attack: str, norm: str | None = None, where: Where = ()
) -> pd.DataFrame:
    """The mutated library's verdict rows for the mutant's attack (in ``norm`` with ``where``; default:
    every norm)."""
    rows = frame[(frame["library"] == library) & (frame["attack"] == attack)]
    return rows if norm is None else rows[rows["attack_label"].isin(labels(attack, norm, where))]


def evidence(rows: pd.DataFrame) -> str:
    """What caught the bug in the first failing cell: its reason without the cell's name and the advice."""
    bad = rows[rows["verdict"].isin(FAILING_VERDICTS)]
    if bad.empty:
        return "not caught"
    reason = str(bad.iloc[0]["reason"]).split(": ", 1)[1]
    parts = []
    for part in reason.split(" Also: "):
        for cut in (
            " for this attack and step count",
            ". Check its step size",
            ". Its results are not comparable",
            " or the library raised or changed the model.",
        ):
            part = part.split(cut)[0]
        parts.append(part.rstrip("."))
    return "; and ".join(parts)


def _table(checkpoint: Path, data_root: Path, work: Path, chosen: list[Any]) -> str:
    lines = [
        "| mutant | library | bug | verdicts (cells of its attack) | evidence that caught it (first failing cell) |",
        "|---|---|---|---|---|",
    ]
    for mutant in chosen:
        monkeypatch = pytest.MonkeyPatch()
        try:
            mutant.apply(monkeypatch)
            frame, _ = cross_check(
                checkpoint,
                data_root,
                work / mutant.name,
                ("reference", mutant.library),
                (mutant.attack,),
                mutant.norm,
                mutant.where,
            )
        finally:
            monkeypatch.undo()
        rows = caught(frame, mutant.library, mutant.attack, mutant.norm, mutant.where)
        counts = rows["verdict"].value_counts()
        summary = ", ".join(
            f"{int(counts[v])} {v}" for v in ("disagree", "invalid", "inconclusive", "agree") if v in counts
        )
        lines.append(f"| `{mutant.name}` | {mutant.library} | {mutant.bug} | {summary} | {evidence(rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="run every mutant and print the Markdown table")
    parser.add_argument("--norm", choices=("linf", "l2"), help="only the mutants of this norm's variants")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these mutants (their names)")
    args = parser.parse_args(argv)
    if not args.table:
        parser.print_help()
        return 2
    import torch
    from advparity.harness import pipeline

    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(Path(__file__).parent.parent))  # support/, where SUITE_MODEL lives
    from mutants import MUTANTS

    chosen = [
        m
        for m in MUTANTS
        if (args.norm is None or m.norm == args.norm) and (args.only is None or m.name in args.only)
    ]
    unknown = sorted(set(args.only or ()) - {m.name for m in MUTANTS})
    if unknown or not chosen:
        parser.error(f"no such mutants: {unknown}" if unknown else "no mutant matches")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        preset = suite_preset()
        root = pipeline.prepare_data(preset, work, None, progress=False)
        model = pipeline.train_model(preset, root, work / "model", torch.device("cpu"), progress=False)
        print(_table(model.checkpoint, root, work, chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
