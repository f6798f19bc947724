"""Cross-check verdicts: does each library's FGSM/PGD give the reference's answers? (DESIGN.md §Cross-check rules)

One verdict per library × attack × eps × steps × random start, the reference included as its own row.
The rules, in the order they are applied:

1. **invalid** — any output of the cell broke the eps-ball or [0, 1] (``in_bounds`` False) or the
   library raised (``error`` non-empty); or the reference cell is missing or itself invalid; or some
   library rows have no reference row for the same seed and sample. Accuracy is not read at all.
2. **Deterministic** attacks (FGSM; PGD without random start) — *agree* iff at least
   ``DETERMINISTIC_MIN_SHARE_EQUAL`` (99.5 %) of per-sample predictions equal the reference's *and*
   accuracy is within ``DETERMINISTIC_MAX_DELTA_PP`` (0.5 pp). Every differing sample is classified by
   its ``linf_to_ref``: 2·eps (the two x_adv step in opposite directions on some pixel — a near-zero
   gradient component whose sign flipped, typically a loss-reduction difference), eps (one of them
   took no step on a pixel: sign(0) = 0 on an exactly-zero gradient), ~0 (the same x_adv up to
   round-off, a sample on a decision boundary) or other (a different attack).
3. **Random-start PGD** — each library seed is paired with the reference seed of the same value (the
   start noise comes from different generators, so only statistics can agree). *agree* iff the exact
   McNemar test on correct/incorrect, library vs reference on the same images, gives
   p ≥ ``RANDOM_START_MIN_PVALUE`` (0.01) for *every* seed pair, *and* |Δacc| (mean over seeds) is
   within a tolerance of max(the reference's own seed-to-seed spread, the 95 % paired noise bound
   ``1.96·sqrt((b + c) / n²)`` averaged over seeds, 0.5 pp). Why both: McNemar alone has little power on
   a few hundred images, and the reference's spread alone is a single noisy draw when two seeds ran
   (it may be 0); the noise bound keeps the tolerance honest at small n, the spread at large n.

The reference's own row is *agree* by definition unless it is invalid; its reason states its accuracy
and, for random start, its seed-to-seed spread.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from reports.schema import (
    ATTACK_ORDER,
    REFERENCE,
    attack_label,
    check_results,
    eps_label,
    library_label,
    library_sort_key,
    ordered_libraries,
)
from reports.stats import discordant, mcnemar_exact

DETERMINISTIC_MIN_SHARE_EQUAL = 0.995
DETERMINISTIC_MAX_DELTA_PP = 0.5
RANDOM_START_MIN_PVALUE = 0.01
# z for the 95 % two-sided noise bound on a paired accuracy difference.
RANDOM_START_Z = 1.96
# Floor of the random-start tolerance: with zero discordant samples the noise bound is 0, and a
# 0 pp tolerance would be stricter than the deterministic rule.
RANDOM_START_MIN_TOLERANCE_PP = DETERMINISTIC_MAX_DELTA_PP
# x_adv that differ by no more than this (pixel units, ~8 float32 ulps at 1.0) are the same image.
ROUND_OFF_LINF = 1e-6
# linf_to_ref within this of eps or 2·eps counts as exactly that: a float32 add and subtract of pixel
# values near 1 each round by up to one ulp (1.19e-7), a difference of two such values by ~3 ulps.
LINF_MATCH_TOL = 5e-7

VERDICTS: tuple[str, ...] = ("agree", "disagree", "invalid")
GROUP_KEYS: list[str] = ["attack", "eps", "steps", "random_start"]

RULES: tuple[str, ...] = (
    "Any output outside the eps-ball or [0, 1] (tolerance 1.2e-7), or a library error, makes the cell "
    "invalid whatever its accuracy; so does a missing or invalid reference cell.",
    f"Deterministic attacks (FGSM; PGD without random start): agree iff at least "
    f"{DETERMINISTIC_MIN_SHARE_EQUAL:.1%} of per-sample predictions equal the reference's and accuracy "
    f"is within {DETERMINISTIC_MAX_DELTA_PP} pp; every differing sample is listed with its L∞ distance "
    "to the reference's x_adv.",
    f"Random-start PGD: each library seed is paired with the reference seed of the same value; agree iff "
    f"the exact McNemar test (correct/incorrect, same images) gives p ≥ {RANDOM_START_MIN_PVALUE} for "
    "every seed pair and |Δacc| (mean over seeds) is within max(the reference's seed-to-seed spread, the "
    f"95 % paired noise bound, {RANDOM_START_MIN_TOLERANCE_PP} pp).",
    "The reference is the arbiter: its own row agrees by definition unless it is invalid.",
)

MISMATCH_KINDS: dict[str, str] = {
    "2eps": "linf_to_ref = 2·eps: the two x_adv step in opposite directions on some pixel, a near-zero "
    "gradient component whose sign flipped (e.g. a mean- vs sum-reduced loss)",
    "eps": "linf_to_ref = eps: one of them took no step on some pixel (sign(0) = 0 on an exactly-zero gradient)",
    "round-off": "linf_to_ref ≈ 0: the same x_adv up to float round-off, a sample on a decision boundary",
    "other": "linf_to_ref elsewhere in (0, 2·eps]: a different perturbation, i.e. a different attack",
    "no reference": "no reference x_adv to compare with",
}


def classify_linf_to_ref(linf_to_ref: npt.ArrayLike, eps: float) -> npt.NDArray[np.str_]:
    """Name each distance to the reference's x_adv: ``2eps``, ``eps``, ``round-off``, ``other`` or ``no reference``."""
    d = np.asarray(linf_to_ref, dtype=float)
    kinds = np.full(d.shape, "other", dtype=object)
    kinds[np.abs(d - eps) <= LINF_MATCH_TOL] = "eps"
    kinds[np.abs(d - 2 * eps) <= LINF_MATCH_TOL] = "2eps"
    # Round-off wins over "eps" only for eps below the tolerance, which no real grid has.
    kinds[d <= ROUND_OFF_LINF] = "round-off"
    kinds[np.isnan(d)] = "no reference"
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
    return (~frame["in_bounds"].astype(bool)) | (frame["error"].astype(str) != "")


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


