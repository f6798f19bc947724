"""The proof that the cross-check works: every planted library bug comes out disagree or invalid.

Each mutant (``mutants.py``) plants one plausible bug inside a real library; the smoke preset (random
start on, a smaller last batch: ``suite.py``) then runs that library and the reference through
``run``, and the verdicts must flag every cell of the mutant's attack, naming the library and the
evidence; a mutant runs only its own variant (``Mutant.norm``: the L∞ or the L2 entries of its attack).
The unmutated libraries must all agree on the same run, L2 variants included — no false alarm — except in
the attacks known to differ from the reference (``tests/support/departures.py``), which the same run must
flag.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from mutants import MUTANTS, Mutant, needs_copied_releases
from suite import caught, cross_check, labels
from support.departures import BROKEN_AT_ZERO, departs

from advparity import adapters

ALL = tuple(adapters.runnable())


@pytest.fixture(scope="module")
def unmutated(
    trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[pd.DataFrame, int]:
    """Every library on every entry, nothing planted: the verdicts and the exit code."""
    checkpoint, root = trained
    return cross_check(checkpoint, root, tmp_path_factory.mktemp("unmutated") / "run", ALL)


def test_the_unmutated_libraries_all_agree(unmutated: tuple[pd.DataFrame, int]) -> None:
    """No false alarm; and the attacks known to differ from the reference (tests/support/departures.py) are
    flagged on their x_adv, every cell of them."""
    frame, code = unmutated
    # The one invariant a library breaks in the suite, pinned (tests/support/departures.py): torchattacks'
    # FGM-L2 returns NaN at eps = 0, so its cells are invalid, saying so, with x_adv's evidence after it.
    at_zero = (frame["library"] == "torchattacks") & (frame["attack"] == "fgsm") & (frame["norm"] == "l2")
    assert ("torchattacks", "fgsm", "l2") in BROKEN_AT_ZERO and at_zero.any()
    assert set(frame[at_zero]["verdict"]) == {"invalid"}
    for reason in frame[at_zero]["reason"]:
        assert "'eps = 0 returns x' broke" in reason and "NaN" in reason, reason
        assert "Also: x_adv equals the expected one" in reason, reason
    frame = frame[~at_zero]
    # Every other cell kept every invariant it could run.
    assert not frame["invariants"].str.contains("broken").any()
    assert (frame["invariants"] != "not recorded").all()
    known = frame.apply(lambda row: departs(row["library"], row["attack"]), axis=1).astype(bool)
    rest = frame[~known]
    assert set(rest["verdict"]) == {"agree"}, rest[rest["verdict"] != "agree"][["library", "reason"]]
    assert set(frame[known]["verdict"]) <= {"disagree"}
    assert all("x_adv differs" in reason for reason in frame[known]["reason"])
    assert code == 1  # the invalid FGM-L2 cells
    # Every library cell was judged on x_adv itself, random-start PGD included, and matched it exactly.
    libraries = frame[frame["library"] != "reference"]
    assert set(libraries["judged_on"]) == {"x_adv"}
    assert (libraries[~known[libraries.index]]["samples_xadv_differ"] == 0).all()
    assert (libraries[known[libraries.index]]["samples_xadv_differ"] > 0).all()
    assert libraries["random_start"].any()
    # The L2 variants ran and were judged exactly for every library that offers them.
    l2 = labels("fgsm", "l2") | labels("pgd", "l2")
    for name in ALL:
        # Only FGSM and PGD take a norm (the reference lists L2 for every attack it offers).
        offered = [
            a
            for a, offer in adapters.get(name).declaration.offers.items()
            if a in ("fgsm", "pgd") and "l2" in offer.norms
        ]
        everything = unmutated[0]
        got = everything[(everything["library"] == name) & everything["attack_label"].isin(l2)]
        assert sorted(set(got["attack"])) == sorted(offered), (name, offered, set(got["attack"]))
    assert {"art", "torchattacks", "foolbox"} <= set(
        everything[everything["attack_label"].isin(l2)]["library"]
    )


@needs_copied_releases
@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_mutant_is_caught(
    mutant: Mutant,
    trained: tuple[Path, Path],
    unmutated: tuple[pd.DataFrame, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checkpoint, root = trained
    mutant.apply(monkeypatch)
    # Only the mutant's variant (its attack in its norm): the bug is planted there, and the other
    # variants' cells would cost as much again.
    frame, code = cross_check(
        checkpoint,
        root,
        tmp_path / "run",
        ("reference", mutant.library),
        (mutant.attack,),
        mutant.norm,
        mutant.where,
    )
    rows = caught(frame, mutant.library, mutant.attack, mutant.norm, mutant.where)
    assert len(rows), f"no {mutant.library} {mutant.attack} ({mutant.norm}) cells ran"
    assert len(rows) == len(frame[frame["library"] == mutant.library]), "cells of another variant ran"
    # A cell that does not agree unmutated (a documented departure, a pinned broken invariant) must say
    # something else of the bug: turn invalid, or give other evidence (passes, pixels, samples, checks).
    before = unmutated[0].set_index(["library", "attack_label", "eps"])[["verdict", "reason"]]

    def missed_by(row: pd.Series) -> bool:
        key = (row["library"], row["attack_label"], row["eps"])
        if key not in before.index or before.loc[key, "verdict"] == "agree":
            return row["verdict"] not in ("disagree", "invalid")
        turned_invalid = row["verdict"] == "invalid" and before.loc[key, "verdict"] != "invalid"
        return not turned_invalid and row["reason"] == before.loc[key, "reason"]

    missed = rows[rows.apply(missed_by, axis=1).astype(bool)]
    assert missed.empty, f"{mutant.name} not caught:\n" + "\n".join(missed["reason"])
    label = adapters.get(mutant.library).name
    for reason in rows["reason"]:
        assert reason.lower().startswith(label.lower()), reason
        assert any(
            word in reason
            for word in ("x_adv differs", "passes per sample", "outside", "changed", "invariant")
        ), reason
    assert code == 1
    # The reference was not touched by the mutant: it still agrees with itself.
    assert set(frame[frame["library"] == "reference"]["verdict"]) == {"agree"}


def test_a_start_that_cannot_be_reproduced_is_judged_statistically(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a reproducible start there is no exact x_adv: the cell falls back to the statistical rule,
    which at 8 images cannot see a meaningful shift and says so instead of agreeing."""
    checkpoint, root = trained
    adapter = adapters.get("torchattacks")
    offers = {attack: replace(offer, start=None) for attack, offer in adapter.declaration.offers.items()}
    monkeypatch.setattr(adapter, "declaration", replace(adapter.declaration, offers=offers))
    frame, code = cross_check(checkpoint, root, tmp_path / "run", ("reference", "torchattacks"), norm="linf")
    pgd = caught(frame, "torchattacks", "pgd").iloc[0]
    assert (pgd["judged_on"], pgd["verdict"]) == ("statistics", "inconclusive")
    assert "its random start cannot be reproduced" in pgd["reason"]
    assert "smallest accuracy shift this test could detect is 100 pp" in pgd["reason"]
    fgsm = caught(frame, "torchattacks", "fgsm")
    assert set(fgsm["judged_on"]) == {"x_adv"} and set(fgsm["verdict"]) == {"agree"}
    assert code == 0  # inconclusive is reported, not a failure
