"""ART (adversarial-robustness-toolbox): ``FastGradientMethod`` and ``ProjectedGradientDescent``.

Every argument is set, none left to ART's defaults (``max_iter=100``, ``eps_step=0.1``, no random
init, ``batch_size=32``, progress bars, and ``device_type="gpu"`` picking the current CUDA device).
True labels are always passed: with ``y=None`` ART silently attacks the model's *predicted* labels.
ART accepts index labels ``[N]`` and one-hot encodes them itself (``check_and_transform_label_format``).

Loss: ``CrossEntropyLoss(reduction="mean")``, what ART users (and the paper) write; the reference sums
(see reference.py for why that only matters in round-off).

What ART really spends: FGSM 1 forward + 1 backward per sample; PGD ``steps`` of each plus 2 forwards
(it predicts the clean and the adversarial batch to log a success rate, whatever the log level).

Seeding: ART draws the PGD random start from NumPy's global RNG, once per ART batch (we pass the whole
batch as one): ``random_sphere`` → ``np.random.uniform(-eps, eps, (n, C·H·W))`` in float64, reshaped
and cast to float32, added to x and clipped to ``clip_values``
(``art/attacks/evasion/projected_gradient_descent/projected_gradient_descent_pytorch.py``,
``art/utils.py``); ``torch.manual_seed`` does not fix it. We seed ``np.random`` with ``spec.seed`` and
restore its state afterwards; :func:`_start` makes the same draw, which is how the harness knows the
exact x_adv ART must return.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from art.attacks import EvasionAttack
from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from torch import nn

from .base import GuardedAdapter
from .declaration import AttackFn, Declaration, Offer, extra_forwards
from .rng import seeded_global_rngs
from .spec import AttackSpec


def _classifier(model: nn.Module, x: torch.Tensor, num_classes: int) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(reduction="mean"),
        input_shape=tuple(x.shape[1:]),
        nb_classes=num_classes,
        optimizer=None,
        use_amp=False,
        channels_first=True,
        clip_values=(0.0, 1.0),
        preprocessing_defences=None,
        postprocessing_defences=None,
        preprocessing=None,  # normalisation lives inside the model
        device_type="gpu" if x.is_cuda else "cpu",
    )


def _fgsm(classifier: PyTorchClassifier, x: torch.Tensor, spec: AttackSpec) -> FastGradientMethod:
    return FastGradientMethod(
        classifier,
        norm=np.inf,
        eps=spec.eps,
        eps_step=spec.eps,  # only read when minimal=True; set so nothing falls on a default
        targeted=False,
        num_random_init=0,
        batch_size=int(x.shape[0]),
        minimal=False,
        summary_writer=False,
    )


def _pgd(classifier: PyTorchClassifier, x: torch.Tensor, spec: AttackSpec) -> ProjectedGradientDescent:
    return ProjectedGradientDescent(
        classifier,
        norm=np.inf,
        eps=spec.eps,
        eps_step=spec.step_size,
        decay=None,
        max_iter=spec.steps,
        targeted=False,
        num_random_init=1 if spec.random_start else 0,
        batch_size=int(x.shape[0]),
        random_eps=False,
        summary_writer=False,
        verbose=False,
    )


def _run(build: Callable[[PyTorchClassifier, torch.Tensor, AttackSpec], EvasionAttack]) -> AttackFn:
    def call(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        # ART places the model on the *current* CUDA device: make that x's device.
        on_device = torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
        with on_device, seeded_global_rngs(spec.seed, x.device):
            attack = build(_classifier(model, x, num_classes), x, spec)
            x_adv = attack.generate(x=x.cpu().numpy(), y=y.cpu().numpy())
        return torch.from_numpy(x_adv).to(device=x.device, dtype=x.dtype)

    return call


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    n, m = int(x.shape[0]), int(np.prod(x.shape[1:]))
    with seeded_global_rngs(spec.seed, x.device):
        noise = np.random.uniform(-spec.eps, spec.eps, (n, m)).reshape(x.shape).astype(np.float32)
    return torch.clamp(x + torch.from_numpy(noise).to(x.device), 0.0, 1.0)


ADAPTER = GuardedAdapter(
    name="art",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(call=_run(_fgsm), loss_reduction="mean"),
            "pgd": Offer(call=_run(_pgd), loss_reduction="mean", passes=extra_forwards(2), start=_start),
        }
    ),
)
