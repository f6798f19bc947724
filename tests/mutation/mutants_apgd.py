"""Planted bugs in the core libraries' APGD — torchattacks' port of the original AutoAttack's, and
ART's own AutoProjectedGradientDescent — for the mutation suite (merged into ``mutants.MUTANTS``; the
original's own are in ``mutants_autoattack.py``, adv-lib's in ``mutants_adv_lib.py``).

Same rules as ``mutants.py``: each torchattacks method body is copied from the installed torchattacks 3.5.1
(``torchattacks/attacks/apgd.py``, class ``APGD``) with exactly one plausible change, marked by a
``# MUTATION:`` comment above it that quotes the original line; the only other edits are the project's
formatting. Each is patched on the class the adapter instantiates, and judged on the suite's APGD entries
(the smoke preset's APGD-CE-10 and ``suite.APGD_ATTACKS``).

ART's APGD departs from the original (adapters/art.py), so its cells disagree before any bug is planted:
its mutants must change what the report says beyond that — an output outside the eps-ball, or other
evidence (the passes it spends, the pixels and samples that differ) than the unmutated cells'
(test_mutation_suite.py holds them to that). They wrap ``__init__`` and change one attribute after it,
as marked, rather than copy ``generate``'s 220 lines.

Import this file through ``mutants`` (``from mutants import MUTANTS``): it takes ``Mutant`` from there,
and ``mutants`` imports it at its end.
"""

from __future__ import annotations

import numpy as np
import pytest
from art.attacks.evasion import AutoProjectedGradientDescent
from mutants import Mutant
from torchattacks.attacks.apgd import APGD

# The release the method bodies below were copied from (distribution name -> version).
COPIED_FROM: dict[str, str] = {"torchattacks": "3.5.1"}


def _torchattacks_apgd_dlr_second_logit(mp: pytest.MonkeyPatch) -> None:
    def dlr_loss(self, x, y):  # type: ignore[no-untyped-def]
        x_sorted, ind_sorted = x.sort(dim=1)
        ind = (ind_sorted[:, -1] == y).float()

        # MUTATION: was `... / (x_sorted[:, -1] - x_sorted[:, -3] + 1e-12)`
        return -(x[np.arange(x.shape[0]), y] - x_sorted[:, -2] * ind - x_sorted[:, -1] * (1.0 - ind)) / (
            x_sorted[:, -1] - x_sorted[:, -2] + 1e-12
        )

    mp.setattr(APGD, "dlr_loss", dlr_loss)


def _torchattacks_apgd_oscillation_counts_decreases(mp: pytest.MonkeyPatch) -> None:
    def check_oscillation(self, x, j, k, y5, k3=0.75):  # type: ignore[no-untyped-def]
        t = np.zeros(x.shape[1])
        for counter5 in range(k):
            # MUTATION: was `t += x[j - counter5] > x[j - counter5 - 1]`
            t += x[j - counter5] < x[j - counter5 - 1]

        return t <= k * k3 * np.ones(t.shape)

    mp.setattr(APGD, "check_oscillation", check_oscillation)


def _art_apgd_ball_too_large(mp: pytest.MonkeyPatch) -> None:
    original_init = AutoProjectedGradientDescent.__init__

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        # MUTATION: was `self.eps = eps` (set in __init__): a ball half again as large
        self.eps = 1.5 * self.eps

    mp.setattr(AutoProjectedGradientDescent, "__init__", __init__)


def _art_apgd_one_iteration_short(mp: pytest.MonkeyPatch) -> None:
    original_init = AutoProjectedGradientDescent.__init__

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        # MUTATION: was `self.max_iter = max_iter` (set in __init__)
        self.max_iter = self.max_iter - 1

    mp.setattr(AutoProjectedGradientDescent, "__init__", __init__)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "torchattacks-apgd-dlr-second-logit",
        "torchattacks",
        "apgd",
        "loss",
        "torchattacks' APGD DLR loss divides by z_π1 − z_π2 instead of z_π1 − z_π3.",
        _torchattacks_apgd_dlr_second_logit,
        where=(("loss", "dlr"),),
    ),
    Mutant(
        "torchattacks-apgd-oscillation-counts-decreases",
        "torchattacks",
        "apgd",
        "step size",
        "torchattacks' APGD checkpoint counts the iterations where the loss fell, not rose, so it halves other steps.",
        _torchattacks_apgd_oscillation_counts_decreases,
        where=(("loss", "ce"),),
    ),
    Mutant(
        "art-apgd-ball-too-large",
        "art",
        "apgd",
        "projection",
        "ART's APGD draws its start in, and projects onto, a ball of 1.5·eps.",
        _art_apgd_ball_too_large,
        where=(("loss", "dlr"),),
    ),
    Mutant(
        "art-apgd-one-iteration-short",
        "art",
        "apgd",
        "step count",
        "ART's APGD runs one iteration fewer than asked (and its checkpoints move with it).",
        # On CE: on the live test's net ART's DLR run returns the same points at 9 iterations as at 10.
        _art_apgd_one_iteration_short,
        where=(("loss", "ce"),),
    ),
)
