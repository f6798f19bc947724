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
  run's target seed and the sample's index in the test set (the same target whatever the batch);
* ``"labels"`` — the class the user names for each true class (``target_labels``: one class index
  per class, e.g. ``[2, 2, 0, 2]`` pushes classes 0, 1 and 3 towards 2 and class 2 towards 0).

Inside an attack the labels it receives *are* the targets: ``y`` is t wherever ``params.targeted``
is set.
"""

from __future__ import annotations

import torch

MODES: tuple[str, ...] = ("least-likely", "random", "labels")


def check_targeted(mode: object) -> str | None:
    """``mode`` as one of :data:`MODES` (None: untargeted), else ``ValueError`` naming them."""
    if mode is None:
        return None
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(
            f"expected targeted to be one of {list(MODES)} (or absent for untargeted), got {mode!r}"
        )
    return mode


def check_target_labels(mode: str | None, labels: object) -> tuple[int, ...] | None:
    """``target_labels`` as a tuple of class indices where ``mode`` is ``"labels"`` (and only there),
    else ``ValueError`` naming the key."""
    if labels is None:
        if mode == "labels":
            raise ValueError(
                'targeted = "labels" needs target_labels: the class index each true class is pushed '
                "towards, one per class, e.g. [2, 2, 0, 2]"
            )
        return None
    if mode != "labels":
        raise ValueError(f'target_labels is only for targeted = "labels", got targeted = {mode!r}')
    if (
        not isinstance(labels, list | tuple)
        or len(labels) < 2
        or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in labels)
    ):
        raise ValueError(
            f"expected target_labels to be a list of class indices, one per class (at least 2), got {labels!r}"
        )
    if max(labels) >= len(labels):
        raise ValueError(
            f"target_labels names class {max(labels)} but lists {len(labels)} classes (0 … {len(labels) - 1})"
        )
    same = [k for k, t in enumerate(labels) if t == k]
    if same:
        raise ValueError(f"target_labels pushes class {same} towards itself: a target must be another class")
    return tuple(int(v) for v in labels)


def label(name: str, mode: str | None, labels: tuple[int, ...] | None = None) -> str:
    """How a report names a targeted attack: ``PGD-10 → least-likely``, ``PGD-10 → labels 2,2,0,2``."""
    if mode is None:
        return name
    return f"{name} → {mode}" if labels is None else f"{name} → {mode} {','.join(map(str, labels))}"


def cell_key(mode: str | None, labels: tuple[int, ...] | None = None) -> str:
    """The part of a cell's file name for the mode ('' untargeted, so existing run directories resume)."""
    if mode is None:
        return ""
    return f"__targeted-{mode}" + ("" if labels is None else "-" + "-".join(map(str, labels)))


def check_classes(labels: tuple[int, ...] | None, num_classes: int) -> None:
    """``ValueError`` where ``target_labels`` do not list one target per class of the model."""
    if labels is not None and len(labels) != num_classes:
        raise ValueError(
            f"target_labels lists {len(labels)} classes, but the model has {num_classes}: "
            "give one target class index per class"
        )


def choose(
    mode: str,
    y: torch.Tensor,
    clean_logits: torch.Tensor,
    index: torch.Tensor,
    seed: int,
    labels: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Per sample, the class ``mode`` targets: ``y`` true labels, ``clean_logits`` the model's logits
    at x, ``index`` each sample's position in the test set (what a random target is drawn for),
    ``labels`` the target of each true class (``"labels"``)."""
    if mode == "least-likely":
        return clean_logits.argmin(dim=1)
    if mode == "labels":
        assert labels is not None  # check_target_labels
        check_classes(labels, int(clean_logits.shape[1]))
        return torch.tensor(labels, dtype=torch.int64, device=y.device)[y]
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
