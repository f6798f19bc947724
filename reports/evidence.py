"""The facts a cross-check verdict is decided on, gathered once per cell before any rule reads them.

A cell is one library's attack variant at one eps (all its seeds), judged against the reference's cell
of the same variant and eps. :func:`gather` turns their rows into a :class:`CellEvidence`; the rules
(``reports/rules.py``) only read it. The thresholds behind the per-sample classification are here,
stated once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from advparity.reports.schema import REFERENCE, eps_label, library_label
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


def smallest_detectable_shift(n: int, level: float) -> float:
    """The smallest accuracy shift (a proportion) an exact two-sided McNemar test at ``level`` can
    detect on n paired samples: k discordant samples all in one direction give p = 2 · 0.5**k."""
    k = math.floor(math.log2(2 / level)) + 1
    return k / n if n else math.inf


def accuracy(frame: pd.DataFrame) -> float:
    return (
        float(np.mean(frame["pred_adv"].to_numpy() == frame["label"].to_numpy())) if len(frame) else math.nan
    )


def invalid_rows(frame: pd.DataFrame) -> pd.Series:
    """Rows whose output broke the eps-ball or [0, 1], whose library raised, or that left the model changed."""
    return (
        (~frame["in_bounds"].astype(bool))
        | (frame["error"].astype(str) != "")
        | (frame["state_changes"].astype(str) != "")
    )


def invariant_rows(frame: pd.DataFrame) -> pd.Series:
    """Rows whose sample broke an invariant on the library's own calls (eps = 0, the batch, a second call)."""
    return frame["invariant_broken"].astype(str) != ""


