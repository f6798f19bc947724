"""Tables: numbers equal the statistics functions on the same frame; writers produce readable files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from advparity.reports import paper
from advparity.reports.crosscheck import verdicts
from advparity.reports.stats import (
    attack_success_rate_flips,
    clopper_pearson_ci,
    discordant,
    mcnemar,
    mcnemar_exact,
    wald_ci,
)
from advparity.reports.tablefiles import to_markdown, write_tables
from advparity.reports.tables import TABLE_TITLES, build_tables, choose_eps
from sklearn.metrics import f1_score
from support.report_frames import (
    CLASSES,
    LABELS,
    MANIFEST,
    PRED_CLEAN,
    agreeing_run,
    clean_frame,
    flipped_preds,
)

EPS1 = 0.1 / 255


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Built once: the tables only read the frame, and building them takes about a second."""
    return build_tables(agreeing_run(), clean_frame(), MANIFEST)


def test_all_tables_built(tables: dict[str, pd.DataFrame]) -> None:
    assert set(tables) == set(TABLE_TITLES)
    assert all(not t.empty for t in tables.values())


def test_tables_name_libraries_as_the_manifest_records() -> None:
    manifest = {**MANIFEST, "libraries": [{"name": "reference"}, {"name": "art", "display": "XYZ"}]}
    tables = build_tables(agreeing_run(("reference", "torchattacks", "art")), clean_frame(), manifest)
    assert list(dict.fromkeys(tables["table4_accuracy"]["library"])) == ["reference", "XYZ", "torchattacks"]
    assert "XYZ FGSM" in tables["table2_per_class"].columns and "XYZ" in set(tables["agreement"]["library"])


def test_choose_eps_prefers_the_papers(agreeing: pd.DataFrame) -> None:
    assert choose_eps(agreeing) == pytest.approx(EPS1)
    without = agreeing[~np.isclose(agreeing["eps"], EPS1)]
    # Nearest in log scale to 0.1/255 among {0.3, 1}/255.
    assert choose_eps(without) == pytest.approx(0.3 / 255)


def test_table4_equals_the_stats_functions(tables: dict[str, pd.DataFrame]) -> None:
    t4 = tables["table4_accuracy"]
    fgsm = t4[(t4["library"] == "ART") & (t4["condition"] == "FGSM")].iloc[0]
    # ART FGSM @ 0.1/255 flips 40 clean-correct samples: 150 of 200 correct, b = 40, c = 0.
    pred = flipped_preds(40)
    k = int(np.sum(pred == LABELS))
    assert (fgsm["n"], fgsm["k"]) == (200, k) == (200, 150)
    assert (fgsm["cp_low_pct"] / 100, fgsm["cp_high_pct"] / 100) == pytest.approx(clopper_pearson_ci(k, 200))
    assert (fgsm["wald_low_pct"] / 100, fgsm["wald_high_pct"] / 100) == pytest.approx(wald_ci(k, 200))
    b, c = discordant(PRED_CLEAN == LABELS, pred == LABELS)
    assert (fgsm["mcnemar_b"], fgsm["mcnemar_c"]) == (b, c) == (40, 0)
    assert fgsm["mcnemar_chi2"] == pytest.approx(mcnemar(b, c).statistic) == pytest.approx(39**2 / 40)
    assert fgsm["mcnemar_p"] == pytest.approx(mcnemar(b, c).pvalue)
    assert fgsm["mcnemar_exact_p"] == pytest.approx(mcnemar_exact(b, c))
    assert fgsm["mean_conf_pct"] == pytest.approx(80.0)
    clean_row = t4[(t4["library"] == "ART") & (t4["condition"] == "clean")].iloc[0]
    assert clean_row["acc_pct"] == pytest.approx(95.0)
    assert clean_row["mean_conf_pct"] == pytest.approx(90.0)
    # Random-start PGD: the lowest seed (100 flips → 45 %) with the seed mean (44.5 %) beside it.
    pgd = t4[(t4["library"] == "reference") & (t4["condition"] == "PGD-10")].iloc[0]
    assert pgd["acc_pct"] == pytest.approx(45.0)
    assert pgd["acc_seed_mean_pct"] == pytest.approx(44.5)
    assert pgd["n_seeds"] == 2


def test_table3_both_asr(tables: dict[str, pd.DataFrame]) -> None:
    t3 = tables["table3_asr"]
    row = t3[(t3["library"] == "Foolbox") & (t3["attack"] == "FGSM")].iloc[0]
    assert row["acc_pct"] == pytest.approx(75.0)
    assert row["asr_paper_pct"] == pytest.approx(25.0)
    # 40 of the 190 clean-correct samples flipped.
    assert row["asr_flips_pct"] == pytest.approx(100 * 40 / 190)
    assert row["asr_flips_pct"] == pytest.approx(
        attack_success_rate_flips(LABELS, PRED_CLEAN, flipped_preds(40))
    )