def _explain_mismatches(paired: pd.DataFrame, eps: float) -> tuple[str, dict[str, int]]:
    differ = paired[paired["pred_adv"] != paired["pred_ref"]]
    kinds = pd.Series(classify_linf_to_ref(differ["linf_to_ref"], eps)).value_counts().to_dict()
    parts = []
    texts = {
        "2eps": "{k} have linf_to_ref = 2·eps (opposite steps on some pixel: sign flips of near-zero gradient components)",
        "eps": "{k} have linf_to_ref = eps (one side took no step where the gradient is exactly 0)",
        "round-off": "{k} have the reference's x_adv up to round-off (borderline samples)",
        "other": "{k} differ by other amounts (max linf_to_ref {m})",
        "no reference": "{k} have no reference x_adv",
    }
    max_other = differ["linf_to_ref"][classify_linf_to_ref(differ["linf_to_ref"], eps) == "other"].max()
    for kind in ("2eps", "eps", "round-off", "other", "no reference"):
        k = int(kinds.get(kind, 0))
        if k:
            parts.append(texts[kind].format(k=k, m=_linf_text(float(max_other) if k else math.nan)))
    n_zero = int((differ["zero_grad"].fillna(0) > 0).sum()) if "zero_grad" in differ else 0
    text = "; ".join(parts)
    if n_zero:
        text += f"; {n_zero} of them have exactly-zero input-gradient components"
    return text, {str(k): int(v) for k, v in kinds.items()}


def _judge_deterministic(name: str, paired: pd.DataFrame, eps: float, call: str) -> dict[str, Any]:
    n = len(paired)
    n_differ = int((paired["pred_adv"] != paired["pred_ref"]).sum())
    share_equal = 1 - n_differ / n
    delta_pp = 100 * (_acc(paired) - float(np.mean(paired["pred_ref"] == paired["label"])))
    ok_share = share_equal >= DETERMINISTIC_MIN_SHARE_EQUAL
    ok_delta = abs(delta_pp) <= DETERMINISTIC_MAX_DELTA_PP + 1e-9
    if n_differ == 0:
        reason = f"{name}: all {n} predictions equal the reference's (max linf_to_ref {_linf_text(paired['linf_to_ref'].max())})."
        return {"verdict": "agree", "reason": reason, "n_differ": 0, "n": n, "delta_acc_pp": delta_pp}
    explanation, _ = _explain_mismatches(paired, eps)
    head = f"{name}: {n_differ} of {n} predictions differ from the reference ({100 * (1 - share_equal):.2g} %"
    if ok_share and ok_delta:
        reason = (
            f"{head}, within the {100 * (1 - DETERMINISTIC_MIN_SHARE_EQUAL):.2g} % allowed), "
            f"Δacc {delta_pp:+.2f} pp; {explanation}. Listed by {call}."
        )
        return {"verdict": "agree", "reason": reason, "n_differ": n_differ, "n": n, "delta_acc_pp": delta_pp}
    failed = []
    if not ok_share:
        failed.append(f"at most {100 * (1 - DETERMINISTIC_MIN_SHARE_EQUAL):.2g} % may differ")
    if not ok_delta:
        failed.append(f"Δacc {delta_pp:+.2f} pp exceeds ±{DETERMINISTIC_MAX_DELTA_PP} pp")
    mostly_other = "differ by other amounts" in explanation
    advice = (
        "The library computes a different perturbation here: check its step size, step count, loss and "
        "labels against the spec"
        if mostly_other
        else "The perturbations are the same attack up to the sign of near-zero gradient components; "
        "these samples sit on a decision boundary, so check the loss reduction the library uses"
    )
    reason = f"{head}; {'; '.join(failed)}): {explanation}. {advice}; the samples are listed by {call}."
    return {"verdict": "disagree", "reason": reason, "n_differ": n_differ, "n": n, "delta_acc_pp": delta_pp}


