"""One group of cells, batch by batch: the reference first, then each library on the same batch.

``linf_to_ref`` is measured against the x_adv each library must return without keeping a whole test set
of adversarial images in memory, and the group's cells are written (atomically) when it ends. Above all
each library's x_adv is compared, pixel by pixel, with the exact x_adv it must return
(``adapters/expected.py``: the attack's reference with the library's declared loss reduction and random
start), its pass counts are recorded beside the ones its adapter declares, and anything it left changed
in the model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from advparity.adapters import invariants
from advparity.adapters import reference as reference_attacks
from advparity.adapters.attacks import targets
from advparity.adapters.base import AttackOutputError
from advparity.adapters.counting import AttackStats
from advparity.adapters.expected import (
    Evidence,
    ExpectationCache,
    compare,
    identical,
)
from advparity.adapters.expected import expectation as expectation_of
from advparity.adapters.spec import AttackSpec
from advparity.harness.config import AttackConfig, eps_label
from advparity.harness.judge import Judged, judge, predict
from advparity.harness.plan import REFERENCE, grid_eps
from advparity.harness.store import Cell, RunStore, params_json
from tqdm.auto import tqdm

from advparity import adapters

log = logging.getLogger(__name__)


@dataclass
class _CellBuffer:
    cell: Cell
    frames: list[pd.DataFrame] = field(default_factory=list)
    attack_seconds: float = 0.0
    eval_seconds: float = 0.0
    forward_rows: float = 0.0
    backward_rows: float = 0.0
    # The invariants' results on the cell's checked samples (invariants_json), and the checks each
    # sample broke: {sample: [check names]}.
    invariants: str = ""
    broken: dict[int, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _CellEvidence:
    """What a library's call shows beyond its predictions, per sample and per call."""

    exact: bool  # an exact expected x_adv existed (False: the library's start cannot be reproduced)
    evidence: Evidence
    forward_expected: float  # passes per sample the adapter declares for this spec
    backward_expected: float
    state_changes: str  # what the library left changed in the model ("" for nothing)
    # How the expected x_adv was rounded where the library's arithmetic is its own (Offer.arithmetic):
    # the report says so beside an agreement ("" for the definition's own).
    arithmetic: str = ""
    # How this spec departs from the attack's definition where only some specs of the attack do
    # (a callable Offer.departure); the manifest holds the departures of whole attacks.
    departure: str = ""


def _rows(
    cell: Cell,
    samples: np.ndarray,
    labels: np.ndarray,
    targets: np.ndarray | None,
    pred_clean: np.ndarray,
    conf_clean: np.ndarray,
    judged: Judged | None,
    zero_grad: np.ndarray | None,
    error: str,
    evidence: _CellEvidence,
) -> pd.DataFrame:
    n = len(samples)
    nan = np.full(n, np.nan)
    seen = evidence.evidence if judged else None
    definition = cell.definition
    frame = pd.DataFrame(
        {
            "library": cell.library,
            "attack": cell.attack,
            "eps": cell.eps,
            **definition.columns(cell.params, cell.eps),  # steps, alpha, random_start
            "seed": cell.seed,
            "sample": samples,
            "label": labels,
            "pred_clean": pred_clean,
            # A library that crashed produced no image: -1 marks "no prediction", and the cell is invalid.
            "pred_adv": judged.pred if judged else np.full(n, -1),
            "conf_clean": conf_clean,
            "conf_adv": judged.conf if judged else nan,
            "linf": judged.linf if judged else nan,
            # To the x_adv this library must return (its own start and loss reduction); see expected.py.
            "linf_to_ref": seen.linf_to_expected.cpu().numpy() if seen else nan,
            "in_bounds": judged.in_bounds if judged else np.zeros(n, dtype=bool),
            "attack_label": definition.label(cell.params),
            "norm": definition.norm_of(cell.params),
            "seeded": definition.seeded(cell.params),
            "distance": judged.distance if judged else nan,
            "params": params_json(cell.params),
            # The class a targeted attack pushed each sample towards (attacks/targets.py); -1 untargeted.
            "target": targets if targets is not None else np.full(n, -1),
            "pred_adv_8bit": judged.pred_8bit if judged else np.full(n, -1),
            "linf_8bit": judged.linf_8bit if judged else nan,
            "zero_grad": zero_grad if zero_grad is not None else np.full(n, -1),
            "expectation": "exact" if evidence.exact else "statistical",
            "pixels_differ": seen.pixels_differ.cpu().numpy() if seen else np.full(n, -1),
            "pixels_differ_near_zero": seen.pixels_differ_near_zero.cpu().numpy() if seen else np.full(n, -1),
            "pixels_total": evidence.evidence.pixels_total,
            "forward_passes_expected": evidence.forward_expected,
            "backward_passes_expected": evidence.backward_expected,
            "state_changes": evidence.state_changes,
            "arithmetic": evidence.arithmetic,
            "departure": evidence.departure,
            "error": error,
        }
    )
    return frame


