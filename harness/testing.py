"""A robustness regression test for a user's own model, in one call from pytest.

::

    from advparity.harness.testing import assert_robust

    def test_my_model_is_as_robust_as_before():
        assert_robust(my_model(), images, labels, baseline="tests/robustness.json", eps=["1/255", "4/255"])

Run it once with ``update=True`` to write the baseline (commit it); afterwards each run cross-checks
the libraries again and compares accuracies and verdicts with it, by the rules of
``python -m advparity regress`` (``reports/regress.py``), failing with the regress diff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from advparity.harness.api import DEFAULT_EPS, CrossCheckResult, _check_arguments, _flag, _path, crosscheck
from advparity.reports.crosscheck import FAILING_VERDICTS
from advparity.reports.load import load_run
from advparity.reports.regress import Tolerance, build_baseline, compare, read_baseline, write_baseline
from torch import nn


def assert_robust(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    baseline: str | Path = "robustness.json",
    update: bool = False,
    accept_disagreements: bool = False,
    eps: str | float | Sequence[str | float] = DEFAULT_EPS,
    steps: int = 10,
    attacks: Sequence[str | Mapping[str, Any]] = ("fgsm", "pgd"),
    libraries: Sequence[str] | None = None,
    seeds: int | Sequence[int] = (0,),
    tolerance_pp: float = 1.0,
    alpha: float = 0.05,
    device: str | torch.device | None = None,
) -> CrossCheckResult:
    """Cross-check ``model`` and compare with the baseline JSON; raise ``AssertionError`` on drift.

    ``update=True`` writes the baseline from this run instead (refused when a library disagrees or is
    invalid, unless ``accept_disagreements=True``). ``tolerance_pp`` and ``alpha`` are
    :class:`reports.regress.Tolerance`'s: an accuracy may move by less than ``tolerance_pp`` points and
    only if not significant by exact McNemar (p ≥ ``alpha``); any verdict change fails. A run whose
    round-off environment (CPU kernels, threads, torch build, GPU) differs from the baseline's and
    whose numbers moved fails too, saying so. Returns the :class:`CrossCheckResult` when it passes.
    """
    tolerance = Tolerance(pp=tolerance_pp, alpha=alpha)
    update = _flag("update", update)  # update="no" would otherwise overwrite the baseline
    accept_disagreements = _flag("accept_disagreements", accept_disagreements)
    path = _path("baseline", baseline)
    if path.exists() and not path.is_file():
        raise ValueError(f"expected baseline to be a JSON file, got {str(path)!r}: not a regular file")
    arguments: dict[str, Any] = {
        "libraries": libraries,
        "attacks": attacks,
        "eps": eps,
        "steps": steps,
        "seeds": seeds,
        "device": device,
    }
    if not update and not path.is_file():
        # Before the (slow) run: nothing to compare with. A bad argument is the first thing to fix.
        _check_arguments(model, images, labels, **arguments)
        raise AssertionError(
            f"no robustness baseline at {path}: run once with update=True to write it from a run you "
            "trust, and commit it"
        )
    result = crosscheck(model, images, labels, **arguments)
    current = build_baseline(load_run(result.run_dir))
    if update:
        failing = result.verdicts[result.verdicts["verdict"].isin(FAILING_VERDICTS)]
        if len(failing) and not accept_disagreements:
            raise AssertionError(
                f"{len(failing)} verdict(s) are disagree or invalid (first: {failing.iloc[0]['reason']}); a "
                "baseline would make them the expected result. Fix them, or pass accept_disagreements=True "
                "to record them on purpose"
            )
        write_baseline(current, path)
        return result
    comparison = compare(read_baseline(path), current, tolerance)
    if comparison.exit_code != 0:
        raise AssertionError(comparison.text(str(path)))
    return result
