"""Foolbox 3: ``LinfFastGradientAttack`` (FGSM) and ``LinfProjectedGradientDescentAttack`` (LinfPGD).

LinfPGD's defaults are not the paper's (``rel_stepsize=1/30, steps=40``): step size, steps and random
start are set from the spec (``abs_stepsize`` takes precedence; ``rel_stepsize`` is set to the same
step so neither is a default). FGSM has only ``random_start`` (False): its step is eps by definition.
Foolbox never calls ``model.eval()`` and its eagerpy ``loss.backward()`` accumulates ``.grad`` on the
parameters; it checks the input range with ``assert`` (gone under ``python -O``) — the shared guard
covers all three. We return the perturbation-clipped output (the second value Foolbox returns).

Loss: cross-entropy summed over the batch, like the reference. Passes: FGSM 2 forwards + 1 backward
per sample, PGD ``steps + 1`` forwards + ``steps`` backwards (Foolbox runs the model once more on its
output to report success).

Seeding: the random start is eagerpy's ``uniform(x, shape, -eps, eps)``, i.e.
``torch.rand(shape, dtype, device) * (eps - (-eps)) + (-eps)`` on torch's global RNG, added to x and
clipped to the bounds (``foolbox/attacks/gradient_descent_base.py``, ``eagerpy/tensor/pytorch.py``).
We seed it with ``spec.seed`` inside ``torch.random.fork_rng`` so the caller's RNG state is restored;
:func:`_start` makes the same draw, which is how the harness knows the exact x_adv Foolbox must return.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import nn

from .base import GuardedAdapter
from .declaration import AttackFn, Declaration, Offer, extra_forwards
from .rng import seeded_global_rngs
from .spec import AttackSpec

# Foolbox imports GitPython, which raises at import time on machines without a git executable.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8; nothing we can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    import foolbox


def _fgsm(spec: AttackSpec) -> foolbox.attacks.base.FixedEpsilonAttack:
    return foolbox.attacks.LinfFastGradientAttack(random_start=False)


def _pgd(spec: AttackSpec) -> foolbox.attacks.base.FixedEpsilonAttack:
    return foolbox.attacks.LinfProjectedGradientDescentAttack(
        rel_stepsize=spec.step_size / spec.eps,
        abs_stepsize=spec.step_size,
        steps=spec.steps,
        random_start=spec.random_start,
    )


def _run(build: Callable[[AttackSpec], foolbox.attacks.base.FixedEpsilonAttack]) -> AttackFn:
    def call(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        attack = build(spec)
        fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device, preprocessing=None)
        criterion = foolbox.criteria.Misclassification(y)  # true labels, untargeted
        with seeded_global_rngs(spec.seed, x.device):
            _raw, clipped, _success = attack(fmodel, x, criterion, epsilons=spec.eps)
        return clipped

    return call


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    low, high = -spec.eps, spec.eps
    with seeded_global_rngs(spec.seed, x.device):
        noise = torch.rand(x.shape, dtype=x.dtype, device=x.device) * (high - low) + low
    return torch.clamp(x + noise, 0.0, 1.0)


# +1 forward for FGSM and PGD alike: Foolbox runs the model on its output to report success.
ADAPTER = GuardedAdapter(
    name="foolbox",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(call=_run(_fgsm), loss_reduction="sum", passes=extra_forwards(1)),
            "pgd": Offer(call=_run(_pgd), loss_reduction="sum", passes=extra_forwards(1), start=_start),
        }
    ),
)
