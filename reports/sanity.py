"""Sanity checks on a run, in the spirit of AutoAttack's flags and Carlini et al.'s evaluation checklist.

Each check is a small named function returning :class:`Finding` objects; ``EXPLANATIONS[name]`` is the
one sentence the report prints beside it (what the flag means and what to do). "Beyond noise" means
beyond the 95 % Clopper-Pearson interval of the cell it is compared with, computed on the lowest seed
(see :mod:`reports.summary`): attacks on the same images are paired, so genuine noise is smaller than
that interval and a flag is a real effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from advparity.reports.schema import check_clean, check_results, eps_label, library_label, library_sort_key
from advparity.reports.summary import cell_summary, lowest_seed

Severity = Literal["error", "warning", "info"]

# Float32 eps-ball tolerance (as the harness uses): 8-bit rounding may move a pixel by up to this much more.
EPS_TOLERANCE = 1.2e-7
LARGE_EPS = 8 / 255
# An undefended model under PGD at 8/255 should be at (almost) 0 %; 5 % leaves room for a few
# samples where the loss is flat, without hiding gradient masking.
LARGE_EPS_MAX_ACC = 0.05
# Below half a grey level, rounding x_adv to multiples of 1/255 returns the clean 8-bit image.
EIGHT_BIT_ERASED_BELOW = 0.5 / 255

EXPLANATIONS: dict[str, str] = {
    "accuracy_monotone_in_eps": "A larger eps-ball contains the smaller one, so a working attack can only do "
    "better with more budget; accuracy that rises with eps beyond noise points to a broken step size, "
    "projection or gradient (e.g. gradient masking).",
    "pgd_at_least_fgsm": "PGD with the same eps searches the same ball with more steps, so it should be at "
    "least as strong as FGSM; a PGD accuracy above FGSM's beyond noise means the PGD is misconfigured "
    "(steps, step size, random start) or its gradients are masked.",
    "more_steps_at_least_as_strong": "More PGD steps at the same eps and step size can only find a "
    "loss at least as high; if accuracy rises with steps, the iteration is not converging as it should.",
    "outputs_in_bounds": "Every x_adv must lie in [0, 1] and within eps of x (float32 tolerance 1.2e-7); an "
    "output outside makes the cell's numbers meaningless — these cells are marked invalid.",
    "large_eps_near_zero": "With an eps of 8/255 or more, PGD should drive an undefended model's accuracy "
    "near 0 %; if it does not, the attack is not reaching the model (masked or clipped gradients, a "
    "wrong eps unit).",
    "eight_bit_survival": "Saving x_adv as an 8-bit PNG rounds every pixel to a multiple of 1/255; below "
    "0.5/255 that returns the clean image, so none of the attack's flips should survive — the share that "
    "does tells you whether the reported fragility exists outside float32 memory.",
    "zero_gradient_pixels": "A mean-reduced float32 loss can underflow to an exactly-zero input gradient, "
    "and sign(0) = 0 leaves that pixel untouched; samples with zero components are attacked with less "
    "than the full budget, and libraries may treat them differently.",
    "clean_predictions_consistent": "Every cell must start from the same clean predictions as "
    "clean.parquet; a mismatch means cells were computed with a different model, data or preprocessing.",
}


@dataclass(frozen=True)
class Finding:
    """The outcome of one sanity check. ``passed`` False with severity ``info`` is a note, not a failure."""

    name: str
    severity: Severity
    passed: bool
    message: str
    # False when the run holds nothing the check could test (e.g. no eps ≥ 8/255); ``passed`` is then True.
    tested: bool = True

    @classmethod
    def untested(cls, name: str, message: str) -> Finding:
        """The run holds nothing this check could test: an info note that passes and says why."""
        return cls(name, "info", True, message, tested=False)

    @property
    def explanation(self) -> str:
        """The one-sentence explanation the report prints beside the finding."""
        return EXPLANATIONS.get(self.name, "")


def _warn_if(name: str, problems: list[str], all_clear: str) -> list[Finding]:
    """A failed warning listing ``problems``, or a passed one saying ``all_clear``."""
    if problems:
        return [Finding(name, "warning", False, "; ".join(problems) + ".")]
    return [Finding(name, "warning", True, all_clear)]


def _variant(row: pd.Series) -> str:
    return f"{library_label(str(row['library']))} {row['attack_label']}"


def accuracy_monotone_in_eps(results: pd.DataFrame) -> list[Finding]:
    """Flag every sweep (library × attack variant) where accuracy at a larger eps exceeds the CI of a smaller one."""
    cells = cell_summary(results)
    problems = []
    sweeps = 0
    for _, sweep in cells.groupby(["library", "attack_label"], sort=False):
        sweep = sweep.sort_values("eps").reset_index(drop=True)
        if len(sweep) < 2:
            continue
        sweeps += 1
        worst: tuple[float, int, int] | None = None
        for j in range(1, len(sweep)):
            for i in range(j):
                excess = sweep.loc[j, "acc"] - sweep.loc[i, "cp_high"]
                if excess > 0 and (worst is None or excess > worst[0]):
                    worst = (excess, i, j)
        if worst is not None:
            _, i, j = worst
            lo, hi = sweep.loc[i], sweep.loc[j]
            problems.append(
                f"{_variant(lo)}: accuracy rises from {100 * lo['acc']:.1f} % at {lo['eps_label']} to "
                f"{100 * hi['acc']:.1f} % at {hi['eps_label']}, above the 95 % CI of the smaller eps "
                f"(upper bound {100 * lo['cp_high']:.1f} %)"
            )
    if sweeps == 0:
        return [Finding.untested("accuracy_monotone_in_eps", "not tested: no attack ran at two or more eps.")]
    return _warn_if(
        "accuracy_monotone_in_eps",
        problems,
        f"accuracy never rises with eps beyond the 95 % CI, in {sweeps} sweeps.",
    )


def pgd_at_least_fgsm(results: pd.DataFrame) -> list[Finding]:
    """Flag every library × norm × eps where a PGD variant's accuracy is above FGSM's 95 % CI (FGSM from
    x itself, in the same norm)."""
    cells = cell_summary(results)
    cells = cells[~cells["targeted"]]  # a targeted attack seeks its target, not any wrong class
    fgsm = cells[(cells["attack"] == "fgsm") & ~cells["random_start"]]
    pgd = cells[cells["attack"] == "pgd"]
    merged = pgd.merge(fgsm, on=["library", "norm", "eps"], suffixes=("", "_fgsm"))
    if merged.empty:
        return [Finding.untested("pgd_at_least_fgsm", "not tested: no eps has both FGSM and PGD cells.")]
    bad = merged[merged["acc"] > merged["cp_high_fgsm"]]
    if bad.empty:
        return [
            Finding(
                "pgd_at_least_fgsm",
                "warning",
                True,
                f"PGD is at least as strong as FGSM (within noise) in all {len(merged)} comparisons.",
            )
        ]
    parts = [
        f"{_variant(r)} at {r['eps_label']}: {100 * r['acc']:.1f} % vs FGSM {100 * r['acc_fgsm']:.1f} % "
        f"(FGSM upper 95 % bound {100 * r['cp_high_fgsm']:.1f} %)"
        for _, r in bad.iterrows()
    ]
    return [Finding("pgd_at_least_fgsm", "warning", False, "PGD weaker than FGSM: " + "; ".join(parts) + ".")]


def more_steps_at_least_as_strong(results: pd.DataFrame) -> list[Finding]:
    """Flag PGD cells where more steps (same library, eps, random start) give accuracy above the CI of fewer."""
    cells = cell_summary(results)
    pgd = cells[(cells["attack"] == "pgd") & ~cells["targeted"]]
    problems = []
    compared = 0
    for _, group in pgd.groupby(["library", "norm", "eps", "random_start"]):
        if group["steps"].nunique() < 2:
            continue
        group = group.sort_values("steps").reset_index(drop=True)
        for j in range(1, len(group)):
            compared += 1
            fewer, more = group.loc[j - 1], group.loc[j]
            if more["acc"] > fewer["cp_high"]:
                problems.append(
                    f"{library_label(str(more['library']))} at {more['eps_label']}: {int(more['steps'])} steps "
                    f"{100 * more['acc']:.1f} % vs {int(fewer['steps'])} steps {100 * fewer['acc']:.1f} %"
                )
    if compared == 0:
        return [
            Finding.untested(
                "more_steps_at_least_as_strong", "not tested: every PGD cell ran one step count."
            )
        ]
    return _warn_if(
        "more_steps_at_least_as_strong",
        problems,
        f"more steps were at least as strong in all {compared} comparisons.",
    )


def outputs_in_bounds(results: pd.DataFrame) -> list[Finding]:
    """Flag every cell with an output outside [0, 1] / the eps-ball, or a library error."""
    # Every seed, not only the lowest: one bad output anywhere makes its cell invalid.
    frame = check_results(results)
    bad = frame[~frame["in_bounds"] | (frame["error"] != "")]
    if bad.empty:
        return [Finding("outputs_in_bounds", "error", True, f"all {len(frame)} outputs are in bounds.")]
    parts = []
    for (library, label, norm, eps), cell in bad.groupby(["library", "attack_label", "norm", "eps"]):
        errors = [e for e in cell["error"].unique() if e]
        first = f" ({errors[0]})" if errors else ""
        parts.append(f"{library_label(library)} {label} @ {eps_label(eps, norm)}: {len(cell)} rows{first}")
    return [
        Finding("outputs_in_bounds", "error", False, "out of bounds or failed: " + "; ".join(parts) + ".")
    ]


def large_eps_near_zero(results: pd.DataFrame) -> list[Finding]:
    """L∞ PGD accuracy at eps ≥ 8/255 must be at most 5 %; not tested when the grid stops below 8/255."""
    cells = cell_summary(results)
    cells = cells[(cells["norm"] == "linf") & ~cells["targeted"]]
    top = float(cells["eps"].max()) if len(cells) else 0.0
    if top < LARGE_EPS - 1e-12:
        return [
            Finding.untested(
                "large_eps_near_zero",
                f"not tested: the largest eps in this run is {eps_label(top)} (< 8/255).",
            )
        ]
    large = cells[(cells["attack"] == "pgd") & (cells["eps"] >= LARGE_EPS - 1e-12)]
    if large.empty:
        return [Finding.untested("large_eps_near_zero", "not tested: no PGD cell at eps ≥ 8/255.")]
    bad = large[large["acc"] > LARGE_EPS_MAX_ACC]
    if bad.empty:
        return [
            Finding(
                "large_eps_near_zero",
                "warning",
                True,
                f"PGD at eps ≥ 8/255 leaves at most {100 * large['acc'].max():.1f} % accuracy.",
            )
        ]
    parts = [f"{_variant(r)} at {r['eps_label']}: {100 * r['acc']:.1f} %" for _, r in bad.iterrows()]
    return [
        Finding(
            "large_eps_near_zero",
            "warning",
            False,
            f"accuracy above {100 * LARGE_EPS_MAX_ACC:.0f} % at large eps: " + "; ".join(parts) + ".",
        )
    ]


def eight_bit_survival_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per library × L∞ attack variant × eps (lowest seed): how many of the attack's flips survive 8-bit
    rounding. (L2 attacks are left out: their budget is not in pixel levels, so rounding's 1/255 grid
    says nothing about their eps.)

    A *flip* is a sample the model classified correctly when clean and wrongly after the attack; it
    *survives* if the prediction on x_adv rounded to multiples of 1/255 is still wrong. Columns:
    ``library, attack_label, eps, eps_label, n_flips, n_survive, survival`` (a proportion, NaN without
    flips), ``n_left_ball`` (rounded images farther than eps from x).
    """
    frame = lowest_seed(results)
    frame = frame[frame["norm"] == "linf"]
    rows = []
    for (library, label, eps), cell in frame.groupby(["library", "attack_label", "eps"], sort=False):
        flips = (cell["pred_clean"] == cell["label"]) & (cell["pred_adv"] != cell["label"])
        survive = flips & (cell["pred_adv_8bit"] != cell["label"]) & cell["pred_adv_8bit"].notna()
        n_flips = int(flips.sum())
        rows.append(
            {
                "library": library,
                "attack_label": label,
                "eps": float(eps),
                "eps_label": eps_label(float(eps)),
                "n_flips": n_flips,
                "n_survive": int(survive.sum()),
                "survival": survive.sum() / n_flips if n_flips else math.nan,
                "n_left_ball": int((cell["linf_8bit"] > eps + EPS_TOLERANCE).sum()),
            }
        )
    columns = [
        "library",
        "attack_label",
        "eps",
        "eps_label",
        "n_flips",
        "n_survive",
        "survival",
        "n_left_ball",
    ]
    out = pd.DataFrame(rows, columns=columns)
    order = out["library"].map(lambda s: library_sort_key(str(s)))
    out = out.assign(_lib=order).sort_values(["_lib", "attack_label", "eps"]).drop(columns="_lib")
    return out.assign(library=out["library"].map(library_label)).reset_index(drop=True)


