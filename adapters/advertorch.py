"""advertorch: ``GradientSignAttack`` (FGSM) and ``LinfPGDAttack``.

advertorch 0.2.3 (the latest release) no longer imports with current torch: its
``attacks/fast_adaptive_boundary.py`` does ``from torch.autograd.gradcheck import zero_gradients``, a
function torch removed, and ``advertorch.attacks`` imports that module. Where that happens the harness
records the library as *unavailable*, with the import error as the reason, instead of crashing or
skipping it silently. This adapter is written from the 0.2.3 source for the torch releases where it
imports; it has not run under the torch versions advparity is tested with.

All hyper-parameters are set: ``eps``, ``nb_iter``, ``eps_iter``, ``rand_init``, ``clip_min=0``,
``clip_max=1``, ``targeted=False``, and the loss explicitly (advertorch's default, cross-entropy summed
over the batch). True labels are passed (``y=None`` would attack the predicted labels). advertorch does
not touch the model's mode; the shared guard puts it in eval mode and restores it.

Passes: FGSM 1 forward + 1 backward per sample; PGD ``nb_iter`` of each (``perturb_iterative``).

Seeding: the PGD random start is ``delta = zeros_like(x).uniform_(-1, 1)`` on torch's global RNG, scaled by
eps (``batch_multiply``), then ``delta = clamp(x + delta, 0, 1) - x``; the iterates are ``x + delta``
(``attacks/utils.py::rand_init_delta``, ``attacks/iterative_projected_gradient.py::PGDAttack.perturb``).
:func:`_start` makes the same draw and the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .base import GuardedAdapter
from .declaration import AttackFn, Declaration, Offer
from .rng import seeded_global_rngs
from .spec import AttackSpec

# Raises ImportError with current torch (see above); adapters.get() turns that into LibraryUnavailable.
from advertorch.attacks import Attack, GradientSignAttack, LinfPGDAttack  # noqa: E402  isort: skip


def _fgsm(model: nn.Module, loss: nn.Module, spec: AttackSpec) -> GradientSignAttack:
    return GradientSignAttack(model, loss_fn=loss, eps=spec.eps, clip_min=0.0, clip_max=1.0, targeted=False)


def _pgd(model: nn.Module, loss: nn.Module, spec: AttackSpec) -> LinfPGDAttack:
    return LinfPGDAttack(
        model,
        loss_fn=loss,
        eps=spec.eps,
        nb_iter=spec.steps,
        eps_iter=spec.step_size,
        rand_init=spec.random_start,
        clip_min=0.0,
        clip_max=1.0,
        targeted=False,
    )


def _run(build: Callable[[nn.Module, nn.Module, AttackSpec], Attack]) -> AttackFn:
    def call(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        attack = build(model, nn.CrossEntropyLoss(reduction="sum"), spec)
        with seeded_global_rngs(spec.seed, x.device):
            x_adv: torch.Tensor = attack.perturb(x, y)
        return x_adv

    return call


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        delta = torch.zeros_like(x).uniform_(-1, 1)
    delta = spec.eps * delta
    delta = torch.clamp(x + delta, 0.0, 1.0) - x
    return x + delta


ADAPTER = GuardedAdapter(
    name="advertorch",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(call=_run(_fgsm), loss_reduction="sum"),
            "pgd": Offer(call=_run(_pgd), loss_reduction="sum", start=_start),
        }
    ),
)
