"""Cross-check verdicts: does each library compute the attack it claims? (docs/design.md, Cross-check rules)

One verdict per library × attack × eps × steps × random start, the reference included as its own row.
The evidence is x_adv itself. For every call the runner computed the exact x_adv the library must
return — the reference's code with the loss reduction the library's adapter declares and, for
random-start PGD, from the very start point the library draws (``adapters/expected.py``) — and
recorded, per sample, how many pixels of the library's x_adv differ from it beyond float32
round-off (``pixels_differ``), and how many of those sit where the expected gradient was within
round-off of zero (``pixels_differ_near_zero``). The rules, in the order they are applied:

1. **invalid** — any output of the cell broke the eps-ball or [0, 1] (``in_bounds`` False), the
   library raised (``error``), or it left the model changed (``state_changes``: a module out of eval
   mode, parameters or buffers); or the reference cell is missing or itself invalid.
2. **disagree on passes** — the forward or backward passes per sample differ from what the adapter
   documents for this attack and step count (a skipped step, an extra gradient).
3. **Exact cells** (every FGSM; PGD without random start; random-start PGD whose start the adapter
   reproduces — every adapter declares one): per sample, x_adv is *the same* (no pixel beyond round-off),
   *near-zero flips* (at most ``FLIP_BUDGET_SHARE`` of its pixels, at least 1, differ, each where
   the expected gradient was ≤ ``NEAR_ZERO_GRADIENT`` of the sample's largest — the sign itself is
   round-off), or *different*. **agree** iff no sample is different. Predictions and accuracy are
   reported, not the criterion: a reversed, skipped or random perturbation disagrees at any eps,
   also where it flips no prediction.
4. **Statistical cells** (random-start PGD from a library whose start cannot be reproduced, or rows
   recorded without x_adv evidence): every sample under each library seed is paired with the same
   sample under the reference seed of the same value, and one exact McNemar test on correct /
   incorrect covers all those pairs. Its level is ``STATISTICAL_ALPHA`` divided by the number of
   statistical cells in the run (Bonferroni). More seeds add pairs, not tests, so they add power and
   never loosen the rule. **disagree** if p falls below the level; **inconclusive** if not, and the
   smallest accuracy shift the test could detect at this n (every discordant pair in one direction)
   exceeds ``MEANINGFUL_SHIFT_PP``; **agree** otherwise.

The reference's own row is *agree* by definition unless it is invalid; its reason states its accuracy
and, for random start, its seed-to-seed spread — how much the random start alone moves accuracy,
reported as information beside every random-start row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from advparity.reports.load import Run
from advparity.reports.schema import (
    ATTACK_ORDER,
    REFERENCE,
    attack_label,
    check_results,
    eps_label,
    library_label,
    library_sort_key,
    ordered_libraries,
)
from advparity.reports.stats import discordant, mcnemar_exact

# Per sample, at most this share of the pixels (and at least one) may differ from the expected x_adv
# as near-zero-gradient sign flips. Measured: a sum- vs a mean-reduced loss on DenseNet-121 (PGD-10,
# 13 images) flipped 1 pixel of 3,072, where the gradient was 1.6e-8 of the sample's largest.
FLIP_BUDGET_SHARE = 0.001
# The near-zero threshold the runner counted with (adapters/expected.py records it in the manifest
# and tests check the two are equal; reports may not import adapters).
NEAR_ZERO_GRADIENT = 1e-5
# Family-wise significance level of the statistical rule, split over every statistical test of a run.
STATISTICAL_ALPHA = 0.01
# A shift in accuracy smaller than this is not worth calling a disagreement; a test that cannot see
# one this large is inconclusive. The regression gate's own tolerance.
MEANINGFUL_SHIFT_PP = 1.0
# Pass counts are means over batches of whole-row counts: equal means equal up to float division.
PASS_TOLERANCE = 1e-9

VERDICTS: tuple[str, ...] = ("agree", "inconclusive", "disagree", "invalid", "unavailable")
FAILING_VERDICTS: tuple[str, ...] = ("disagree", "invalid")


def counts_text(counts: Mapping[str, int]) -> str:
    """``12 agree, 0 inconclusive, 0 disagree, 0 invalid`` — and ``, 2 unavailable`` only when there are any."""
    return ", ".join(
        f"{int(counts.get(v, 0))} {v}" for v in VERDICTS if v != "unavailable" or counts.get(v, 0)
    )


GROUP_KEYS: list[str] = ["attack", "eps", "steps", "random_start"]

RULES: tuple[str, ...] = (
    "Any output outside the eps-ball or [0, 1] (tolerance 1.2e-7), a library error, or a model left "
    "changed (a module out of eval mode, parameters or buffers) makes the cell invalid whatever its "
    "accuracy; so does a missing or invalid reference cell.",
    "Forward or backward passes per sample other than the adapter documents for the attack and step "
    "count: disagree.",
    "Exact cells — FGSM, PGD without random start, and random-start PGD whose start the adapter "
    "reproduces — are judged on x_adv: the expected x_adv is the reference's code run with the "
    "library's loss reduction from the library's own start. agree iff every sample's x_adv equals it "
    f"up to float32 round-off, or differs only in isolated sign flips (at most {FLIP_BUDGET_SHARE:.1%} "
    f"of its pixels, at least 1) where the expected gradient was at most {NEAR_ZERO_GRADIENT:g} of the "
    "sample's largest. Predictions and accuracy are reported, not the criterion.",
    "Statistical cells — random-start PGD whose start cannot be reproduced — are judged by one exact "
    "McNemar test over every sample paired with the reference seed of the same value, at level "
    f"{STATISTICAL_ALPHA} divided by the number of such cells in the run (Bonferroni; more seeds add "
    "pairs, not tests): disagree below it; inconclusive where the smallest accuracy shift the test "
    f"could detect at this n is above {MEANINGFUL_SHIFT_PP:g} pp; agree otherwise.",
    "The reference is the arbiter: its own row agrees by definition unless it is invalid.",
    "A library that is installed but cannot run here (it fails on import) is unavailable at every cell, with "
    "its error as the reason; that does not fail the run. A disagreeing attack that the adapter documents "
    "as departing from the reference's says so in its reason, and still disagrees.",
)

MISMATCH_KINDS: dict[str, str] = {
    "same": "x_adv equals the expected one up to float32 round-off",
    "near-zero flips": "x_adv differs on a few isolated pixels, each where the expected gradient was "
    "within round-off of zero: the sign of that gradient is round-off, the attack is the same",
    "different": "x_adv differs beyond round-off elsewhere, or on more pixels than the budget: a different attack",
    "not compared": "the library's random start cannot be reproduced, so there is no exact x_adv to compare with",
}


def flip_budget(pixels_total: float) -> int:
    """How many near-zero-gradient pixels of one sample may differ: FLIP_BUDGET_SHARE of them, at least 1."""
    return max(1, int(FLIP_BUDGET_SHARE * pixels_total))


def classify_samples(frame: pd.DataFrame) -> npt.NDArray[np.str_]:
    """Name each row's x_adv evidence: ``same``, ``near-zero flips``, ``different`` or ``not compared``."""
    differ = frame["pixels_differ"].to_numpy(dtype=float)
    near_zero = frame["pixels_differ_near_zero"].to_numpy(dtype=float)
    total = frame["pixels_total"].to_numpy(dtype=float)
    budget = np.array([flip_budget(t) if math.isfinite(t) else 0 for t in total])
    kinds = np.full(len(frame), "different", dtype=object)
    kinds[(differ > 0) & (differ <= budget) & (near_zero == differ)] = "near-zero flips"
    kinds[differ == 0] = "same"
    kinds[(frame["expectation"].to_numpy() != "exact") | ~np.isfinite(differ) | (differ < 0)] = "not compared"
    return kinds.astype(str)