def eight_bit_survival(results: pd.DataFrame) -> list[Finding]:
    """Report the survival of flips after 8-bit rounding; flag any survival below 0.5/255."""
    frame = check_results(results)
    if frame["pred_adv_8bit"].isna().all():
        return [Finding.untested("eight_bit_survival", "not recorded: results have no pred_adv_8bit column.")]
    table = eight_bit_survival_table(frame)
    by_eps = (
        table.groupby("eps").agg(n_flips=("n_flips", "sum"), n_survive=("n_survive", "sum")).reset_index()
    )
    summary = ", ".join(
        f"{eps_label(r.eps)}: {r.n_survive}/{r.n_flips}"
        + (f" ({100 * r.n_survive / r.n_flips:.0f} %)" if r.n_flips else "")
        for r in by_eps.itertuples()
    )
    small = table[(table["eps"] < EIGHT_BIT_ERASED_BELOW - 1e-12) & (table["n_survive"] > 0)]
    message = f"flips surviving rounding to 1/255, all libraries and attacks: {summary}."
    if small.empty:
        return [Finding("eight_bit_survival", "warning", True, message)]
    parts = [
        f"{r['library']} {r['attack_label']} @ {r['eps_label']}: {r['n_survive']} of {r['n_flips']}"
        for _, r in small.iterrows()
    ]
    return [
        Finding(
            "eight_bit_survival",
            "warning",
            False,
            message
            + " Below 0.5/255 none should survive, but "
            + "; ".join(parts)
            + " did: the inputs are not on the 1/255 grid (resized or float images?), so rounding changes "
            "the clean image too.",
        )
    ]


