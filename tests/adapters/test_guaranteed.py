"""The guaranteed-adversarial models (``adapters/guaranteed.py``): the certificate is what it says —
recomputed by hand from the features and the readout in float64 — and an attack can fail the test."""

from __future__ import annotations

import pytest
import torch
from advparity.adapters import AttackSpec, get, run_attack
from advparity.adapters.attacks.norms import distance, eps_tolerance
from advparity.adapters.guaranteed import INNER, binarize, found, last_linear
from support.small_nets import synthetic_batch
from torch import nn

EPS = {"linf": 4 / 255, "l2": 0.5}


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    """A random two-layer network with 64 features: more than the 4 × 10 points a batch of 4 fits."""
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(192, 64), nn.Tanh(), nn.Linear(64, 3)).eval()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_certificate_holds_by_hand(mlp: nn.Module, norm: str) -> None:
    x, _ = synthetic_batch(4, seed=5)
    test = binarize(mlp, x, EPS[norm], norm, seed=1)
    assert test.certified.all()
    model = test.model
    assert not model.training and model(x).shape == (4, 2)
    # s = w·f + c in float64, with f the first layer and tanh: the readout's sign at each point.
    first = mlp[1]
    w, c = model.readout.weight.double(), model.readout.bias.double()

    def score(z: torch.Tensor) -> torch.Tensor:
        f = torch.tanh(z.flatten(1).double() @ first.weight.double().T + first.bias.double())
        return f @ w + c

    assert (score(test.certificate) > 0).all() and (score(x) < 0).all()
    assert (distance(norm, test.certificate, x) <= EPS[norm] + eps_tolerance(norm, EPS[norm])).all()
    assert ((test.certificate >= 0) & (test.certificate <= 1)).all()
    assert test.labels.tolist() == [0, 0, 0, 0]
    # The original model is untouched: the test works on a copy.
    assert isinstance(mlp[3], nn.Linear)


def test_a_model_without_a_linear_readout_is_refused() -> None:
    with pytest.raises(ValueError, match="no nn.Linear readout"):
        last_linear(nn.Sequential(nn.Flatten(), nn.ReLU()))
    with pytest.raises(ValueError, match="single nn.Linear"):
        binarize(nn.Linear(192, 3), synthetic_batch(2, seed=0)[0].flatten(1), 0.1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_reference_finds_every_certified_sample(mlp: nn.Module, norm: str) -> None:
    x, _ = synthetic_batch(4, seed=5)
    test = binarize(mlp, x, EPS[norm], norm)
    for spec in (
        AttackSpec("pgd", EPS[norm], steps=10, random_start=False, norm=norm),
        AttackSpec("fgsm", EPS[norm], norm=norm),
    ):
        x_adv = run_attack(get("reference"), test.model, x, test.labels, spec).x_adv
        assert found(test, x, x_adv)[test.certified].all(), spec.label


def test_a_weak_attack_fails_it(mlp: nn.Module) -> None:
    """A hundredth of the budget, or x itself, finds none: the test can fail. (A tenth found 2 of the 4
    here: the readout's class-1 region comes close to x in directions the inner points do not pin.)"""
    x, _ = synthetic_batch(4, seed=5)
    test = binarize(mlp, x, EPS["linf"], "linf")
    short = AttackSpec("pgd", EPS["linf"] / 100, steps=10, random_start=False)
    x_adv = run_attack(get("reference"), test.model, x, test.labels, short).x_adv
    assert not found(test, x, x_adv).any()
    assert not found(test, x, x).any()
    # Beyond the budget does not count, whatever the model says.
    assert not found(test, x, (x + 2 * EPS["linf"]).clamp(0, 1)).any()
    assert INNER > 0