def _judge_random_start(
    name: str, paired: pd.DataFrame, spread_pp: float, n_ref_seeds: int, call: str
) -> dict[str, Any]:
    pvalues: dict[int, float] = {}
    noise_terms = []
    bc: dict[int, tuple[int, int]] = {}
    for seed, sub in paired.groupby("seed"):
        b, c = discordant(sub["pred_adv"] == sub["label"], sub["pred_ref"] == sub["label"])
        pvalues[int(seed)] = mcnemar_exact(b, c)
        bc[int(seed)] = (b, c)
        noise_terms.append((b + c) / len(sub) ** 2)
    min_p = min(pvalues.values())
    noise_pp = 100 * RANDOM_START_Z * math.sqrt(float(np.mean(noise_terms)))
    spread = 0.0 if math.isnan(spread_pp) else spread_pp
    tolerance_pp = max(spread, noise_pp, RANDOM_START_MIN_TOLERANCE_PP)
    delta_pp = 100 * (_acc(paired) - float(np.mean(paired["pred_ref"] == paired["label"])))
    n = len(paired)
    n_differ = int((paired["pred_adv"] != paired["pred_ref"]).sum())
    ok_p = min_p >= RANDOM_START_MIN_PVALUE
    ok_delta = abs(delta_pp) <= tolerance_pp + 1e-9
    spread_text = (
        f"the reference's seed-to-seed spread {spread_pp:.2f} pp"
        if not math.isnan(spread_pp)
        else "the reference's seed-to-seed spread (unknown: it ran one seed)"
    )
    tol_text = f"±{tolerance_pp:.2f} pp = max({spread_text}, paired noise {noise_pp:.2f} pp, {RANDOM_START_MIN_TOLERANCE_PP} pp)"
    note = (
        " The reference ran one seed, so its seed-to-seed spread is unknown: run at least 2 seeds."
        if n_ref_seeds < 2
        else ""
    )
    result: dict[str, Any] = {
        "n_differ": n_differ,
        "n": n,
        "delta_acc_pp": delta_pp,
        "pvalue": min_p,
        "tolerance_pp": tolerance_pp,
    }
    if ok_p and ok_delta:
        result["verdict"] = "agree"
        result["reason"] = (
            f"{name}: statistically the reference's attack — lowest exact McNemar p = {min_p:.3g} over "
            f"{len(pvalues)} seed pair(s) (≥ {RANDOM_START_MIN_PVALUE} required), Δacc {delta_pp:+.2f} pp within "
            f"{tol_text}; {n_differ} of {n} per-sample predictions differ, as different random starts do.{note}"
        )
        return result
    failed = []
    for seed, p in sorted(pvalues.items()):
        if p < RANDOM_START_MIN_PVALUE:
            b, c = bc[seed]
            failed.append(
                f"seed {seed}: exact McNemar p = {p:.3g} < {RANDOM_START_MIN_PVALUE} (correct where the "
                f"reference is wrong on {b} samples, the reverse on {c})"
            )
    if not ok_delta:
        failed.append(f"Δacc {delta_pp:+.2f} pp is outside {tol_text}")
    direction = "weaker" if delta_pp > 0 else "stronger"
    result["verdict"] = "disagree"
    result["reason"] = (
        f"{name}: measurably {direction} than the reference — {'; '.join(failed)}. Check the library's step "
        f"size (eps/4), step count, random-start distribution and projection; per-sample differences are "
        f"listed by {call}.{note}"
    )
    return result


