# ruff: noqa: SIM108  (copied library code keeps its own if/else style)
"""Planted bugs that the reference comparison alone need not see, for the mutation suite (merged into
``mutants.MUTANTS``): a result that depends on the batch, an eps = 0 that still steps, an attack that
silently stops early. The first two leave every x_adv of the run's own batches as the reference's; only
the invariants (``adapters/invariants.py``), which every run checks on a few samples of each cell, can
flag them. The third changes the passes spent, whatever x_adv shows.

Same rules as ``mutants.py``: each torchattacks method body is copied from the installed torchattacks
3.5.1 (``torchattacks/attacks/fgsm.py``, ``pgd.py``) with exactly one plausible change, marked by a
``# MUTATION:`` comment above it that quotes the original line. Import this file through ``mutants``.
"""

from __future__ import annotations

import pytest
import torch
from mutants import Mutant
from torch import nn
from torchattacks.attacks.fgsm import FGSM
from torchattacks.attacks.pgd import PGD

COPIED_FROM: dict[str, str] = {"torchattacks": "3.5.1"}

BUGS: tuple[str, ...] = (
    "batch dependence",  # a sample's x_adv depends on the batch it came in
    "zero budget",  # eps = 0 still moves the image
    "early stop",  # the attack ends before its steps are taken
)

# Below the suite's smallest FGSM eps (0.1/255 ≈ 3.9e-4): the run's own cells never see the floor.
STEP_FLOOR = 1e-4


def _torchattacks_fgsm_small_batch_returned(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        # MUTATION: added — a batch "too small to attack" (fewer than 3 images) comes back as it went in
        if len(images) < 3:
            return images

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        images.requires_grad = True
        outputs = self.get_logits(images)

        # Calculate loss
        if self.targeted:
            cost = -loss(outputs, target_labels)
        else:
            cost = loss(outputs, labels)

        # Update adversarial images
        grad = torch.autograd.grad(cost, images, retain_graph=False, create_graph=False)[0]

        adv_images = images + self.eps * grad.sign()
        adv_images = torch.clamp(adv_images, min=0, max=1).detach()

        return adv_images

    mp.setattr(FGSM, "forward", forward)


def _torchattacks_fgsm_step_floor(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, model, eps=8 / 255):  # type: ignore[no-untyped-def]
        super(FGSM, self).__init__("FGSM", model)
        # MUTATION: was `self.eps = eps`
        self.eps = max(eps, STEP_FLOOR)
        self.supported_mode = ["default", "targeted"]

    mp.setattr(FGSM, "__init__", __init__)


def _torchattacks_pgd_stops_at_first_success(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()
        adv_images = images.clone().detach()

        if self.random_start:
            # Starting at a uniformly random point
            adv_images = adv_images + torch.empty_like(adv_images).uniform_(-self.eps, self.eps)
            adv_images = torch.clamp(adv_images, min=0, max=1).detach()

        for _ in range(self.steps):
            adv_images.requires_grad = True
            outputs = self.get_logits(adv_images)
            # MUTATION: added — "early stopping": the batch ends once any sample is misclassified
            if (outputs.argmax(1) != labels).any():
                break

            # Calculate loss
            if self.targeted:
                cost = -loss(outputs, target_labels)
            else:
                cost = loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        # (detached: the break leaves the last iterate requiring a gradient)
        return adv_images.detach()

    mp.setattr(PGD, "forward", forward)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "torchattacks-fgsm-small-batch-returned",
        "torchattacks",
        "fgsm",
        "batch dependence",
        "torchattacks FGSM returns a batch of fewer than 3 images unattacked: the run's batches (5 and 3) are "
        "the reference's, a sample attacked in a smaller batch is not.",
        _torchattacks_fgsm_small_batch_returned,
    ),
    Mutant(
        "torchattacks-fgsm-step-floor",
        "torchattacks",
        "fgsm",
        "zero budget",
        f"torchattacks FGSM steps by max(eps, {STEP_FLOOR:g}): the same at every eps of the grid, not at eps = 0.",
        _torchattacks_fgsm_step_floor,
    ),
    Mutant(
        "torchattacks-pgd-stops-at-first-success",
        "torchattacks",
        "pgd",
        "early stop",
        "torchattacks PGD stops the whole batch's loop as soon as any sample is misclassified.",
        _torchattacks_pgd_stops_at_first_success,
    ),
)
