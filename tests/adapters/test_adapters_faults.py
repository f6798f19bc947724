"""Fault injection: deliberately wrong adapters are caught by the reference comparison and the guards.

These prove the parity tests can fail: each wrong adapter differs from the reference far beyond
float32 round-off, and outputs that break a bound raise AttackOutputError naming library and bound.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from advparity.adapters import AttackOutputError, AttackSpec
from support.adapter_checks import mismatch
from torch import nn

from advparity import adapters

Batch = tuple[torch.Tensor, torch.Tensor]


def _foolbox_default_stepsize(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, k: int
) -> torch.Tensor:
    import foolbox

    attack = foolbox.attacks.LinfPGD(
        steps=spec.steps, random_start=spec.random_start
    )  # rel_stepsize=1/30 default
    return attack(foolbox.PyTorchModel(model, bounds=(0.0, 1.0)), x, y, epsilons=spec.eps)[1]


def _art_predicted_labels(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, k: int
) -> torch.Tensor:
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=k,
        clip_values=(0.0, 1.0),
    )
    attack = FastGradientMethod(classifier, norm=np.inf, eps=spec.eps, batch_size=len(x))
    return torch.from_numpy(attack.generate(x.numpy()))  # y=None: ART attacks the predicted labels


def test_foolbox_default_step_size_is_caught(small_net: nn.Module, small_batch: Batch) -> None:
    spec = AttackSpec("pgd", 8 / 255, steps=10, random_start=False)
    wrong = dataclasses.replace(
        adapters.get("foolbox"), name="foolbox-defaults", attack_fn=_foolbox_default_stepsize
    )
    x_ref = adapters.get("reference").generate(small_net, *small_batch, spec)
    found = mismatch(wrong.generate(small_net, *small_batch, spec), x_ref)
    assert found.samples == 16 and found.max_abs > (8 / 255) / 2


def test_attack_on_predicted_labels_is_caught(small_net: nn.Module, small_batch: Batch) -> None:
    x, y = small_batch
    with torch.no_grad():
        pred = small_net(x).argmax(1)
    # relabel four samples so that true label and prediction disagree there
    y_true = y.clone()
    y_true[:4] = (pred[:4] + 1) % 3
    spec = AttackSpec("fgsm", 2 / 255)
    wrong = dataclasses.replace(adapters.get("art"), name="art-y-none", attack_fn=_art_predicted_labels)
    x_ref = adapters.get("reference").generate(small_net, x, y_true, spec)
    x_wrong = wrong.generate(small_net, x, y_true, spec)
    differs = (x_wrong - x_ref).abs().flatten(1).max(dim=1).values > 1.2e-7
    assert bool(differs[:4].all()), "attacking the prediction must differ where label != prediction"
    right = pred[4:] == y_true[4:]
    assert not bool(differs[4:][right].any()), "and agree where label == prediction"
    # the real adapter passes the true labels
    assert mismatch(adapters.get("art").generate(small_net, x, y_true, spec), x_ref).elements == 0


@pytest.mark.parametrize(
    ("make_output", "bound", "detail"),
    [
        (lambda x, eps: (x + 2 * eps).clamp(0, 1), "the eps-ball", r"L∞ distance .* > eps .* by "),
        (lambda x, eps: x + 1.0, "the \\[0, 1\\] box", r"range \[1, .*\], 1 outside"),
        (lambda x, eps: torch.cat([x[:1] * float("nan"), x[1:]]), "finiteness", r"192 NaN/inf values"),
        (lambda x, eps: x[:, :, :-1], "the shape", r"expected torch.Size\(\[16, 1, 12, 16\]\)"),
        (lambda x, eps: x.double(), "the dtype", r"expected torch.float32, got torch.float64"),
    ],
)
def test_output_guard_names_library_and_bound(
    make_output: object, bound: str, detail: str, small_net: nn.Module, small_batch: Batch
) -> None:
    def attack_fn(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, k: int
    ) -> torch.Tensor:
        return make_output(x, spec.eps)  # type: ignore[operator,no-any-return]

    broken = dataclasses.replace(adapters.get("reference"), name="broken", attack_fn=attack_fn)
    with pytest.raises(AttackOutputError, match=f"broken: output breaks {bound}: {detail}") as info:
        broken.generate(small_net, *small_batch, AttackSpec("fgsm", 1 / 255))
    assert info.value.library == "broken"
    assert isinstance(info.value, ValueError)


def test_eps_ball_tolerance_is_one_float32_ulp(small_net: nn.Module, small_batch: Batch) -> None:
    """One rounding beyond eps passes; anything visibly larger does not."""
    x, y = small_batch
    eps = 0.3 / 255

    def just_over(
        model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, spec: AttackSpec, k: int
    ) -> torch.Tensor:
        return torch.nextafter(xb + spec.eps, torch.tensor(2.0)).clamp(0, 1)

    def over(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, spec: AttackSpec, k: int) -> torch.Tensor:
        return (xb + spec.eps * 1.001).clamp(0, 1)

    ok = dataclasses.replace(adapters.get("reference"), attack_fn=just_over)
    ok.generate(small_net, x, y, AttackSpec("fgsm", eps))
    bad = dataclasses.replace(adapters.get("reference"), attack_fn=over)
    with pytest.raises(AttackOutputError, match="eps-ball"):
        bad.generate(small_net, x, y, AttackSpec("fgsm", eps))
