"""The paper's published numbers, kept as data so a run can be compared with them.

Source: Kamil, Farma, Basuki, "Robustness Under Attack: Assessing Adversarial Fragility in Deep Learning
Models for COVID-19 Radiography Prediction" (Universitas Muhammadiyah Malang; see the README, Citing).
DenseNet-121 (ImageNet-pretrained), COVID-19 Radiography Database, 224 px, test split n = 2,117.
Class names are mapped to the Kaggle folder names used by ``model.data.CLASSES``.

Inconsistencies in the paper itself, kept as published and noted where they matter:

- Table 6's first row is labelled "0.1/255" but its eps value 0.000039 is 0.01/255; stored as 0.01/255.
- PGD at 0.1/255 is 25.32 % in Tables 2–4 and the text, but 25.507794 % in Table 6.
- The text lists the FGSM grid as {0.01, 0.025, 0.05, 0.1, 0.3}/255, but Table 5 reports 0.1–0.9/255.
- The "95 % CI based on the exact binomial proportion limits" are Wald intervals (95.42 % ± 1.96·SE at
  n = 2,117 gives exactly 94.53–96.31 %); the PGD interval 23.42–27.12 % is centred on 25.27 %, not 25.32 %.
- Table 5 and Table 6 compute ASR as 100 − accuracy, which counts clean errors as attack successes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

CITATION = (
    "Kamil, Farma, Basuki: Robustness Under Attack: Assessing Adversarial Fragility in Deep Learning "
    "Models for COVID-19 Radiography Prediction"
)

N_TEST = 2117  # §II.A and §III.B.1: "clean test set (N=2,117)"
PAPER_EPS = 0.1 / 255  # Tables 2–4 are all at eps = 0.1/255

# Table 2 and Table 4: overall accuracy in percent.
CLEAN_ACCURACY_PCT = 95.42
FGSM_ACCURACY_PCT = 59.28
PGD_ACCURACY_PCT = 25.32

# §III.B.1 text: "95 % CI" (Wald, see module docstring), percent.
CI_PCT: dict[str, tuple[float, float]] = {
    "clean": (94.53, 96.31),
    "fgsm": (57.19, 61.37),
    "pgd": (23.42, 27.12),
}

# §III.B.1 text: McNemar with continuity correction, clean vs attacked at 0.1/255.
MCNEMAR_CHI2: dict[str, float] = {"fgsm": 763.00, "pgd": 1483.00}

# Table 3 (and Table 4): ASR = 100 − adversarial accuracy, percent, at 0.1/255.
ASR_PCT: dict[str, float] = {"fgsm": 40.72, "pgd": 74.68}

# Table 4: average confidence (max softmax), percent.
MEAN_CONFIDENCE_PCT: dict[str, float] = {"clean": 96.05, "fgsm": 82.16, "pgd": 85.42}


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of one class under one condition (Table 2)."""

    precision: float
    recall: float
    f1: float


# Table 2: per-class precision / recall / F1 at eps = 0.1/255 — clean, FGSM, PGD.
TABLE2: dict[str, dict[str, PRF]] = {
    "COVID": {
        "clean": PRF(0.9914, 0.9586, 0.9747),
        "fgsm": PRF(0.4844, 0.5138, 0.4987),
        "pgd": PRF(0.154, 0.1796, 0.1658),
    },
    "Lung_Opacity": {
        "clean": PRF(0.9566, 0.9153, 0.9355),
        "fgsm": PRF(0.4576, 0.4568, 0.4572),
        "pgd": PRF(0.096, 0.113, 0.1038),
    },
    "Normal": {
        "clean": PRF(0.9368, 0.9745, 0.9553),
        "fgsm": PRF(0.6989, 0.6742, 0.6863),
        "pgd": PRF(0.4095, 0.3288, 0.3647),
    },
    "Viral Pneumonia": {
        "clean": PRF(0.9847, 0.9627, 0.9736),
        "fgsm": PRF(0.7181, 0.7985, 0.7562),
        "pgd": PRF(0.4024, 0.5075, 0.4488),
    },
}

# The paper's classes (the COVID-19 Radiography Database's folders): a run with other classes is another
# task, and setting its numbers beside the paper's would compare unlike with unlike.
CLASSES: tuple[str, ...] = tuple(TABLE2)