def clean_predictions(
    model: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    preds, confs = [], []
    for start in range(0, len(x), batch_size):
        pred, conf = predict(model, x[start : start + batch_size].to(device))
        preds.append(pred.cpu())
        confs.append(conf.cpu())
    return torch.cat(preds), torch.cat(confs)


def run_group(
    model: torch.nn.Module,
    group: list[Cell],
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    pred_clean_all: torch.Tensor,
    conf_clean_all: torch.Tensor,
    config: AttackConfig,
    device: torch.device,
    store: RunStore,
    bar: tqdm,
) -> float:
    """Run one group batch by batch, reference first; write its cells when done. Returns attack seconds."""
    buffers = {cell: _CellBuffer(cell) for cell in group}
    first = group[0]
    definition = first.definition
    # An attack that shares its gradient across eps (FGSM) is computed by the reference for the run's
    # whole eps grid at once (the extra eps cost a clamp each), so its per-cell cost is 1/k of a
    # gradient whichever cells a filter or an earlier, interrupted run left to do: resumed and
    # uninterrupted runs record the same numbers.
    eps_grid = grid_eps(config, first) if definition.shares_gradient_across_eps(first.params) else [first.eps]
    where = (
        "grid"
        if definition.shares_gradient_across_eps(first.params)
        else eps_label(first.eps, first.spec.norm)
    )
    bar.set_postfix_str(f"{definition.label(first.params)} {where} seed {first.seed}")
    reference = adapters.get(REFERENCE)
    attack_seconds = 0.0
    # Its eps = 0 call is the same for every eps of the grid (adapters/invariants.on_cell): one per library.
    shared_zero = definition.shares_gradient_across_eps(first.params)
    zero_checks: dict[tuple[str, int], invariants.Check] = {}
    for start in range(0, len(x_all), config.batch_size):
        stop = min(start + config.batch_size, len(x_all))
        x = x_all[start:stop].to(device)
        y = y_all[start:stop].to(device)
        pred_clean = pred_clean_all[start:stop].to(device)
        index = np.arange(start, stop)
        # A targeted attack gets the targets where the others get the labels: every library, the
        # reference and the expected x_adv alike (the rows keep both).
        target = targets_for(model, first.params, x, y, index)
        y = target if target is not None else y
        # The reference's own x_adv for this batch, per eps.
        if definition.shares_gradient_across_eps(first.params):
            results = reference_attacks.grid(model, x, y, first.spec, eps_grid)
            ref_adv = {eps: r.x_adv for eps, r in zip(eps_grid, results, strict=True)}
            ref_stats = {eps: _amortised(results[0].stats, len(eps_grid)) for eps in eps_grid}
            attack_seconds += results[0].stats.seconds
        else:
            result = reference.run(model, x, y, first.spec)
            ref_adv, ref_stats = {first.eps: result.x_adv}, {first.eps: result.stats}
            attack_seconds += result.stats.seconds
        # The exact x_adv each library must return, shared between libraries that declare the same
        # loss reduction and draw the same start.
        expected = ExpectationCache(model, x, y)
        # The reference is judged first (by the harness's own forward pass); the libraries' samples
        # that match it bit for bit then reuse its predictions.
        ref_judged: dict[float, Judged] = {}
        for eps in sorted({cell.eps for cell in group}):
            eval_started = time.perf_counter()
            ref_judged[eps] = judge(
                model, x, ref_adv[eps], ref_adv[eps], eps, pred_clean, norm=first.spec.norm
            )
            ref_cell = next((c for c in group if c.library == REFERENCE and c.eps == eps), None)
            if ref_cell is not None:
                buffers[ref_cell].eval_seconds += time.perf_counter() - eval_started
        for cell in group:
            buffer = buffers[cell]
            x_adv: torch.Tensor | None
            stats: AttackStats | None
            judged: Judged | None
            spec = cell.spec
            declaration = adapters.get(cell.library).declaration
            forward_expected, backward_expected = declaration.passes(spec)
            if cell.library == REFERENCE:
                x_adv, stats, error = ref_adv[cell.eps], ref_stats[cell.eps], ""
                judged = ref_judged[cell.eps]
                # The arbiter is its own expectation; its FGSM passes are 1/k of the grid's gradient.
                forward_expected, backward_expected = _passes(stats)
                evidence = _CellEvidence(
                    True,
                    identical(x_adv),
                    forward_expected,
                    backward_expected,
                    "; ".join(stats.state_changes),
                )
            else:
                x_adv, stats, error = _attack_with_library(model, cell, x, y)
                attack_seconds += stats.seconds if stats else 0.0
                eval_started = time.perf_counter()
                expectation = expected.get(spec, declaration, eps_grid)
                if expectation.passes is not None:  # passes that depend on the run, counted on it
                    forward_expected, backward_expected = expectation.passes
                judged = (
                    judge(
                        model,
                        x,
                        x_adv,
                        ref_adv[cell.eps],
                        cell.eps,
                        pred_clean,
                        ref_judged[cell.eps],
                        spec.norm,
                    )
                    if x_adv is not None
                    else None
                )
                evidence = _CellEvidence(
                    exact=expectation.exact,
                    evidence=compare(x_adv if x_adv is not None else x, expectation),
                    forward_expected=forward_expected,
                    backward_expected=backward_expected,
                    state_changes="; ".join(stats.state_changes) if stats else "",
                    arithmetic=declaration.own_arithmetic(spec) if expectation.exact else "",
                    departure=declaration.departure(spec),
                )
                buffer.eval_seconds += time.perf_counter() - eval_started
            if start == 0 and config.invariant_samples and x_adv is not None and not store.has(cell):
                invariants_started = time.perf_counter()
                floor = (
                    None  # a seeded spec's checks compare calls bit for bit: no floor needed
                    if spec.seeded
                    else ref_floor(model, x, y, spec, config.invariant_samples)
                    if cell.library == REFERENCE
                    else expectation.grad_floor
                )
                checks = cell_invariants(
                    cell,
                    model,
                    x,
                    y,
                    x_adv,
                    floor,
                    index,
                    config.invariant_samples,
                    zero_checks.get((cell.library, cell.seed)) if shared_zero else None,
                )
                if shared_zero and checks and checks[0].name == invariants.ZERO_BUDGET:
                    zero_checks[(cell.library, cell.seed)] = checks[0]
                buffer.invariants, buffer.broken = invariants_json(checks, index[: config.invariant_samples])
                buffer.eval_seconds += time.perf_counter() - invariants_started
            if stats is not None:
                buffer.attack_seconds += stats.seconds
                buffer.forward_rows += stats.forward_passes_per_sample * stats.n_samples
                buffer.backward_rows += stats.backward_passes_per_sample * stats.n_samples
            buffer.frames.append(
                _rows(
                    cell,
                    index,
                    y_all[start:stop].numpy(),
                    target.cpu().numpy() if target is not None else None,
                    pred_clean.cpu().numpy(),
                    conf_clean_all[start:stop].numpy(),
                    judged,
                    stats.zero_grad_elements if stats is not None else None,
                    error,
                    evidence,
                )
            )
    for cell, buffer in buffers.items():
        frame = pd.concat(buffer.frames, ignore_index=True)
        n = len(frame)
        frame["forward_passes"] = buffer.forward_rows / n
        frame["backward_passes"] = buffer.backward_rows / n
        frame["seconds"] = buffer.attack_seconds
        frame["eval_seconds"] = buffer.eval_seconds
        frame["invariants"] = buffer.invariants
        frame["invariant_broken"] = [", ".join(buffer.broken.get(int(i), [])) for i in frame["sample"]]
        if not store.has(cell):  # a resumed group recomputes the reference only to measure against it
            store.write_cell(cell, frame)
        bar.update()
    return attack_seconds


def cell_invariants(
    cell: Cell,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor,
    grad_floor: torch.Tensor | None,
    index: np.ndarray,
    k: int,
    zero: invariants.Check | None = None,
) -> list[invariants.Check]:
    """The invariants (``adapters/invariants.py``) of one cell on its first batch's first ``k`` samples
    (``x_adv``: the library's output for the whole batch). A check that raises is recorded as not
    run, with the error: a library's crash must not sink the cell (its own call did not crash)."""
    adapter = adapters.get(cell.library)
    part = slice(0, min(k, len(x)))
    try:
        checks = invariants.on_cell(
            adapter,
            model,
            x[part],
            y[part],
            cell.spec,
            x_adv[part],
            grad_floor[part] if grad_floor is not None else None,
            zero,
        )
    except Exception as err:
        log.warning("%s: the invariant checks raised %r", cell.key, err, exc_info=True)
        return [
            invariants.Check("invariants", "", None, f"not run: the check raised {type(err).__name__}: {err}")
        ]
    # Positions in the checked batch → the samples' indices in the test set.
    # ``zero``, reused from another cell, holds indices already.
    return [
        c if c is zero else dataclasses.replace(c, samples=tuple(int(index[i]) for i in c.samples))
        for c in checks
    ]


def ref_floor(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, k: int
) -> torch.Tensor:
    """The reference's gradient floor on the first ``k`` samples, padded to the batch: the reference
    cell has no expectation of its own (it is one), and only the checked samples need it."""
    part = slice(0, min(k, len(x)))
    declaration = adapters.get(REFERENCE).declaration
    floor = expectation_of(model, x[part], y[part], spec, declaration).grad_floor
    return torch.cat([floor, torch.zeros_like(x[part.stop :])])


def invariants_json(checks: list[invariants.Check], checked: np.ndarray) -> tuple[str, dict[int, list[str]]]:
    """The checks as the rows' ``invariants`` (JSON: the checked samples and each check's result),
    and the checks each sample broke."""
    broken: dict[int, list[str]] = {}
    for check in checks:
        if check.passed is False:
            for sample in check.samples:
                broken.setdefault(sample, []).append(check.name)
    record = {
        "samples": [int(i) for i in checked],
        "checks": [
            {
                "name": c.name,
                "why": c.why,
                "passed": c.passed,
                "evidence": c.evidence,
                "samples": list(c.samples),
            }
            for c in checks
        ],
    }
    return json.dumps(record), broken


def targets_for(
    model: torch.nn.Module, params: object, x: torch.Tensor, y: torch.Tensor, index: np.ndarray
) -> torch.Tensor | None:
    """The batch's targets where the attack of ``params`` is targeted (from the model's logits at x
    and each sample's index in the test set), else None: what a run and a regeneration attack."""
    mode = getattr(params, "targeted", None)
    if mode is None:
        return None
    with torch.no_grad():
        logits = model(x)
    return targets.choose(
        mode, y, logits, torch.from_numpy(index), seed=0, labels=getattr(params, "target_labels", None)
    )


def _passes(stats: AttackStats) -> tuple[float, float]:
    return stats.forward_passes_per_sample, stats.backward_passes_per_sample


def _amortised(stats: AttackStats, k: int) -> AttackStats:
    """The reference FGSM grid's one gradient, shared by its k eps cells: each carries 1/k of it."""
    return AttackStats(
        library=stats.library,
        n_samples=stats.n_samples,
        forward_passes_per_sample=stats.forward_passes_per_sample / k,
        backward_passes_per_sample=stats.backward_passes_per_sample / k,
        elements_per_sample=stats.elements_per_sample,
        zero_grad_elements=stats.zero_grad_elements,
        zero_grad_elements_all_steps=stats.zero_grad_elements_all_steps,
        seconds=stats.seconds / k,
        state_changes=stats.state_changes,
    )


def _attack_with_library(
    model: torch.nn.Module, cell: Cell, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor | None, AttackStats | None, str]:
    """A library's x_adv for one batch; a broken output or a crash is recorded, not raised."""
    spec = cell.spec
    adapter = adapters.get(cell.library)
    try:
        result = adapter.run(model, x, y, spec)
        return result.x_adv, result.stats, ""
    except AttackOutputError as err:
        # The output exists but breaks a bound: score it anyway so the report can show what happened.
        log.warning("%s", err)
        broken = err.x_adv
        if broken is None or broken.shape != x.shape:
            return None, None, str(err)
        return broken.to(device=x.device, dtype=x.dtype), None, str(err)
    except Exception as err:  # a library bug must not sink the other libraries' cells
        log.warning(
            "%s %s @ %s crashed: %r",
            cell.library,
            spec.label,
            eps_label(cell.eps, spec.norm),
            err,
            exc_info=True,
        )
        return None, None, f"{type(err).__name__}: {err}"
