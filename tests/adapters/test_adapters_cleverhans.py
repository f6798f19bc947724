"""CleverHans 4.0.0: what its adapter sets and declares that the shared adapter tests do not show
(``adapters/cleverhans.py`` quotes the source).

Called bare, CleverHans attacks the model's predictions when ``y`` is None, asserts ``eps_iter <= eps``,
draws its start from torch's global RNG and accumulates ``.grad`` on the parameters; the adapter passes
the true labels, refuses alpha > eps before CleverHans runs, and the guard restores the RNG and the
model. Its L2 arithmetic differs from the definition's geometry in three places, each needed for the
bit-for-bit expectation; where its floor under the squared gradient norm binds it takes another step,
and those samples disagree.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from advparity.adapters import AttackSpec
from advparity.adapters.attacks import geometry
from advparity.adapters.declaration import Declaration
from advparity.adapters.expected import compare, expectation
from support.adapter_checks import require_runnable, synthetic_batch
from torch import nn

from advparity import adapters

require_runnable("cleverhans")  # before importing its adapter
import cleverhans.torch.attacks.fast_gradient_method as fgm_module  # noqa: E402
import cleverhans.torch.attacks.projected_gradient_descent as pgd_module  # noqa: E402
from advparity.adapters import cleverhans as adapter_module  # noqa: E402

Batch = tuple[torch.Tensor, torch.Tensor]

FGM_L2 = AttackSpec("fgsm", 0.5, norm="l2")
PGD_L2 = AttackSpec("pgd", 0.5, steps=3, norm="l2", seed=5)


def _batch() -> Batch:
    return synthetic_batch(13, seed=21)  # not a power of two: the mean's 1/N rounds


def _pgd_arguments(y: torch.Tensor, eps: float, eps_iter: float, rand_init: bool) -> dict[str, object]:
    """Every argument of a bare L∞ ``projected_gradient_descent`` call but the model and x."""
    return {
        "eps": eps,
        "eps_iter": eps_iter,
        "nb_iter": 1,
        "norm": np.inf,
        "clip_min": 0.0,
        "clip_max": 1.0,
        "y": y,
        "targeted": False,
        "rand_init": rand_init,
        "rand_minmax": eps,
        "sanity_checks": False,
    }


def _with_arithmetic(spec: AttackSpec, arithmetic: geometry.Geometry | None) -> Declaration:
    offer = adapters.get("cleverhans").declaration.offer(spec.attack)
    return Declaration(offers={spec.attack: replace(offer, arithmetic=lambda s: arithmetic)})


def test_true_labels_are_passed(small_net: nn.Module) -> None:
    """With ``y=None`` CleverHans attacks the model's predictions, at one forward more: the adapter's
    output is the true-label attack, on every sample, and differs where a label is not predicted."""
    x, y = _batch()
    y = y.clone()
    y[[1, 6, 11]] = (y[[1, 6, 11]] + 1) % 3  # labels the model does not predict
    spec = AttackSpec("fgsm", 4 / 255)
    cleverhans = adapters.get("cleverhans")
    result = cleverhans.run(small_net, x, y, spec)
    assert torch.equal(result.x_adv, expectation(small_net, x, y, spec, cleverhans.declaration).x_adv)
    assert result.stats.forward_passes_per_sample == 1

    model = copy.deepcopy(small_net)  # a bare call leaves .grad on the parameters
    predicted = fgm_module.fast_gradient_method(
        model,
        x,
        eps=spec.eps,
        norm=np.inf,
        clip_min=0.0,
        clip_max=1.0,
        y=None,
        targeted=False,
        sanity_checks=False,
    ).detach()
    with torch.no_grad():
        differs_from_prediction = small_net(x).argmax(dim=1) != y
    changed = (predicted != result.x_adv).flatten(1).any(dim=1)
    assert differs_from_prediction.sum() >= 3
    assert torch.equal(changed, differs_from_prediction)


def test_a_step_larger_than_eps_is_refused_before_cleverhans_runs(
    small_net: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _batch()
    spec = AttackSpec("pgd", 2 / 255, steps=2, alpha=4 / 255, random_start=False)
    with pytest.raises(AssertionError):  # what CleverHans itself does: `assert eps_iter <= eps`
        pgd_module.projected_gradient_descent(
            copy.deepcopy(small_net), x, **_pgd_arguments(y, eps=2 / 255, eps_iter=4 / 255, rand_init=False)
        )

    def never(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("CleverHans ran")

    monkeypatch.setattr(pgd_module, "projected_gradient_descent", never)
    cleverhans = adapters.get("cleverhans")
    with pytest.raises(
        ValueError,
        match=r"cleverhans offers no PGD with a step larger than eps \(alpha=0\.0156863 > eps=0\.00784314\)",
    ):
        cleverhans.generate(small_net, x, y, spec)
    assert not cleverhans.declaration.accepts(spec)
    assert cleverhans.declaration.accepts(replace(spec, params=replace(spec.params, alpha=2 / 255)))


def test_the_callers_rng_state_is_unchanged(small_net: nn.Module) -> None:
    """A bare call draws its start from torch's global generator; through the adapter it draws from
    ``spec.seed`` and the caller's stream goes on where it was."""
    x, y = _batch()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    pgd_module.projected_gradient_descent(
        copy.deepcopy(small_net), x, **_pgd_arguments(y, eps=4 / 255, eps_iter=1 / 255, rand_init=True)
    )
    assert not torch.equal(torch.get_rng_state(), state)

    torch.set_rng_state(state)
    numpy_state = np.random.get_state()
    first = adapters.get("cleverhans").generate(small_net, x, y, AttackSpec("pgd", 4 / 255, steps=2, seed=7))
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    again = adapters.get("cleverhans").generate(small_net, x, y, AttackSpec("pgd", 4 / 255, steps=2, seed=7))
    assert torch.equal(first, again)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_parameter_grads_are_restored_by_the_guard(attack: str, small_net: nn.Module) -> None:
    x, y = _batch()
    model = copy.deepcopy(small_net)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = [p.grad.clone() for p in model.parameters()]
    spec = AttackSpec(attack, 4 / 255) if attack == "fgsm" else AttackSpec("pgd", 4 / 255, steps=2)
    adapters.get("cleverhans").generate(model, x, y, spec)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before, strict=True))

    # Bare, CleverHans's loss.backward() accumulates into them.
    fgm_module.fast_gradient_method(
        model,
        x,
        eps=4 / 255,
        norm=np.inf,
        clip_min=0.0,
        clip_max=1.0,
        y=y,
        targeted=False,
        sanity_checks=False,
    )
    assert any(not torch.equal(p.grad, g) for p, g in zip(model.parameters(), before, strict=True))


