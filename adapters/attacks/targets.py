"""Targeted attacks: which class each sample is pushed towards, and what changes in the attack.

A targeted attack descends the cross-entropy to the target t instead of ascending the one to the
true label y: each step follows ∇x(−L(x, t)), so FGSM is ``x − eps · sign(∇x L(x, t))``. Every
library negates the loss or the step (``targeted=True``, ``set_mode_targeted_by_label``, Foolbox's
``TargetedMisclassification``); −L gives the negated gradient bit for bit, so a targeted spec is
judged exactly as an untargeted one. Success is a prediction of t, not a wrong one.

The targets are the harness's, fixed per sample before any library runs and recorded in the rows
(``target``), so every library attacks the same target:

* ``"least-likely"`` — the class the model gives the lowest logit at x (Kurakin et al., 2017);
* ``"random"`` — a class other than y, uniform, drawn per sample from a generator seeded with the
  run's target seed and the sample's index in the test set (the same target whatever the batch).

Inside an attack the labels it receives *are* the targets: ``y`` is t wherever ``params.targeted``
is set.
"""

from __future__ import annotations

import torch

MODES: tuple[str, ...] = ("least-likely", "random")


def check_targeted(mode: object) -> str | None:
    """``mode`` as one of :data:`MODES` (None: untargeted), else ``ValueError`` naming them."""
    if mode is None:
        return None
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(
            f"expected targeted to be one of {list(MODES)} (or absent for untargeted), got {mode!r}"
        )
    return mode


def label(name: str, mode: str | None) -> str:
    """How a report names a targeted attack: ``PGD-10 → least-likely``."""
    return name if mode is None else f"{name} → {mode}"


def cell_key(mode: str | None) -> str:
    """The part of a cell's file name for the mode ('' untargeted, so existing run directories resume)."""
    return "" if mode is None else f"__targeted-{mode}"


def choose(
    mode: str, y: torch.Tensor, clean_logits: torch.Tensor, index: torch.Tensor, seed: int
) -> torch.Tensor:
    """Per sample, the class ``mode`` targets: ``y`` true labels, ``clean_logits`` the model's logits
    at x, ``index`` each sample's position in the test set (what a random target is drawn for)."""
    if mode == "least-likely":
        return clean_logits.argmin(dim=1)
    if mode == "random":
        num_classes = int(clean_logits.shape[1])
        offsets = torch.empty(len(y), dtype=torch.int64)
        for i, sample in enumerate(index.tolist()):
            # One generator per sample: its target does not depend on the batch it came in.
            generator = torch.Generator().manual_seed(seed * 1_000_003 + int(sample))
            offsets[i] = int(torch.randint(1, num_classes, (1,), generator=generator))
        return (y.cpu() + offsets).remainder(num_classes).to(y.device)
    raise ValueError(f"expected targeted to be one of {list(MODES)}, got {mode!r}")


def succeeded(pred: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per sample, whether an attack succeeded: a prediction of the target ``y`` (targeted), a wrong
    one (untargeted)."""
    return pred == y if targeted else pred != y