def _verdict_row(library: str, key: tuple[Any, ...], lib: pd.DataFrame, ref: pd.DataFrame) -> dict[str, Any]:
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
        "acc_library": _acc(lib),
        "acc_reference": _acc(ref),
        "delta_acc_pp": math.nan,
        "n_differ": 0,
        "n": len(lib),
        "max_linf_to_ref": float(lib["linf_to_ref"].max()),
        "forward_passes": float(lib["forward_passes"].mean()),
        "backward_passes": float(lib["backward_passes"].mean()),
        "seconds": float(seconds_per_cell.mean()),
        "pvalue": math.nan,
        "ref_seed_spread_pp": spread_pp,
        "tolerance_pp": math.nan,
    }
    bad = _invalid_rows(lib)
    if bad.any():
        errors = [e for e in lib.loc[bad, "error"].astype(str).unique() if e]
        first = f" First error: {errors[0]!r}." if errors else ""
        row["reason"] = (
            f"{name}: {int(bad.sum())} of {len(lib)} outputs are outside the eps-ball or [0, 1], or the "
            f"library raised.{first} Its accuracy is not comparable; fix the adapter or report the library "
            "bug before reading this cell."
        )
        return row
    if library == REFERENCE:
        row["delta_acc_pp"] = 0.0
        if deterministic:
            detail = f"accuracy {100 * row['acc_library']:.2f} %"
        elif math.isnan(spread_pp):
            detail = (
                f"accuracy {100 * row['acc_library']:.2f} %; only one seed ran, so its seed-to-seed spread "
                "is unknown — run at least 2 seeds"
            )
        else:
            detail = (
                f"mean accuracy {100 * row['acc_library']:.2f} %, seed-to-seed spread {spread_pp:.2f} pp "
                f"over seeds {row['seeds']}"
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
    if deterministic:
        row.update(_judge_deterministic(name, paired, eps, call))
    else:
        n_ref_seeds = int(ref["seed"].nunique())
        row.update(_judge_random_start(name, paired, spread_pp, n_ref_seeds, call))
    return row


def verdicts(results: pd.DataFrame) -> pd.DataFrame:
    """One verdict row per library × attack × eps × steps × random start; see the module docstring for the rules.

    Columns: ``library, attack, attack_label, eps, eps_label, steps, random_start, seeds, verdict,
    reason, acc_library, acc_reference`` (proportions, mean over seeds), ``delta_acc_pp, n_differ, n``
    (rows compared, samples × seeds), ``max_linf_to_ref, forward_passes, backward_passes`` (per
    sample), ``seconds`` (per cell, mean over seeds), ``pvalue`` (random start: the lowest exact
    McNemar p over seed pairs), ``ref_seed_spread_pp, tolerance_pp`` (random start).
    """
    frame = check_results(results)
    rows = []
    for key, cell in frame.groupby(GROUP_KEYS, sort=False):
        ref = cell[cell["library"] == REFERENCE]
        for library in ordered_libraries(cell["library"]):
            rows.append(_verdict_row(library, key, cell[cell["library"] == library], ref))
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


def mismatches(
    results: pd.DataFrame,
    library: str,
    attack: str,
    eps: float,
    random_start: bool | None = None,
    steps: int | None = None,
) -> pd.DataFrame:
    """The samples where ``library``'s prediction differs from the reference's, with their ``linf_to_ref``.

    Columns: ``random_start, steps, seed, sample, label, pred_reference, pred_library, linf_to_ref,
    linf_to_ref_over_eps, kind`` (see ``MISMATCH_KINDS``), ``zero_grad``. ``random_start``/``steps``
    narrow the cells when several variants of the attack ran at that eps.
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
        paired = _pair(sub, ref, attack == "fgsm" or not rs)
        parts.append(paired[paired["pred_adv"] != paired["pred_ref"]])
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
            "linf_to_ref": differ["linf_to_ref"].astype(float),
            "linf_to_ref_over_eps": differ["linf_to_ref"].astype(float) / eps,
            "kind": classify_linf_to_ref(differ["linf_to_ref"], eps),
            "zero_grad": differ["zero_grad"],
        }
    )
    return out.sort_values(["random_start", "steps", "seed", "sample"]).reset_index(drop=True)