def recorded_invariants(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The invariants recorded for a cell's rows, one record per seed that recorded them
    (``{"seed", "samples", "checks": [{"name", "why", "passed", "evidence", "samples"}]}``)."""
    records = []
    for seed, sub in frame.groupby("seed", sort=True):
        text = str(sub["invariants"].iloc[0])
        if text:
            records.append({"seed": int(seed), **json.loads(text)})
    return records


def invariant_failure(frame: pd.DataFrame) -> str:
    """What broke, for the reason: each broken check with its samples and evidence ('' where none broke)."""
    if not invariant_rows(frame).any():
        return ""
    parts = []
    for record in recorded_invariants(frame):
        for check in record["checks"]:
            if check["passed"] is False:
                parts.append(
                    f"'{check['name']}' broke on sample(s) {check['samples']} (seed {record['seed']}): "
                    f"{check['evidence']}"
                )
    return "; ".join(dict.fromkeys(parts))


def invariants_summary(frame: pd.DataFrame) -> str:
    """``3 held`` / ``1 broken, 2 held`` / ``2 held, 1 not run`` over the cell's recorded checks, or
    ``not recorded``: the verdict table's column."""
    records = recorded_invariants(frame)
    if not records:
        return "not recorded"
    outcomes = [c["passed"] for r in records for c in r["checks"]]
    counts = {
        "broken": outcomes.count(False),
        "held": outcomes.count(True),
        "not run": outcomes.count(None),
    }
    return ", ".join(f"{n} {what}" for what, n in counts.items() if n)


def pair(lib: pd.DataFrame, ref: pd.DataFrame, deterministic: bool) -> pd.DataFrame:
    """Library rows joined to the reference's prediction for the same sample (and seed, for a seeded attack)."""
    ref_cols = ref[["seed", "sample", "pred_adv", "label"]].rename(
        columns={"pred_adv": "pred_ref", "label": "label_ref"}
    )
    if deterministic and lib["seed"].nunique() == 1 and ref["seed"].nunique() == 1:
        # A deterministic attack ignores the seed, so a reference that ran under another seed value
        # is still the same attack.
        return lib.merge(ref_cols.drop(columns="seed"), on="sample", how="left")
    return lib.merge(ref_cols, on=["seed", "sample"], how="left")


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


@dataclass(frozen=True)
class ExactFacts:
    """How a cell's x_adv compares with the exact x_adv its library must return, sample by sample."""

    n_different: int
    n_flips: int
    most_flipped_pixels: int  # among the near-zero-flip samples
    median_different_pixels: int  # among the different samples
    most_different_pixels: int
    pixels_total: int
    max_linf_to_ref: float
    all_unchanged: bool  # every x_adv equals x
    looks_reversed: bool  # a single L∞ step with most pixels 2·eps apart


@dataclass(frozen=True)
class StatisticalFacts:
    """The exact McNemar test of a cell whose x_adv cannot be compared with an exact expectation."""

    pvalue: float
    b: int  # library correct where the reference is wrong
    c: int  # the reverse
    n_pairs: int
    level: float
    n_tests: int
    detectable_pp: float
    why: str  # why the cell is judged statistically


@dataclass(frozen=True)
class CellEvidence:
    """Everything the rules read about one cell (``reports/rules.py``)."""

    library: str
    attack: str
    label: str
    eps: float
    name: str  # "ART PGD-10 @ 1/255": how every reason starts
    call: str  # the call that lists the cell's samples
    steps: int
    random_start: bool
    seeded: bool
    seeds: str
    n: int
    unavailable: str = ""  # the library's error where it is installed but could not run
    n_invalid: int = 0
    first_error: str = ""
    first_change: str = ""
    reference_missing: bool = False
    reference_invalid: bool = False
    n_unpaired: int = 0
    unpaired_seeds: tuple[int, ...] = ()
    exact: bool = False  # judged on x_adv (an exact expectation was recorded for every row)
    pass_failure: str = ""
    exact_facts: ExactFacts | None = None
    statistical: StatisticalFacts | None = None
    acc_library: float = math.nan
    spread_pp: float = math.nan  # the reference's seed-to-seed accuracy spread (seeded attacks)
    norm: str = "linf"
    # How the expected x_adv was rounded where the library's arithmetic is its own (the rows'
    # ``arithmetic``, from the adapter's offer): quoted beside an agreement ('' for the definition's).
    arithmetic: str = ""
    # How the cell's spec departs from the attack's definition where only some specs of the attack do
    # (the rows' ``departure``); a whole attack's departure comes from the manifest.
    departure: str = ""
    # The invariants the cell's own calls broke, with samples and evidence ('' for none: see
    # adapters/invariants.py).
    invariant_failure: str = ""
    # The verdict table's numeric columns as far as the evidence goes (reports/crosscheck.py).
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def is_reference(self) -> bool:
        return self.library == REFERENCE


def cell_name(library: str, label: str, eps: float, norm: str = "linf") -> str:
    return f"{library_label(library)} {label} @ {eps_label(eps, norm)}"


def count_statistical_tests(frame: pd.DataFrame, group_keys: list[str]) -> int:
    """Library cells the statistical rule will test (one test each): the Bonferroni divisor."""
    lib = frame[frame["library"] != REFERENCE]
    statistical = lib[(lib["expectation"] != "exact") | lib["pixels_differ"].isna()]
    return int(statistical.groupby(["library", *group_keys]).ngroups) if len(statistical) else 0


def unavailable(library: str, key: tuple[Any, ...], cell: pd.DataFrame, error: str) -> CellEvidence:
    """The evidence of a library that is installed but could not run: nothing was attacked."""
    attack, label, eps = str(key[0]), str(key[1]), float(key[2])
    return CellEvidence(
        library=library,
        attack=attack,
        label=label,
        eps=eps,
        name=cell_name(library, label, eps, str(cell["norm"].iloc[0])),
        norm=str(cell["norm"].iloc[0]),
        call="",
        steps=int(cell["steps"].iloc[0]),
        random_start=bool(cell["random_start"].iloc[0]),
        seeded=bool(cell["seeded"].iloc[0]),
        seeds="",
        n=0,
        unavailable=error or "unknown error",
        columns={
            "judged_on": "not run",
            "n": 0,
            "n_differ": 0,
            "samples_xadv_differ": 0,
            "samples_near_zero_flips": 0,
        },
    )


def gather(
    library: str, key: tuple[Any, ...], lib: pd.DataFrame, ref: pd.DataFrame, n_statistical_tests: int
) -> CellEvidence:
    """The evidence of ``library``'s cell ``key`` = (attack, label, eps): its rows ``lib`` and the
    reference's rows ``ref`` of the same variant and eps (checked frames: ``schema.check_results``)."""
    attack, label, eps = str(key[0]), str(key[1]), float(key[2])
    first = lib.iloc[0]
    norm = str(first["norm"])
    seeded = bool(first["seeded"])
    deterministic = not seeded
    exact = bool((lib["expectation"] == "exact").all() and (lib["pixels_differ"] >= 0).all())
    seed_acc = (
        ref.groupby("seed")[["pred_adv", "label"]].apply(accuracy) if len(ref) else pd.Series(dtype=float)
    )
    spread_pp = (
        100 * float(seed_acc.max() - seed_acc.min())
        if (not deterministic and len(seed_acc) >= 2)
        else math.nan
    )
    base: dict[str, Any] = {
        "library": library,
        "attack": attack,
        "label": label,
        "eps": eps,
        "name": cell_name(library, label, eps, norm),
        "call": f"mismatches(results, {library!r}, {attack!r}, {eps_label(eps, norm)}"
        + (")" if norm == "linf" else f", norm={norm!r})"),
        "norm": norm,
        "arithmetic": str(first["arithmetic"]) if exact else "",
        "departure": str(first["departure"]),
        "steps": int(first["steps"]),
        "random_start": bool(first["random_start"]),
        "seeded": seeded,
        "seeds": ",".join(str(int(s)) for s in sorted(lib["seed"].unique())),
        "n": len(lib),
        "exact": exact,
        "acc_library": accuracy(lib),
        "spread_pp": spread_pp,
        "invariant_failure": invariant_failure(lib),
    }
    columns: dict[str, Any] = {
        "judged_on": "x_adv" if exact else "statistics",
        "samples_xadv_differ": 0,
        "samples_near_zero_flips": 0,
        "max_pixels_differ": int(lib["pixels_differ"].max()) if exact else -1,
        "acc_library": accuracy(lib),
        "acc_reference": accuracy(ref),
        "delta_acc_pp": math.nan,
        "n_differ": 0,
        "n": len(lib),
        "max_linf_to_ref": float(lib["linf_to_ref"].max()),
        "forward_passes": float(lib["forward_passes"].mean()),
        "backward_passes": float(lib["backward_passes"].mean()),
        "forward_passes_expected": float(lib["forward_passes_expected"].mean()),
        "backward_passes_expected": float(lib["backward_passes_expected"].mean()),
        "seconds": float(lib.groupby("seed")["seconds"].first().mean()),
        "pvalue": math.nan,
        "detectable_shift_pp": math.nan,
        "ref_seed_spread_pp": spread_pp,
        "invariants": invariants_summary(lib),
    }
    bad = invalid_rows(lib)
    if bad.any():
        errors = [e for e in lib.loc[bad, "error"].astype(str).unique() if e]
        changes = [c for c in lib.loc[bad, "state_changes"].astype(str).unique() if c]
        return CellEvidence(
            **base,
            n_invalid=int(bad.sum()),
            first_error=errors[0] if errors else "",
            first_change=changes[0] if changes else "",
            columns=columns,
        )
    if library == REFERENCE:
        return CellEvidence(**base, columns={**columns, "delta_acc_pp": 0.0})
    if ref.empty:
        return CellEvidence(**base, reference_missing=True, columns=columns)
    if invalid_rows(ref).any() or invariant_rows(ref).any():
        return CellEvidence(**base, reference_invalid=True, columns=columns)
    paired = pair(lib, ref, deterministic)
    unpaired = paired["pred_ref"].isna()
    if unpaired.any():
        seeds = tuple(sorted({int(s) for s in paired.loc[unpaired, "seed"]}))
        return CellEvidence(**base, n_unpaired=int(unpaired.sum()), unpaired_seeds=seeds, columns=columns)
    paired = paired.astype({"pred_ref": int})
    columns["n_differ"] = int((paired["pred_adv"] != paired["pred_ref"]).sum())
    columns["delta_acc_pp"] = 100 * (accuracy(paired) - float(np.mean(paired["pred_ref"] == paired["label"])))
    # Information for exact cells, the criterion for statistical ones.
    b, c = discordant(paired["pred_adv"] == paired["label"], paired["pred_ref"] == paired["label"])
    columns["pvalue"] = mcnemar_exact(b, c)
    exact_facts = statistical = None
    if exact:
        exact_facts = _exact_facts(lib, eps)
        columns["samples_xadv_differ"] = exact_facts.n_different
        columns["samples_near_zero_flips"] = exact_facts.n_flips
        columns["max_pixels_differ"] = int(lib["pixels_differ"].max())
    else:
        statistical = _statistical_facts(lib, b, c, len(paired), n_statistical_tests)
        columns["pvalue"] = statistical.pvalue
        columns["detectable_shift_pp"] = statistical.detectable_pp
    return CellEvidence(
        **base,
        pass_failure=_pass_failure(lib),
        exact_facts=exact_facts,
        statistical=statistical,
        columns=columns,
    )


def _exact_facts(lib: pd.DataFrame, eps: float) -> ExactFacts:
    kinds = classify_samples(lib)
    total = int(lib["pixels_total"].iloc[0])
    different = kinds == "different"
    flips = kinds == "near-zero flips"
    max_linf = float(lib["linf_to_ref"].max())
    pixels = lib.loc[different, "pixels_differ"]
    single_linf_step = int(lib["steps"].iloc[0]) == 1 and str(lib["norm"].iloc[0]) == "linf"
    return ExactFacts(
        n_different=int(different.sum()),
        n_flips=int(flips.sum()),
        most_flipped_pixels=int(lib.loc[flips, "pixels_differ"].max()) if flips.any() else 0,
        median_different_pixels=int(pixels.median()) if len(pixels) else 0,
        most_different_pixels=int(pixels.max()) if len(pixels) else 0,
        pixels_total=total,
        max_linf_to_ref=max_linf,
        all_unchanged=bool((lib["linf"] == 0).all()),
        looks_reversed=bool(
            single_linf_step
            and len(pixels)
            and (pixels >= 0.5 * total).all()
            and abs(max_linf - 2 * eps) <= 1e-6
        ),
    )


def _statistical_facts(lib: pd.DataFrame, b: int, c: int, n_pairs: int, n_tests: int) -> StatisticalFacts:
    # One test per cell over every (sample, seed) pair: under "the same attack from another random
    # start" each discordant pair is equally likely either way, whichever seed it came from, so more
    # seeds add pairs (power) without adding tests (the level stays where it is).
    level = STATISTICAL_ALPHA / max(1, n_tests)
    why = (
        "its random start cannot be reproduced, so it is judged statistically"
        if lib["pixels_differ"].notna().all()
        else "the run recorded no x_adv evidence for it (made by an older advparity: rerun it), so it "
        "is judged statistically"
    )
    return StatisticalFacts(
        pvalue=mcnemar_exact(b, c),
        b=b,
        c=c,
        n_pairs=n_pairs,
        level=level,
        n_tests=n_tests,
        detectable_pp=100 * smallest_detectable_shift(n_pairs, level),
        why=why,
    )