def _linf_text(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return "0" if x == 0 else f"{x * 255:.3g}/255"


def _cell_name(library: str, attack: str, eps: float, steps: int, random_start: bool) -> str:
    return f"{library_label(library)} {attack_label(attack, steps, random_start)} @ {eps_label(eps)}"


def _acc(frame: pd.DataFrame) -> float:
    return (
        float(np.mean(frame["pred_adv"].to_numpy() == frame["label"].to_numpy())) if len(frame) else math.nan
    )


def _seed_accuracies(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby("seed")[["pred_adv", "label"]].apply(_acc)


def _invalid_rows(frame: pd.DataFrame) -> pd.Series:
    return (
        (~frame["in_bounds"].astype(bool))
        | (frame["error"].astype(str) != "")
        | (frame["state_changes"].astype(str) != "")
    )


def _pair(lib: pd.DataFrame, ref: pd.DataFrame, deterministic: bool) -> pd.DataFrame:
    """Library rows joined to the reference's prediction for the same sample (and seed, for random start)."""
    ref_cols = ref[["seed", "sample", "pred_adv", "label"]].rename(
        columns={"pred_adv": "pred_ref", "label": "label_ref"}
    )
    if deterministic and lib["seed"].nunique() == 1 and ref["seed"].nunique() == 1:
        # A deterministic attack ignores the seed, so a reference that ran under another seed value
        # is still the same attack.
        return lib.merge(ref_cols.drop(columns="seed"), on="sample", how="left")
    return lib.merge(ref_cols, on=["seed", "sample"], how="left")


def _is_exact(lib: pd.DataFrame) -> bool:
    return bool((lib["expectation"] == "exact").all() and (lib["pixels_differ"] >= 0).all())


def _pass_failure(lib: pd.DataFrame) -> str:
    """'' when every seed's cell spent the declared passes per sample (or none were declared), else why not."""
    for seed, sub in lib.groupby("seed"):
        got = [float(sub[f"{kind}_passes"].mean()) for kind in ("forward", "backward")]
        want = [float(sub[f"{kind}_passes_expected"].mean()) for kind in ("forward", "backward")]
        if not all(math.isfinite(v) for v in (*got, *want)):
            continue
        if any(abs(g - w) > PASS_TOLERANCE for g, w in zip(got, want, strict=True)):
            return (
                f"it spent {got[0]:g} forward and {got[1]:g} backward passes per sample (seed {int(seed)}) where "
                f"its adapter documents {want[0]:g} and {want[1]:g} for this attack and step count: a step "
                "skipped or added, or a gradient taken more or fewer times"
            )
    return ""


def _start_text(attack: str, random_start: bool) -> str:
    if attack == "fgsm":
        return "although both took one step from the same x"
    if random_start:
        return "although both started from the same random point"
    return "although both started from x"


def _judge_exact(
    name: str, lib: pd.DataFrame, attack: str, eps: float, random_start: bool, call: str
) -> dict[str, Any]:
    kinds = classify_samples(lib)
    n = len(lib)
    total = int(lib["pixels_total"].iloc[0])
    different = kinds == "different"
    flips = kinds == "near-zero flips"
    max_linf = float(lib["linf_to_ref"].max())
    out: dict[str, Any] = {
        "samples_xadv_differ": int(different.sum()),
        "samples_near_zero_flips": int(flips.sum()),
        "max_pixels_differ": int(lib["pixels_differ"].max()),
    }
    if not different.any():
        flip_text = ""
        if flips.any():
            most = int(lib.loc[flips, "pixels_differ"].max())
            flip_text = (
                f"; the other {int(flips.sum())} differ only in isolated sign flips (at most {most} of "
                f"{total:,} pixels, all where the expected gradient was within round-off of zero): the "
                "same attack"
            )
        seeds = ",".join(str(int(s)) for s in sorted(lib["seed"].unique()))
        start = f", from the library's own random start for seed(s) {seeds}" if random_start else ""
        out["verdict"] = "agree"
        out["reason"] = (
            f"{name}: x_adv equals the expected one on {n - int(flips.sum())} of {n} samples up to float32 "
            f"round-off{start}{flip_text}."
        )
        return out
    pixels = lib.loc[different, "pixels_differ"]
    summary = (
        f"x_adv differs from the expected one in {int(pixels.median()):,} of {total:,} pixels (median; up to "
        f"{int(pixels.max()):,}) on {int(different.sum())} of {n} samples, max L∞ {_linf_text(max_linf)} "
        f"({max_linf / eps:.2g}·eps), {_start_text(attack, random_start)}: a different attack"
    )
    hints = []
    if (lib["linf"] == 0).all():
        hints.append("every x_adv equals x: the library returned its input unchanged")
    elif attack == "fgsm" and (pixels >= 0.5 * total).all() and abs(max_linf - 2 * eps) <= 1e-6:
        hints.append("most pixels are 2·eps apart: the step goes the other way (a reversed sign or loss)")
    hint = f" ({'; '.join(hints)})" if hints else ""
    out["verdict"] = "disagree"
    out["reason"] = (
        f"{name}: {summary}{hint}. Check its step size, step count, start, projection, loss and labels "
        f"against the spec; the samples are listed by {call}."
    )
    return out


def smallest_detectable_shift(n: int, level: float) -> float:
    """The smallest accuracy shift (a proportion) an exact two-sided McNemar test at ``level`` can
    detect on n paired samples: k discordant samples all in one direction give p = 2 · 0.5**k."""
    k = math.floor(math.log2(2 / level)) + 1
    return k / n if n else math.inf


def _judge_statistical(name: str, paired: pd.DataFrame, n_tests: int, why: str, call: str) -> dict[str, Any]:
    level = STATISTICAL_ALPHA / max(1, n_tests)
    # One test per cell over every (sample, seed) pair: under "the same attack from another random
    # start" each discordant pair is equally likely either way, whichever seed it came from, so more
    # seeds add pairs (power) without adding tests (the level stays where it is).
    b, c = discordant(paired["pred_adv"] == paired["label"], paired["pred_ref"] == paired["label"])
    p = mcnemar_exact(b, c)
    n = len(paired)
    detectable_pp = 100 * smallest_detectable_shift(n, level)
    rule = (
        f"exact McNemar against the reference seed of the same value, over {n} sample-seed pairs, at level "
        f"{STATISTICAL_ALPHA} / {n_tests} cell(s) = {level:.3g}"
    )
    out: dict[str, Any] = {"pvalue": p, "detectable_shift_pp": detectable_pp}
    if p < level:
        direction = "weaker" if b > c else "stronger"
        out["verdict"] = "disagree"
        out["reason"] = (
            f"{name}: {why}, and it is measurably {direction} than the reference: p = {p:.3g} (correct where "
            f"the reference is wrong on {b} pairs, the reverse on {c}; {rule}). Check the library's step size, "
            f"step count, start and projection; per-sample differences are listed by {call}."
        )
    elif detectable_pp > MEANINGFUL_SHIFT_PP:
        out["verdict"] = "inconclusive"
        out["reason"] = (
            f"{name}: {why} ({rule}); p = {p:.3g}, no difference found, but with {n} pairs the smallest "
            f"accuracy shift this test could detect is {detectable_pp:.3g} pp, above the "
            f"{MEANINGFUL_SHIFT_PP:g} pp that matters: attack more images or run more seeds."
        )
    else:
        out["verdict"] = "agree"
        out["reason"] = (
            f"{name}: {why} ({rule}); p = {p:.3g}, and the test could detect a shift of {detectable_pp:.3g} pp."
        )
    return out


def _verdict_row(
    library: str, key: tuple[Any, ...], lib: pd.DataFrame, ref: pd.DataFrame, n_statistical_tests: int
) -> dict[str, Any]:
    attack, eps, steps, random_start = str(key[0]), float(key[1]), int(key[2]), bool(key[3])
    deterministic = attack == "fgsm" or not random_start
    name = _cell_name(library, attack, eps, steps, random_start)
    call = f"mismatches(results, {library!r}, {attack!r}, {eps_label(eps)})"
    ref_seed_acc = _seed_accuracies(ref) if len(ref) else pd.Series(dtype=float)
    spread_pp = (
        100 * float(ref_seed_acc.max() - ref_seed_acc.min())
        if (not deterministic and len(ref_seed_acc) >= 2)
        else math.nan
    )
    seconds_per_cell = lib.groupby("seed")["seconds"].first()
    exact = _is_exact(lib)
    row: dict[str, Any] = {
        "library": library,
        "attack": attack,
        "attack_label": attack_label(attack, steps, random_start),
        "eps": eps,
        "eps_label": eps_label(eps),
        "steps": steps,
        "random_start": random_start,
        "seeds": ",".join(str(int(s)) for s in sorted(lib["seed"].unique())),
        "verdict": "invalid",
        "reason": "",
        "judged_on": "x_adv" if exact else "statistics",
        "samples_xadv_differ": 0,
        "samples_near_zero_flips": 0,
        "max_pixels_differ": int(lib["pixels_differ"].max()) if exact else -1,
        "acc_library": _acc(lib),
        "acc_reference": _acc(ref),
        "delta_acc_pp": math.nan,
        "n_differ": 0,
        "n": len(lib),
        "max_linf_to_ref": float(lib["linf_to_ref"].max()),
        "forward_passes": float(lib["forward_passes"].mean()),
        "backward_passes": float(lib["backward_passes"].mean()),
        "forward_passes_expected": float(lib["forward_passes_expected"].mean()),
        "backward_passes_expected": float(lib["backward_passes_expected"].mean()),
        "seconds": float(seconds_per_cell.mean()),
        "pvalue": math.nan,
        "detectable_shift_pp": math.nan,
        "ref_seed_spread_pp": spread_pp,
    }
    bad = _invalid_rows(lib)
    if bad.any():
        errors = [e for e in lib.loc[bad, "error"].astype(str).unique() if e]
        changes = [c for c in lib.loc[bad, "state_changes"].astype(str).unique() if c]
        detail = f" First error: {errors[0]!r}." if errors else ""
        if changes:
            detail += f" It left the model changed: {changes[0]} (the guard restored it)."
        row["reason"] = (
            f"{name}: {int(bad.sum())} of {len(lib)} outputs are outside the eps-ball or [0, 1], or the "
            f"library raised or changed the model.{detail} Its results are not comparable; fix the adapter "
            "or report the library bug before reading this cell."
        )
        return row
    if library == REFERENCE:
        row["delta_acc_pp"] = 0.0
        if deterministic:
            detail = f"accuracy {100 * row['acc_library']:.2f} %"
        elif math.isnan(spread_pp):
            detail = (
                f"accuracy {100 * row['acc_library']:.2f} %; only one seed ran, so how much the random start "
                "moves accuracy is unknown — run at least 2 seeds"
            )
        else:
            detail = (
                f"mean accuracy {100 * row['acc_library']:.2f} %; the random start alone moves it by "
                f"{spread_pp:.2f} pp over seeds {row['seeds']}"
            )
        row["verdict"] = "agree"
        row["reason"] = f"{name}: the arbiter, agrees by definition; {detail}."
        return row
    if ref.empty:
        row["reason"] = (
            f"{name}: no reference cell for this attack and eps, so nothing to compare with; run the "
            "reference for the same spec."
        )
        return row
    if _invalid_rows(ref).any():
        row["reason"] = (
            f"{name}: the reference cell itself is invalid, so this library cannot be judged; fix the reference first."
        )
        return row
    paired = _pair(lib, ref, deterministic)
    unpaired = paired["pred_ref"].isna()
    if unpaired.any():
        missing_seeds = sorted({int(s) for s in paired.loc[unpaired, "seed"]})
        row["reason"] = (
            f"{name}: {int(unpaired.sum())} of {len(paired)} rows have no reference row for the same "
            f"sample{'' if deterministic else ' and seed'} (seeds {missing_seeds}); run the reference on the "
            "same samples and seeds."
        )
        return row
    paired = paired.astype({"pred_ref": int})
    row["n_differ"] = int((paired["pred_adv"] != paired["pred_ref"]).sum())
    row["delta_acc_pp"] = 100 * (_acc(paired) - float(np.mean(paired["pred_ref"] == paired["label"])))
    # Information for exact cells, the criterion for statistical ones.
    b, c = discordant(paired["pred_adv"] == paired["label"], paired["pred_ref"] == paired["label"])
    row["pvalue"] = mcnemar_exact(b, c)
    if exact:
        row.update(_judge_exact(name, lib, attack, eps, random_start, call))
    else:
        why = (
            "its random start cannot be reproduced, so it is judged statistically"
            if lib["pixels_differ"].notna().all()
            else "the run recorded no x_adv evidence for it (made by an older advparity: rerun it), so it "
            "is judged statistically"
        )
        row.update(_judge_statistical(name, paired, n_statistical_tests, why, call))
    passes = _pass_failure(lib)
    if passes:
        # The pass counts lead the reason; x_adv's evidence follows where it also disagrees.
        also = row["reason"].removeprefix(f"{name}: ") if row["verdict"] != "agree" else ""
        row["verdict"] = "disagree"
        row["reason"] = f"{name}: {passes}." + (f" Also: {also}" if also else "")
    return row


def _count_statistical_tests(frame: pd.DataFrame) -> int:
    """Library cells the statistical rule will test (one test each): the Bonferroni divisor."""
    lib = frame[frame["library"] != REFERENCE]
    statistical = lib[(lib["expectation"] != "exact") | lib["pixels_differ"].isna()]
    return int(statistical.groupby(["library", *GROUP_KEYS]).ngroups) if len(statistical) else 0


def documented_departure(library: str, attack: str) -> str:
    """How ``library``'s ``attack`` departs from the reference's, as its adapter documents it; '' if it
    documents none or cannot be loaded here (a run read on another machine)."""
    from advparity import adapters

    if library not in adapters.names():
        return ""
    try:
        return str(adapters.get(library).declaration.departures.get(attack, ""))
    except ImportError:
        return ""


def _unavailable_row(library: str, key: tuple[Any, ...], error: str) -> dict[str, Any]:
    attack, eps, steps, random_start = key
    label = attack_label(str(attack), int(steps), bool(random_start))
    return {
        "library": library,
        "attack": attack,
        "attack_label": label,
        "eps": eps,
        "eps_label": eps_label(float(eps)),
        "steps": steps,
        "random_start": random_start,
        "seeds": "",
        "verdict": "unavailable",
        "reason": f"{library_label(library)} {label} @ {eps_label(float(eps))}: the library is installed but "
        f"cannot run here, so nothing was attacked: {error}",
        "judged_on": "not run",
        "n": 0,
        "n_differ": 0,
        "samples_xadv_differ": 0,
        "samples_near_zero_flips": 0,
    }


def verdicts(results: pd.DataFrame, unavailable: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One verdict row per library × attack × eps × steps × random start; see the module docstring for the rules.

    ``unavailable`` maps libraries that are installed but could not run to their error
    (``Run.unavailable``): each gets the verdict ``unavailable`` at every attack and eps of the run,
    with the error as the reason — not a failure of the library's arithmetic, and not silence either.

    Columns: ``library, attack, attack_label, eps, eps_label, steps, random_start, seeds, verdict``
    (one of :data:`VERDICTS`), ``reason, judged_on`` (``x_adv`` or ``statistics``),
    ``samples_xadv_differ, samples_near_zero_flips, max_pixels_differ`` (the x_adv evidence),
    ``acc_library, acc_reference`` (proportions, mean over seeds), ``delta_acc_pp, n_differ, n``
    (predictions that differ from the reference's own, rows compared: samples × seeds),
    ``max_linf_to_ref`` (to the expected x_adv), ``forward_passes, backward_passes`` and their
    ``_expected`` (per sample), ``seconds`` (per cell, mean over seeds), ``pvalue`` (exact McNemar
    over every sample-seed pair against the reference's same seed, uncorrected: information for exact
    cells, the criterion for statistical ones), ``detectable_shift_pp`` (statistical cells),
    ``ref_seed_spread_pp`` (random start: how much the reference's accuracy moves between its seeds).
    """
    frame = check_results(results)
    n_tests = _count_statistical_tests(frame)
    rows = []
    for key, cell in frame.groupby(GROUP_KEYS, sort=False):
        ref = cell[cell["library"] == REFERENCE]
        for library in ordered_libraries(cell["library"]):
            rows.append(_verdict_row(library, key, cell[cell["library"] == library], ref, n_tests))
        for library, error in (unavailable or {}).items():
            rows.append(_unavailable_row(library, key, error))
    for row in rows:
        if row["verdict"] == "disagree":
            known = documented_departure(str(row["library"]), str(row["attack"]))
            if known:
                row["reason"] += (
                    f" The adapter documents this departure, read from the library's source: {known}."
                )
    out = pd.DataFrame(rows)
    order = (
        out["library"].map(lambda s: library_sort_key(s)[0]),
        out["attack"].map(lambda a: ATTACK_ORDER.index(a) if a in ATTACK_ORDER else len(ATTACK_ORDER)),
    )
    out = (
        out.assign(_lib=order[0], _att=order[1])
        .sort_values(["_lib", "library", "_att", "attack", "random_start", "steps", "eps"])
        .drop(columns=["_lib", "_att"])
        .reset_index(drop=True)
    )
    return out


def run_verdicts(run: Run) -> pd.DataFrame:
    """:func:`verdicts` of a loaded run, with its libraries that were installed but could not run.

    A run holding a library's cell without the reference's is unfinished, not a library's fault: that is
    a ``ValueError`` saying how to finish it, rather than an "invalid" verdict blaming the library.
    """
    _check_reference_cells(run)
    return verdicts(run.results, run.unavailable)


def _check_reference_cells(run: Run) -> None:
    keys = ["attack", "eps", "steps", "random_start"]
    cells = run.results[["library", *keys]].drop_duplicates()
    judged = set(cells.loc[cells["library"] == REFERENCE, keys].itertuples(index=False, name=None))
    orphans = [
        c for c in cells.itertuples(index=False) if c.library != REFERENCE and tuple(c[1:]) not in judged
    ]
    if orphans:
        first = orphans[0]
        cell = f"{library_label(first.library)} {attack_label(first.attack, first.steps, first.random_start)} @ {eps_label(first.eps)}"
        more = f" and {len(orphans) - 1} more cell(s)" if len(orphans) > 1 else ""
        raise ValueError(
            f"{run.run_dir} is unfinished: it holds {cell}{more} but not the reference's cell for it, the "
            "arbiter every library is judged against; run the reference into the same folder (the same `run` "
            "command with --libraries reference, or without --libraries) and report again"
        )


def mismatches(
    results: pd.DataFrame,
    library: str,
    attack: str,
    eps: float,
    random_start: bool | None = None,
    steps: int | None = None,
) -> pd.DataFrame:
    """The samples where ``library``'s x_adv differs from the expected one, or its prediction from the
    reference's own.

    Columns: ``random_start, steps, seed, sample, label, pred_reference, pred_library, kind`` (see
    ``MISMATCH_KINDS``), ``pixels_differ, pixels_differ_near_zero, pixels_total, linf_to_ref``
    (to the expected x_adv), ``linf_to_ref_over_eps, zero_grad``. ``random_start``/``steps`` narrow
    the cells when several variants of the attack ran at that eps.
    """
    frame = check_results(results)
    mask = (frame["attack"] == attack) & np.isclose(frame["eps"], eps, rtol=1e-9, atol=0)
    if random_start is not None:
        mask &= frame["random_start"] == random_start
    if steps is not None:
        mask &= frame["steps"] == steps
    cells = frame[mask]
    lib = cells[cells["library"] == library]
    if lib.empty:
        raise ValueError(
            f"expected rows for library {library!r}, attack {attack!r}, eps {eps_label(eps)}; "
            f"libraries there: {ordered_libraries(cells['library'])}"
        )
    parts = []
    for (rs, st), sub in lib.groupby(["random_start", "steps"]):
        ref = cells[(cells["library"] == REFERENCE) & (cells["random_start"] == rs) & (cells["steps"] == st)]
        paired = _pair(sub, ref, attack == "fgsm" or not rs).reset_index(drop=True)
        kinds = classify_samples(paired)
        keep = (paired["pred_adv"] != paired["pred_ref"]) | ((kinds != "same") & (kinds != "not compared"))
        parts.append(paired[keep].assign(kind=kinds[keep.to_numpy()]))
    differ = pd.concat(parts, ignore_index=True)
    out = pd.DataFrame(
        {
            "random_start": differ["random_start"].astype(bool),
            "steps": differ["steps"].astype(int),
            "seed": differ["seed"].astype(int),
            "sample": differ["sample"].astype(int),
            "label": differ["label"].astype(int),
            "pred_reference": differ["pred_ref"],
            "pred_library": differ["pred_adv"].astype(int),
            "kind": differ["kind"].astype(str),
            "pixels_differ": differ["pixels_differ"],
            "pixels_differ_near_zero": differ["pixels_differ_near_zero"],
            "pixels_total": differ["pixels_total"],
            "linf_to_ref": differ["linf_to_ref"].astype(float),
            "linf_to_ref_over_eps": differ["linf_to_ref"].astype(float) / eps,
            "zero_grad": differ["zero_grad"],
        }
    )
    return out.sort_values(["random_start", "steps", "seed", "sample"]).reset_index(drop=True)