def zero_gradient_pixels(results: pd.DataFrame) -> list[Finding]:
    """Report the share of samples with at least one exactly-zero input-gradient component."""
    frame = lowest_seed(results)
    if frame["zero_grad"].isna().all():
        return [Finding.untested("zero_gradient_pixels", "not recorded: results have no zero_grad column.")]
    shares = frame.groupby(["library", "attack_label"], sort=False)["zero_grad"].apply(
        lambda z: float(np.mean(z.fillna(0) > 0))
    )
    if (shares == 0).all():
        return [
            Finding(
                "zero_gradient_pixels",
                "info",
                True,
                "no sample had an exactly-zero input-gradient component.",
            )
        ]
    parts = [
        f"{library_label(str(lib))} {label}: {100 * share:.1f} %"
        for (lib, label), share in shares.items()
        if share > 0
    ]
    return [
        Finding(
            "zero_gradient_pixels",
            "info",
            False,
            "share of samples with an exactly-zero input-gradient component (first gradient): "
            + "; ".join(parts)
            + ".",
        )
    ]


def clean_predictions_consistent(results: pd.DataFrame, clean: pd.DataFrame) -> list[Finding]:
    """Flag results rows whose label or clean prediction differs from ``clean.parquet`` for that sample."""
    frame = check_results(results)
    check_clean(clean)
    merged = frame.merge(
        clean[["sample", "label", "pred_clean"]], on="sample", how="left", suffixes=("", "_clean")
    )
    missing = merged["pred_clean_clean"].isna()
    differ = ~missing & (
        (merged["pred_clean"] != merged["pred_clean_clean"]) | (merged["label"] != merged["label_clean"])
    )
    if not missing.any() and not differ.any():
        return [
            Finding(
                "clean_predictions_consistent",
                "error",
                True,
                f"all {len(frame)} rows match clean.parquet's labels and clean predictions.",
            )
        ]
    parts = []
    if missing.any():
        parts.append(f"{int(missing.sum())} rows name samples absent from clean.parquet")
    if differ.any():
        libs = ", ".join(sorted({library_label(str(x)) for x in merged.loc[differ, "library"]}))
        parts.append(f"{int(differ.sum())} rows disagree with it on label or clean prediction ({libs})")
    return [Finding("clean_predictions_consistent", "error", False, "; ".join(parts) + ".")]


CHECKS: tuple[Callable[[pd.DataFrame], list[Finding]], ...] = (
    outputs_in_bounds,
    accuracy_monotone_in_eps,
    pgd_at_least_fgsm,
    more_steps_at_least_as_strong,
    large_eps_near_zero,
    eight_bit_survival,
    zero_gradient_pixels,
)


def run_all(results: pd.DataFrame, clean: pd.DataFrame) -> list[Finding]:
    """Every check, in report order: bounds and consistency first, then the strength checks, then the notes."""
    frame = check_results(results)
    findings = clean_predictions_consistent(frame, clean)
    for check in CHECKS:
        findings.extend(check(frame))
    return findings
