"""What each library's AutoAttack runs (``autoattack-config``), read from the constructed objects, and
today's differences from the original's standard version pinned: a release that changes them fails
here, and the README's finding is then out of date."""

from __future__ import annotations

import pytest
from advparity.harness import ensembles
from advparity.harness.cli import EXIT_BAD_INPUT, EXIT_OK, main

pytest.importorskip("pyautoattack", reason="pip install 'advparity[autoattack]'")


@pytest.fixture(scope="module")
def found() -> dict[str, tuple[ensembles.Ensemble, list[str]]]:
    return {e.library: (e, d) for e, d in ensembles.all_ensembles("linf", 8 / 255)}


def _members(ensemble: ensembles.Ensemble) -> dict[str, ensembles.Member]:
    return {m.kind: m for m in ensemble.members}


def test_the_original_standard_version(found: dict[str, tuple[ensembles.Ensemble, list[str]]]) -> None:
    original, differences = found["autoattack (original)"]
    assert [m.kind for m in original.members] == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    members = _members(original)
    assert (members["APGD-CE"].steps, members["APGD-CE"].restarts) == (100, 1)
    assert (members["APGD-T"].steps, members["APGD-T"].targets) == (100, 9)
    assert (members["FAB-T"].steps, members["FAB-T"].targets, members["Square"].steps) == (100, 9, 5000)
    assert differences == []


def test_torchattacks_runs_the_same_attacks_with_a_tenth_of_the_steps(
    found: dict[str, tuple[ensembles.Ensemble, list[str]]],
) -> None:
    """torchattacks' AutoAttack builds APGD, APGDT and FAB without a step count: their default 10."""
    ensemble, differences = found["torchattacks"]
    assert [m.kind for m in ensemble.members] == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    assert differences == [
        "APGD-CE steps 10 (original 100)",
        "APGD-T steps 10 (original 100)",
        "FAB-T steps 10 (original 100)",
    ]


def test_art_runs_another_ensemble(found: dict[str, tuple[ensembles.Ensemble, list[str]]]) -> None:
    """ART's AutoAttack: APGD-CE and APGD-DLR with 5 restarts, DeepFool where the original runs FAB-T, no
    targeted APGD, Square with 5 restarts, every random draw from NumPy's global RNG."""
    ensemble, differences = found["art"]
    assert [m.kind for m in ensemble.members] == ["APGD-CE", "APGD-DLR", "DeepFool", "Square"]
    assert differences == [
        "APGD-CE restarts 5 (original 1)",
        "APGD-CE seed NumPy global RNG (original clock)",
        "no APGD-T",
        "no FAB-T",
        "Square restarts 5 (original 1)",
        "Square seed NumPy global RNG (original clock)",
        "runs APGD-DLR, which the original's standard version does not",
        "runs DeepFool, which the original's standard version does not",
    ]


def test_the_command_prints_them_and_refuses_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "autoattack-config", "--norm", "l2", "--eps", "0.5"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert printed.startswith("autoattack (original) (standard):") and "differs from the original" in printed
    for args, message in (
        (["--norm", "l1"], "--norm"),
        (["--eps", "9"], "--eps"),
        (["--classes", "2"], "--classes"),
    ):
        assert main(["-q", "autoattack-config", *args]) == EXIT_BAD_INPUT
        assert message in capsys.readouterr().err
