"""torchattacks: ``FGSM`` and ``PGD``.

All constructor arguments are set. ``set_normalization_used`` is deliberately never called: it
expects *normalised* inputs and silently clamps out-of-range ones (normalisation is inside our model).
torchattacks switches the whole model to eval and back with ``model.train()``, which would undo a
BatchNorm the user froze in eval — the shared guard restores every submodule's flag. Being handed our
counting wrapper also keeps torchattacks from auto-enabling normalisation for a model named RobModel.

Loss: ``nn.CrossEntropyLoss()`` (mean), hard-coded. Passes: FGSM 1 forward + 1 backward per sample;
PGD ``steps`` of each.

Seeding: the PGD random start is ``torch.empty_like(x).uniform_(-eps, eps)`` on torch's global RNG
(``torchattacks/attacks/pgd.py``), then ``clamp(0, 1)``. We seed it with ``spec.seed`` inside
``torch.random.fork_rng`` so the caller's RNG state is restored; :func:`_start` makes the same draw,
which is how the harness knows the exact x_adv torchattacks must return.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchattacks
from torch import nn

from .base import GuardedAdapter
from .declaration import AttackFn, Declaration, Offer
from .rng import seeded_global_rngs
from .spec import AttackSpec


def _fgsm(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    return torchattacks.FGSM(model, eps=spec.eps)


def _pgd(model: nn.Module, spec: AttackSpec) -> torchattacks.attack.Attack:
    return torchattacks.PGD(
        model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=spec.random_start
    )


def _run(build: Callable[[nn.Module, AttackSpec], torchattacks.attack.Attack]) -> AttackFn:
    def call(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        attack = build(model, spec)
        attack.set_model_training_mode(model_training=False, batchnorm_training=False, dropout_training=False)
        attack.set_device(x.device)
        with seeded_global_rngs(spec.seed, x.device):
            x_adv: torch.Tensor = attack(x, y)
        return x_adv

    return call


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        noise = torch.empty_like(x).uniform_(-spec.eps, spec.eps)
    return torch.clamp(x + noise, min=0, max=1)


ADAPTER = GuardedAdapter(
    name="torchattacks",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(call=_run(_fgsm), loss_reduction="mean"),
            "pgd": Offer(call=_run(_pgd), loss_reduction="mean", start=_start),
        }
    ),
)
