"""Run a mutant through ``run`` and the cross-check on the smoke preset; print the README's table.

    python tests/mutation/suite.py --table      # trains the smoke model, runs every mutant

The smoke preset as it ships (8 test images, FGSM at 0.1, 1 and 4/255, random-start PGD-3 at 2/255,
reference seeds 0 and 1, library seed 0), with two changes: 5 images per attack call instead of 8,
so that every run ends with a smaller, last batch (5 + 3) and a bug that only hits that batch can show;
and every adapter among its libraries, so that one the preset does not list is run and mutated too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from advparity.harness.config import Preset, load_preset  # noqa: E402
from advparity.harness.runner import RunRequest, run  # noqa: E402
from advparity.reports.crosscheck import FAILING_VERDICTS, verdicts  # noqa: E402
from advparity.reports.html import exit_code  # noqa: E402
from advparity.reports.load import load_run  # noqa: E402

from advparity import adapters  # noqa: E402

BATCH_SIZE = 5  # of the smoke preset's 8 test images: batches of 5 and 3


def suite_preset() -> Preset:
    preset = load_preset("smoke")
    attack = dataclasses.replace(preset.attack, batch_size=BATCH_SIZE, libraries=tuple(adapters.names()))
    return dataclasses.replace(preset, attack=attack)


def cross_check(
    checkpoint: Path,
    data_root: Path,
    out: Path,
    libraries: tuple[str, ...],
    attacks: tuple[str, ...] | None = None,
) -> tuple[pd.DataFrame, int]:
    """``run`` the libraries (and the reference) into ``out``, on ``attacks`` (default: all the preset's),
    then the verdicts and the report's exit code."""
    request = RunRequest(
        preset=suite_preset(),
        checkpoint=checkpoint,
        data_root=data_root,
        out=out,
        libraries=libraries,
        attacks=attacks,
    )
    run(request, progress=False)
    frame = verdicts(load_run(out).results)
    return frame, exit_code(frame)


def caught(frame: pd.DataFrame, library: str, attack: str) -> pd.DataFrame:
    """The mutated library's verdict rows for the mutant's attack."""
    return frame[(frame["library"] == library) & (frame["attack"] == attack)]


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


def _table(checkpoint: Path, data_root: Path, work: Path) -> str:
    from mutants import MUTANTS

    lines = [
        "| mutant | library | bug | verdicts (cells of its attack) | evidence that caught it (first failing cell) |",
        "|---|---|---|---|---|",
    ]
    for mutant in MUTANTS:
        monkeypatch = pytest.MonkeyPatch()
        try:
            mutant.apply(monkeypatch)
            frame, _ = cross_check(checkpoint, data_root, work / mutant.name, ("reference", mutant.library))
        finally:
            monkeypatch.undo()
        rows = caught(frame, mutant.library, mutant.attack)
        counts = rows["verdict"].value_counts()
        summary = ", ".join(
            f"{int(counts[v])} {v}" for v in ("disagree", "invalid", "inconclusive", "agree") if v in counts
        )
        lines.append(f"| `{mutant.name}` | {mutant.library} | {mutant.bug} | {summary} | {evidence(rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="run every mutant and print the Markdown table")
    args = parser.parse_args(argv)
    if not args.table:
        parser.print_help()
        return 2
    import torch
    from advparity.harness import pipeline

    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        preset = suite_preset()
        root = pipeline.prepare_data(preset, work, None, progress=False)
        model = pipeline.train_model(preset, root, work / "model", torch.device("cpu"), progress=False)
        print(_table(model.checkpoint, root, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