def test_linf_needs_no_arithmetic_of_its_own(small_net: nn.Module) -> None:
    """Clipping each L∞ step to the box before the L∞ clamp gives the definition's floats: bit for bit
    from the definition's geometry, PGD-10 at 16/255 included."""
    x, y = _batch()
    cleverhans = adapters.get("cleverhans")
    for spec in (AttackSpec("fgsm", 4 / 255), AttackSpec("pgd", 16 / 255, steps=10, seed=1)):
        assert cleverhans.declaration.arithmetic(spec) is None
        x_adv = cleverhans.generate(small_net, x, y, spec)
        assert torch.equal(x_adv, expectation(small_net, x, y, spec, cleverhans.declaration).x_adv)


def test_the_declared_l2_arithmetic_is_necessary(small_net: nn.Module) -> None:
    """The definition's L2 geometry misses CleverHans's output on some pixels, and so does the declared
    one with any one of its three parts — the normalisation, ``clip_eta``, the clip before the
    projection — put back to the definition's."""
    x, y = _batch()
    cleverhans = adapters.get("cleverhans")
    declared = adapter_module._L2
    for spec in (FGM_L2, PGD_L2):
        x_adv = cleverhans.generate(small_net, x, y, spec)
        assert torch.equal(x_adv, expectation(small_net, x, y, spec, cleverhans.declaration).x_adv)
        plain = expectation(small_net, x, y, spec, _with_arithmetic(spec, None)).x_adv
        assert (plain != x_adv).sum() > 0, spec
    x_adv = cleverhans.generate(small_net, x, y, PGD_L2)
    for part in (
        replace(declared, direction=geometry.unit_l2),
        replace(declared, project=geometry.rescale_l2),
        replace(declared, clip_first=False),
    ):
        other = expectation(small_net, x, y, PGD_L2, _with_arithmetic(PGD_L2, part)).x_adv
        assert (other != x_adv).sum() > 0, part


class _Confident(nn.Module):
    """The small net with its logits doubled: nearly saturated softmax, tiny loss gradients."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.net(x)


def test_a_gradient_under_the_squared_norm_floor_takes_a_shorter_step_and_disagrees(
    small_net: nn.Module,
) -> None:
    """``max(1e-12, sum(g ** 2))``: where a sample's mean-loss gradient has ‖g‖₂ < 1e-6 CleverHans steps
    eps·‖g‖₂/1e-6 instead of eps. That is not round-off, so the expectation keeps the full step and
    exactly those samples disagree (measured: 2 of 16 here, stepping 0.37 and 0.018 instead of 0.5)."""
    model = _Confident(small_net).eval()
    x, y = synthetic_batch(16, seed=21)
    x_req = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x_req), y).backward()
    floored = x_req.grad.flatten(1).norm(dim=1) < 1e-6
    assert 0 < int(floored.sum()) < len(x)

    cleverhans = adapters.get("cleverhans")
    x_adv = cleverhans.generate(model, x, y, FGM_L2)
    expected = expectation(model, x, y, FGM_L2, cleverhans.declaration)
    assert torch.equal(compare(x_adv, expected).pixels_differ > 0, floored)
    step = (x_adv - x).flatten(1).norm(dim=1)
    assert (step[floored] < 0.8 * FGM_L2.eps).all()
    assert torch.equal(x_adv[~floored], expected.x_adv[~floored])


def test_the_l2_start_is_the_cube_draw_projected_onto_the_sphere() -> None:
    """``uniform_(-eps, eps)`` in every pixel has norm ≈ eps·√(d/3), so ``clip_eta`` puts every start on
    the ball's surface (before the box clips it): not uniform in the ball."""
    x = torch.full((6, 1, 12, 16), 0.5)  # far enough from 0 and 1 that the box clips nothing
    eps = 0.5
    start = adapters.get("cleverhans").declaration.start(
        x, AttackSpec("pgd", eps, steps=1, norm="l2", seed=3)
    )
    assert start is not None
    radius = (start - x).flatten(1).norm(dim=1)
    assert torch.allclose(radius, torch.full_like(radius, eps), rtol=1e-6, atol=0)