def applies_to(classes: object) -> bool:
    """Whether a run with these classes (in any order) is the paper's task."""
    return isinstance(classes, list | tuple) and sorted(map(str, classes)) == sorted(CLASSES)


# Table 5: FGSM sweep, eps in units of 1/255 → accuracy in percent.
TABLE5_FGSM_ACCURACY_PCT: dict[float, float] = {
    0.1: 59.282003,
    0.2: 32.876712,
    0.3: 21.728862,
    0.4: 15.162966,
    0.5: 12.139821,
    0.6: 10.392064,
    0.7: 9.305621,
    0.8: 9.258385,
    0.9: 9.022201,
}

# Table 6: PGD sweep (eps/4 step, 10 iterations), eps in units of 1/255 → accuracy in percent.
# First row printed as "0.1/255" but with eps value 0.000039 = 0.01/255 (see module docstring).
TABLE6_PGD_ACCURACY_PCT: dict[float, float] = {
    0.01: 92.820028,
    0.025: 86.301370,
    0.05: 66.650921,
    0.1: 25.507794,
    0.3: 0.047237,
}


def sweep_accuracy_pct(attack: str, eps: float) -> float | None:
    """The paper's accuracy (percent) for ``attack`` at pixel-unit ``eps`` from Table 5/6, or None if not published."""
    table = {"fgsm": TABLE5_FGSM_ACCURACY_PCT, "pgd": TABLE6_PGD_ACCURACY_PCT}.get(attack)
    if table is None:
        raise ValueError(f"expected attack 'fgsm' or 'pgd', got {attack!r}")
    for level, value in table.items():
        if abs(level / 255 - eps) <= 1e-9 * max(eps, 1e-12) + 1e-15:
            return value
    return None


def published_points() -> pd.DataFrame:
    """Every published number as one long table: ``quantity, condition, eps, class_name, value, source``."""
    rows: list[dict[str, object]] = []

    def add(
        quantity: str, condition: str, eps: float | None, value: float, source: str, cls: str = ""
    ) -> None:
        rows.append(
            {
                "quantity": quantity,
                "condition": condition,
                "eps": eps,
                "class_name": cls,
                "value": value,
                "source": source,
            }
        )

    add("accuracy_pct", "clean", None, CLEAN_ACCURACY_PCT, "Table 2, Table 4")
    add("accuracy_pct", "fgsm", PAPER_EPS, FGSM_ACCURACY_PCT, "Table 2, Table 3, Table 4")
    add("accuracy_pct", "pgd", PAPER_EPS, PGD_ACCURACY_PCT, "Table 2, Table 3, Table 4")
    for condition, (low, high) in CI_PCT.items():
        eps = None if condition == "clean" else PAPER_EPS
        add("ci_low_pct", condition, eps, low, "§III.B.1 text (Wald)")
        add("ci_high_pct", condition, eps, high, "§III.B.1 text (Wald)")
    for condition, chi2 in MCNEMAR_CHI2.items():
        add("mcnemar_chi2", condition, PAPER_EPS, chi2, "§III.B.1 text")
    for condition, asr in ASR_PCT.items():
        add("asr_paper_pct", condition, PAPER_EPS, asr, "Table 3, Table 4")
    for condition, conf in MEAN_CONFIDENCE_PCT.items():
        add("mean_confidence_pct", condition, None if condition == "clean" else PAPER_EPS, conf, "Table 4")
    for cls, by_condition in TABLE2.items():
        for condition, prf in by_condition.items():
            eps = None if condition == "clean" else PAPER_EPS
            add("precision", condition, eps, prf.precision, "Table 2", cls)
            add("recall", condition, eps, prf.recall, "Table 2", cls)
            add("f1", condition, eps, prf.f1, "Table 2", cls)
    for level, acc in TABLE5_FGSM_ACCURACY_PCT.items():
        add("accuracy_pct", "fgsm", level / 255, acc, "Table 5")
    for level, acc in TABLE6_PGD_ACCURACY_PCT.items():
        add("accuracy_pct", "pgd", level / 255, acc, "Table 6")
    return pd.DataFrame(rows)
