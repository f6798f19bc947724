"""Regression of a run's robustness numbers against a committed baseline (``python -m advparity regress``).

A baseline (JSON, see :func:`build_baseline`) holds, for one run: the clean accuracy, every cell's
accuracy (library × attack × eps × steps × random start × seed) with its per-sample correctness as a
``0``/``1`` string, a fingerprint of the cell's adversarial predictions, and every cross-check
verdict. :func:`compare` sets a new run beside it.

The tolerance rule, and why:

* An accuracy may move only by **less than** ``Tolerance.pp`` percentage points (1 pp by default)
  **and** only if the move is **not significant by the exact McNemar test** (p ≥ ``Tolerance.alpha``,
  0.05 by default) on the samples that changed between baseline and run. The McNemar test is the
  one the paper uses to compare paired predictions on the same images; pairing makes it sensitive to
  a few samples that all move the same way even when the accuracy barely moves on a large test set.
  The pp bound catches the opposite case: a small test set, where many changes are needed before a
  test can call them significant. On the ``ci`` preset (48 images, 1 image = 2.08 pp) the rule
  therefore allows no change of accuracy at all, only swaps; on the paper's 2,117 images it allows
  up to 21 images, and fewer when they all move one way.
* Any change of a cross-check verdict fails: verdicts are the contract of the report.
* A changed grid (a cell or verdict missing or new), a changed test-set size or a changed preset
  fails: the run is not the experiment the baseline describes.
* Changes inside the tolerance are listed as notes (which cells' predictions moved), never hidden.
* What decides CPU round-off is compared first: the architecture, the CPU kernels torch ran
  (``hardware.cpu_capability``: AVX2, AVX512, …), the thread count, the torch version and build, and
  the GPU.
  Where one differs from the baseline's, the run cannot be expected to reproduce the numbers bit for
  bit, so a moved number is **not checkable** here rather than a regression: ``regress`` says what
  differs and what to do, and exits 2 (a verdict change still fails: verdicts compare libraries within
  one process, whatever its kernels). Where every number still matches, it passes with a note.
* A changed test split fails, like a changed grid.

Times are not compared: they depend on the machine, and ``python -m advparity bench`` measures them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from advparity.model.jsonfile import read_json_object
from advparity.reports.crosscheck import run_verdicts
from advparity.reports.load import Run
from advparity.reports.schema import eps_label, with_attack_labels
from advparity.reports.stats import discordant, mcnemar_exact

SCHEMA = 1


@dataclass(frozen=True)
class Tolerance:
    """How far an accuracy may move before :func:`compare` calls it a regression (module docstring)."""

    pp: float = 1.0
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not (self.pp > 0 and math.isfinite(self.pp)):
            raise ValueError(f"expected a tolerance in percentage points > 0, got {self.pp}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"expected a significance level in (0, 1), got {self.alpha}")

    def describe(self) -> str:
        return (
            f"an accuracy may move by < {self.pp:g} pp and only if not significant by exact McNemar "
            f"(p ≥ {self.alpha:g}); any verdict change fails"
        )


@dataclass(frozen=True)
class Change:
    """One line of the diff: ``fail`` makes ``regress`` exit 1; ``uncheckable`` (a number moved where
    the round-off environment differs from the baseline's) exit 2; ``note`` is for a person to read."""

    severity: str  # "fail", "uncheckable" or "note"
    where: str
    what: str


# What decides the last bits of a CPU or GPU run (docs/design.md, Reproducibility): (label, section, key).
ROUND_OFF_ENVIRONMENT: tuple[tuple[str, str, str], ...] = (
    ("architecture", "hardware", "machine"),
    ("CPU kernels", "hardware", "cpu_capability"),
    ("torch threads", "hardware", "torch_threads"),
    ("torch", "versions", "torch"),
    ("torch build", "hardware", "torch_build"),
    ("GPU", "hardware", "gpu"),
)


def environment_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(what differs, what the baseline does not record) between two provenance blocks."""
    differs, unrecorded = [], []
    for label, section, key in ROUND_OFF_ENVIRONMENT:
        old_section, new_section = old.get(section, {}), new.get(section, {})
        if key not in old_section:
            if key in new_section:  # worth saying only where the run itself records it
                unrecorded.append(label)
        elif old_section.get(key) != new_section.get(key):
            differs.append(f"{label}: this run {new_section.get(key)}, the baseline {old_section.get(key)}")
    return differs, unrecorded


@dataclass
class Comparison:
    tolerance: Tolerance
    changes: list[Change] = field(default_factory=list)
    checked: int = 0
    environment: list[str] = field(default_factory=list)  # round-off environment differences

    @property
    def failures(self) -> list[Change]:
        return [c for c in self.changes if c.severity == "fail"]

    @property
    def uncheckable(self) -> list[Change]:
        return [c for c in self.changes if c.severity == "uncheckable"]

    @property
    def passed(self) -> bool:
        return not self.failures and not self.uncheckable

    @property
    def exit_code(self) -> int:
        """0 passed, 1 a regression, 2 numbers moved where the baseline cannot be reproduced exactly."""
        return 1 if self.failures else 2 if self.uncheckable else 0

    def text(self, baseline_name: str = "the baseline") -> str:
        lines = [f"regression check against {baseline_name}: {self.tolerance.describe()}."]
        if self.environment:
            lines.append(
                "  This run was not made where the baseline was, in what decides round-off: "
                + "; ".join(self.environment)
                + "."
            )
        order = {"fail": 0, "uncheckable": 1, "note": 2}
        shown = sorted(self.changes, key=lambda c: order.get(c.severity, 3))
        listed = 0
        for change in shown:
            if change.severity == "uncheckable":
                # The full list of round-off moves helps nobody; a few show what moved.
                listed += 1
                if len(self.uncheckable) > 5 and listed > 3:
                    continue
            lines.append(f"  {change.severity.upper():4}  {change.where}: {change.what}")
        if len(self.uncheckable) > 5:
            lines.append(f"  ... and {len(self.uncheckable) - 3} more numbers that moved")
        notes = len([c for c in self.changes if c.severity == "note"])
        if self.failures:
            head = "FAIL"
        elif self.uncheckable:
            head = "CANNOT CHECK HERE"
        else:
            head = "PASS"
        lines.append(
            f"{head}: {len(self.failures)} regression(s), {len(self.uncheckable)} number(s) not checkable here, "
            f"{notes} note(s); {self.checked} numbers and verdicts checked."
        )
        if self.uncheckable and not self.failures:
            lines.append(
                "  The numbers moved, but round-off alone can move them on another machine, so they are not "
                "called regressions. Check on a machine like the baseline's — a preset with cpu_isa "
                "(the ci preset pins AVX2, which `python -m advparity` applies on any x86-64 CPU) and the same "
                "thread count and torch — or keep a baseline for this machine: "
                "`python -m advparity regress RUN --baseline OTHER.json --update`."
            )
        return "\n".join(lines)


# --- building a baseline -------------------------------------------------------------------------


def _bits(correct: np.ndarray) -> str:
    return "".join("1" if c else "0" for c in correct)


def _fingerprint(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.int64).tobytes()).hexdigest()[:16]


def _cell_name(library: str, attack_label: str, eps: float) -> str:
    return f"{library} {attack_label} @ {eps_label(eps)}"


def _numbers(run: Run) -> dict[str, dict[str, Any]]:
    """Clean accuracy and every cell's accuracy, correctness string and prediction fingerprint."""
    clean = run.clean.sort_values("sample")
    correct = (clean["pred_clean"] == clean["label"]).to_numpy()
    entries: dict[str, dict[str, Any]] = {
        "clean": {
            "n": len(clean),
            "k": int(correct.sum()),
            "accuracy_pct": round(100 * correct.mean(), 4),
            "correct": _bits(correct),
            "fingerprint": _fingerprint(clean["pred_clean"].to_numpy()),
        }
    }
    # The label last: it tells apart variants that share the other keys (an L2 and an L∞ PGD) without
    # moving the cells of a run that has none out of the order baselines were written in.
    keys = ["library", "attack", "eps", "steps", "random_start", "seed", "attack_label"]
    results = with_attack_labels(run.results)
    for (library, _, eps, _, _, seed, attack_label), cell in results.groupby(keys, sort=True):
        cell = cell.sort_values("sample")
        hit = (cell["pred_adv"] == cell["label"]).to_numpy()
        name = f"{_cell_name(library, attack_label, eps)} seed {int(seed)}"
        entries[name] = {
            "n": len(cell),
            "k": int(hit.sum()),
            "accuracy_pct": round(100 * hit.mean(), 4),
            "correct": _bits(hit),
            "fingerprint": _fingerprint(cell["pred_adv"].to_numpy()),
            "all_in_bounds": bool(cell["in_bounds"].all()),
        }
    return entries


def _verdicts(run: Run) -> dict[str, str]:
    frame = run_verdicts(run)
    return {
        _cell_name(r.library, r.attack_label, r.eps): str(r.verdict) for r in frame.itertuples(index=False)
    }


def build_baseline(run: Run) -> dict[str, Any]:
    """The baseline document of ``run``: what :func:`compare` checks, plus where it came from."""
    manifest = run.manifest
    config = manifest.get("config", {})
    return {
        "schema": SCHEMA,
        "about": (
            "advparity regression baseline: written by `python -m advparity regress RUN_DIR --update`; "
            "checked by `python -m advparity regress RUN_DIR --baseline THIS_FILE`."
        ),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": manifest.get("preset"),
        "experiment": {
            "attack": config.get("attack"),
            "test_limit": config.get("test_limit"),
            "image_size": config.get("image_size"),
            "device_type": config.get("device_type"),
        },
        "provenance": {
            "checkpoint_sha256": manifest.get("checkpoint", {}).get("sha256"),
            "split_sha256": manifest.get("split", {}).get("sha256"),
            "versions": manifest.get("versions", {}),
            "hardware": manifest.get("hardware", {}),
        },
        "numbers": _numbers(run),
        "verdicts": _verdicts(run),
    }


def write_baseline(baseline: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(baseline, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no baseline at {path}; write one from a run you trust with `python -m advparity regress RUN_DIR "
            f"--baseline {path} --update`"
        )
    baseline = read_json_object(path, "baseline")
    if baseline.get("schema") != SCHEMA:
        raise ValueError(f"baseline {path}: expected schema {SCHEMA}, got {baseline.get('schema')!r}")
    for key in ("numbers", "verdicts", "preset", "experiment"):
        if key not in baseline:
            raise ValueError(f"baseline {path}: missing {key!r}")
    return baseline


# --- comparing -----------------------------------------------------------------------------------


def _correct(entry: Mapping[str, Any]) -> np.ndarray:
    return np.frombuffer(str(entry["correct"]).encode(), dtype=np.uint8) == ord("1")


def _compare_number(
    name: str, old: Mapping[str, Any], new: Mapping[str, Any], tol: Tolerance
) -> Iterator[Change]:
    if old["n"] != new["n"]:
        yield Change("fail", name, f"{new['n']} samples, the baseline has {old['n']}")
        return
    delta_pp = new["accuracy_pct"] - old["accuracy_pct"]
    # b: right in the baseline, wrong now; c: wrong in the baseline, right now (same samples, same order).
    b, c = discordant(_correct(old), _correct(new))
    p = mcnemar_exact(b, c)
    moved = (
        f"accuracy {old['accuracy_pct']:.2f}% -> {new['accuracy_pct']:.2f}% ({delta_pp:+.2f} pp; "
        f"{b} sample(s) became wrong, {c} became right; exact McNemar p = {p:.3g})"
    )
    if abs(delta_pp) >= tol.pp or p < tol.alpha:
        why = f"|Δ| ≥ {tol.pp:g} pp" if abs(delta_pp) >= tol.pp else f"p < {tol.alpha:g}"
        yield Change("fail", name, f"{moved} — {why}")
    elif b + c or old["fingerprint"] != new["fingerprint"]:
        yield Change("note", name, f"predictions changed within tolerance: {moved}")
    if old.get("all_in_bounds", True) and not new.get("all_in_bounds", True):
        yield Change("fail", name, "outputs outside the eps-ball or [0, 1], where the baseline had none")


def compare(
    baseline: Mapping[str, Any], current: Mapping[str, Any], tolerance: Tolerance | None = None
) -> Comparison:
    """Set ``current`` (a :func:`build_baseline` document of the new run) beside ``baseline``."""
    tol = tolerance or Tolerance()
    result = Comparison(tolerance=tol)
    changes = result.changes
    if baseline["preset"] != current["preset"]:
        changes.append(
            Change("fail", "preset", f"run is {current['preset']!r}, baseline is {baseline['preset']!r}")
        )
    for key, old_value in baseline["experiment"].items():
        new_value = current["experiment"].get(key)
        if old_value != new_value:
            changes.append(Change("fail", f"experiment {key}", f"{new_value!r}, baseline {old_value!r}"))
    old_prov, new_prov = baseline.get("provenance", {}), current.get("provenance", {})
    result.environment, unrecorded = environment_differences(old_prov, new_prov)
    if unrecorded:
        changes.append(
            Change(
                "note",
                "baseline",
                f"it does not record {', '.join(unrecorded)} (written by an older advparity); rewrite it with "
                "--update from a run you trust so that a run on other hardware can be told apart",
            )
        )
    if old_prov.get("split_sha256") and old_prov.get("split_sha256") != new_prov.get("split_sha256"):
        changes.append(
            Change("fail", "test split", "the split file differs from the baseline's: another experiment")
        )
    if old_prov.get("checkpoint_sha256") != new_prov.get("checkpoint_sha256"):
        changes.append(
            Change(
                "note",
                "checkpoint",
                "the trained weights differ bit-wise from the baseline's (round-off, or a change to "
                "training); the numbers say whether it matters",
            )
        )
    for dist, old_version in sorted(old_prov.get("versions", {}).items()):
        new_version = new_prov.get("versions", {}).get(dist)
        if dist != "advparity" and old_version != new_version:
            changes.append(Change("note", f"version of {dist}", f"{new_version}, baseline {old_version}"))

    old_numbers, new_numbers = baseline["numbers"], current["numbers"]
    for name in old_numbers:
        if name not in new_numbers:
            changes.append(Change("fail", name, "in the baseline, missing from the run"))
            continue
        result.checked += 1
        for change in _compare_number(name, old_numbers[name], new_numbers[name], tol):
            if change.severity == "fail" and result.environment:
                change = Change("uncheckable", change.where, change.what)
            changes.append(change)
    for name in new_numbers:
        if name not in old_numbers:
            changes.append(Change("fail", name, "in the run, not in the baseline (accept with --update)"))

    old_verdicts, new_verdicts = baseline["verdicts"], current["verdicts"]
    for name, old_verdict in old_verdicts.items():
        new_verdict = new_verdicts.get(name)
        result.checked += 1
        if new_verdict is None:
            changes.append(Change("fail", f"verdict {name}", "in the baseline, missing from the run"))
        elif new_verdict != old_verdict:
            changes.append(Change("fail", f"verdict {name}", f"{old_verdict} -> {new_verdict}"))
    for name in new_verdicts:
        if name not in old_verdicts:
            changes.append(
                Change("fail", f"verdict {name}", "in the run, not in the baseline (accept with --update)")
            )
    return result


def numbers_frame(baseline: Mapping[str, Any]) -> pd.DataFrame:
    """The baseline's numbers as a table (name, n, k, accuracy_pct), for people and notebooks."""
    return pd.DataFrame(
        [
            {"name": name, **{k: v for k, v in entry.items() if k != "correct"}}
            for name, entry in baseline["numbers"].items()
        ]
    )
