# ruff: noqa: E722, SIM108  (copied library code keeps its own bare except and if/else)
"""Planted bugs in the original AutoAttack's APGD, for the mutation suite (merged into ``mutants.MUTANTS``).

Same rules as ``mutants.py``: each method body is copied from the installed pyautoattack 0.2.0
(``pyautoattack/autopgd_base.py``, class ``APGDAttack``) with exactly one plausible change, marked by
a ``# MUTATION:`` comment above it that quotes the original line; the only other edits are the
project's formatting. Each is patched on the class, which is what the adapter instantiates. The suite
judges them on its APGD entries (APGD-CE-10, the smoke preset's, and ``suite.APGD_ATTACKS``' APGD-DLR-10, at 4/255).

Import this file through ``mutants`` (``from mutants import MUTANTS``): it takes ``Mutant`` from there,
and ``mutants`` imports it at its end.
"""

from __future__ import annotations

import pytest
import torch
from mutants import Mutant
from pyautoattack.autopgd_base import APGDAttack

# The release the method bodies below were copied from (distribution name -> version).
COPIED_FROM: dict[str, str] = {"pyautoattack": "0.2.0"}


def _autoattack_apgd_dlr_second_logit(mp: pytest.MonkeyPatch) -> None:
    def dlr_loss(self, x, y):  # type: ignore[no-untyped-def]
        x_sorted, ind_sorted = x.sort(dim=1)
        ind = (ind_sorted[:, -1] == y).float()
        u = torch.arange(x.shape[0])

        # MUTATION: was `... / (x_sorted[:, -1] - x_sorted[:, -3] + 1e-12)`
        return -(x[u, y] - x_sorted[:, -2] * ind - x_sorted[:, -1] * (1.0 - ind)) / (
            x_sorted[:, -1] - x_sorted[:, -2] + 1e-12
        )

    mp.setattr(APGDAttack, "dlr_loss", dlr_loss)


def _autoattack_apgd_oscillation_counts_decreases(mp: pytest.MonkeyPatch) -> None:
    def check_oscillation(self, x, j, k, y5, k3=0.75):  # type: ignore[no-untyped-def]
        t = torch.zeros(x.shape[1]).to(self.device)
        for counter5 in range(k):
            # MUTATION: was `t += (x[j - counter5] > x[j - counter5 - 1]).float()`
            t += (x[j - counter5] < x[j - counter5 - 1]).float()

        return (t <= k * k3 * torch.ones_like(t)).float()

    mp.setattr(APGDAttack, "check_oscillation", check_oscillation)


def _autoattack_apgd_start_mean_scaled(mp: pytest.MonkeyPatch) -> None:
    def normalize(self, x):  # type: ignore[no-untyped-def]
        if self.norm == "Linf":
            # MUTATION: was `t = x.abs().view(x.shape[0], -1).max(1)[0]`
            t = x.abs().view(x.shape[0], -1).mean(1)

        elif self.norm == "L2":
            t = (x**2).view(x.shape[0], -1).sum(-1).sqrt()

        elif self.norm == "L1":
            try:
                t = x.abs().view(x.shape[0], -1).sum(dim=-1)
            except:
                t = x.abs().reshape([x.shape[0], -1]).sum(dim=-1)

        return x / (t.view(-1, *([1] * self.ndims)) + 1e-12)

    mp.setattr(APGDAttack, "normalize", normalize)


def _autoattack_apgd_first_checkpoint_later(mp: pytest.MonkeyPatch) -> None:
    original_init = APGDAttack.__init__

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        # MUTATION: was `self.n_iter_2 = max(int(0.22 * self.n_iter), 1)` (set in __init__)
        self.n_iter_2 = max(int(0.32 * self.n_iter), 1)

    mp.setattr(APGDAttack, "__init__", __init__)


CE = (("loss", "ce"),)
DLR = (("loss", "dlr"),)

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "autoattack-apgd-dlr-second-logit",
        "autoattack",
        "apgd",
        "loss",
        "AutoAttack's DLR loss divides by z_π1 − z_π2 instead of z_π1 − z_π3.",
        _autoattack_apgd_dlr_second_logit,
        where=DLR,
    ),
    Mutant(
        "autoattack-apgd-oscillation-counts-decreases",
        "autoattack",
        "apgd",
        "step size",
        "AutoAttack's checkpoint counts the iterations where the loss fell, not rose, so it halves other steps.",
        _autoattack_apgd_oscillation_counts_decreases,
        where=CE,
    ),
    Mutant(
        "autoattack-apgd-start-mean-scaled",
        "autoattack",
        "apgd",
        "start distribution",
        "AutoAttack scales its L∞ random start by the mean |t| instead of the largest: most pixels start at ±eps.",
        _autoattack_apgd_start_mean_scaled,
        where=CE,
    ),
    Mutant(
        "autoattack-apgd-first-checkpoint-later",
        "autoattack",
        "apgd",
        "step size",
        "AutoAttack's first checkpoint comes after 0.32·T iterations instead of 0.22·T.",
        _autoattack_apgd_first_checkpoint_later,
        where=CE,
    ),
)