def test_table2_matches_sklearn(tables: dict[str, pd.DataFrame]) -> None:
    t2 = tables["table2_per_class"].set_index(["class", "metric"])
    expected = f1_score(LABELS, flipped_preds(100), labels=[0, 1, 2, 3], average=None, zero_division=0)
    for i, cls in enumerate(CLASSES):
        assert t2.loc[(cls, "f1"), "torchattacks PGD-10"] == pytest.approx(expected[i])
    assert t2.loc[("overall", "accuracy"), "clean"] == pytest.approx(0.95)
    assert t2.loc[("overall", "accuracy"), "reference FGSM"] == pytest.approx(0.75)


def test_sweeps_carry_the_papers_numbers(tables: dict[str, pd.DataFrame]) -> None:
    t5 = tables["table5_fgsm_sweep"].set_index("eps_label")
    assert t5.loc["0.1/255", "paper acc %"] == pytest.approx(59.282003)
    assert t5.loc["0.3/255", "reference acc %"] == pytest.approx(55.0)
    assert np.isnan(t5.loc["1/255", "paper acc %"])
    t6 = tables["table6_pgd_sweep"].set_index("eps_label")
    assert t6.loc["0.3/255", "paper acc %"] == pytest.approx(0.047237)
    assert t6.loc["0.1/255", "ART seed range %"] == "44.0–45.0"


def test_paper_comparison(tables: dict[str, pd.DataFrame]) -> None:
    pc = tables["paper_comparison"]
    row = pc[(pc["quantity"] == "accuracy %") & (pc["condition"] == "FGSM") & (pc["eps"] == "0.1/255")].iloc[
        0
    ]
    assert row["paper"] == paper.FGSM_ACCURACY_PCT
    assert row["this run"] == pytest.approx(75.0)
    assert row["difference"] == pytest.approx(75.0 - 59.28)
    clean_row = pc[(pc["quantity"] == "accuracy %") & (pc["condition"] == "clean")].iloc[0]
    assert (clean_row["paper"], clean_row["this run"]) == (95.42, pytest.approx(95.0))
    # Table 5 eps this run lacks are listed, empty, and say so.
    missing = pc[(pc["eps"] == "0.9/255")].iloc[0]
    assert np.isnan(missing["this run"]) and "not in this run's grid" in missing["note"]


def test_agreement_table_from_verdicts(agreeing: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> None:
    agreement = tables["agreement"]
    assert len(agreement) == len(verdicts(agreeing))
    assert list(agreement.columns[:5]) == ["library", "attack", "eps", "seeds", "verdict"]
    assert agreement["reason"].str.len().min() > 20


def test_paper_data_is_internally_consistent() -> None:
    # ASR = 100 − accuracy (Table 3) and Table 5's first row is Table 2's FGSM accuracy.
    assert paper.ASR_PCT["fgsm"] == pytest.approx(100 - paper.FGSM_ACCURACY_PCT)
    assert paper.ASR_PCT["pgd"] == pytest.approx(100 - paper.PGD_ACCURACY_PCT)
    assert paper.sweep_accuracy_pct("fgsm", 0.1 / 255) == pytest.approx(paper.FGSM_ACCURACY_PCT, abs=0.01)
    assert paper.sweep_accuracy_pct("pgd", 0.01 / 255) == pytest.approx(92.820028)
    assert paper.sweep_accuracy_pct("pgd", 8 / 255) is None
    points = paper.published_points()
    assert len(points[points["quantity"] == "f1"]) == 12


def test_markdown_formatter() -> None:
    frame = pd.DataFrame({"a|b": [1, 2], "x": [0.123456, float("nan")], "t": ["p|q", "r"]})
    md = to_markdown(frame, "T")
    lines = md.splitlines()
    assert lines[0] == "## T"
    assert lines[2] == "| a\\|b | x | t |"
    assert lines[4] == "| 1 | 0.1235 | p\\|q |"
    assert lines[5] == "| 2 |  | r |"


def test_write_tables(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    paths = write_tables(tables, tmp_path / "t")
    assert len(paths) == 3 * len(tables)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    t4 = pd.read_csv(tmp_path / "t" / "table4_accuracy.csv")
    assert t4["acc_pct"].tolist() == pytest.approx(tables["table4_accuracy"]["acc_pct"].tolist())
    records = json.loads((tmp_path / "t" / "agreement.json").read_text(encoding="utf-8"))
    assert records[0]["verdict"] == "agree"
    assert (tmp_path / "t" / "table3_asr.md").read_text(encoding="utf-8").startswith("## Table 3")


def test_the_paper_comparison_is_left_out_for_other_classes(tmp_path: Path) -> None:
    """A run on another task (here four other class names) is not set beside the paper's numbers."""
    manifest = {**MANIFEST, "classes": ["cat", "dog", "cow", "pig"]}
    tables = build_tables(agreeing_run(), clean_frame(), manifest)
    assert tables["paper_comparison"].empty
    assert list(tables["table2_per_class"]["class"].unique()) == ["cat", "dog", "cow", "pig", "overall"]
    write_tables(tables, tmp_path)  # an empty table is still written, with its header
    assert paper.applies_to(list(reversed(CLASSES))) and not paper.applies_to(["cat", "dog", "cow", "pig"])
