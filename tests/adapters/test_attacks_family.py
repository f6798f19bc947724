"""The gradient-attack family's definitions against mathematics and against each other.

L2 against closed-form geometry (a step of exactly eps along the gradient, the nearest point of the
ball, a start uniform in the ball); BIM, MI-FGSM with no momentum and FGSM from a random start
against the PGD they reduce to, bit for bit; MI-FGSM's momentum against the paper's recursion
written out by hand. Then each library's declared arithmetic (``Offer.arithmetic``): needed — the
definition's own rounding misses the library's x_adv — and Foolbox's MI-FGSM departure pinned to
what its source computes instead.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from advparity.adapters import AttackSpec, attacks
from advparity.adapters.attacks import geometry
from advparity.adapters.attacks.gradients import loss_gradient, uniform_ball_start
from advparity.adapters.expected import ExpectationCache
from scipy import stats
from support.adapter_checks import runs_spec, synthetic_batch
from torch import nn

from advparity import adapters


def _reference(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, start: torch.Tensor | None = None
) -> torch.Tensor:
    definition = spec.definition
    if start is None:
        start = definition.default_start(x, spec.eps, spec.params, spec.seed)
    return definition.reference(net, x, y, spec.eps, spec.params, start, "sum")[0]


# --- L2 geometry ---------------------------------------------------------------------------------


def test_fgm_l2_steps_exactly_eps_along_the_gradient(small_net: nn.Module) -> None:
    x, y = synthetic_batch(8, seed=4)
    x = x.clamp(0.2, 0.8)  # away from the box, so no clip shortens the step
    eps = 0.05
    x_adv = _reference(small_net, x, y, AttackSpec("fgsm", eps, norm="l2"))
    delta = (x_adv - x).double().flatten(1)
    grad = loss_gradient(small_net, x, y, "sum").double().flatten(1)
    assert torch.allclose(delta.norm(dim=1), torch.full((8,), eps, dtype=torch.float64), rtol=1e-5)
    assert torch.allclose(
        F.cosine_similarity(delta, grad, dim=1), torch.ones(8, dtype=torch.float64), atol=1e-6
    )


def test_the_l2_projection_is_the_nearest_point_of_the_ball() -> None:
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(6, 1, 4, 5, generator=g)
    delta[0] *= 1e-3  # inside: unchanged
    delta[1] = 0  # zero stays zero
    eps = 0.5
    projected = geometry.rescale_l2(delta, eps)
    norms = projected.flatten(1).norm(dim=1)
    assert torch.equal(projected[0], delta[0]) and torch.equal(projected[1], delta[1])
    assert torch.allclose(norms[2:], torch.full((4,), eps), rtol=1e-6)
    # The same direction: the nearest point of a ball centred at 0 lies on the ray through delta.
    assert torch.allclose(
        F.cosine_similarity(projected.flatten(1)[2:], delta.flatten(1)[2:], dim=1), torch.ones(4)
    )


def test_the_reference_l2_start_is_uniform_in_the_ball() -> None:
    """Uniform in the d-ball: (‖δ‖/eps)^d ~ U(0, 1), directions isotropic (each coordinate symmetric)."""
    x = torch.full((400, 1, 3, 3), 0.5)  # d = 9: the radius law is visible, and no clip is reached
    eps = 0.2
    before = torch.random.get_rng_state()
    start = uniform_ball_start(x, eps, seed=11)
    assert torch.equal(torch.random.get_rng_state(), before)  # a local generator: the caller's RNG untouched
    delta = (start - x).double().flatten(1)
    radius = delta.norm(dim=1) / eps
    assert float(radius.max()) <= 1 + 1e-6
    assert stats.kstest((radius**9).numpy(), "uniform").pvalue > 1e-3
    assert abs(float((delta[:, 0] > 0).double().mean()) - 0.5) < 0.1
    assert torch.equal(uniform_ball_start(x, eps, seed=11), start)


def test_every_pgd_l2_iterate_stays_in_the_ball_and_the_box(small_net: nn.Module) -> None:
    x, y = synthetic_batch(8, seed=5)
    spec = AttackSpec("pgd", 1.0, steps=5, norm="l2", seed=2)
    x_adv = _reference(small_net, x, y, spec)
    assert float(spec.definition.distance(x_adv, x, spec.params).max()) <= 1.0 + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1


# --- the family reduces to PGD ---------------------------------------------------------------------


def test_bim_is_pgd_without_a_random_start_bit_for_bit(small_net: nn.Module) -> None:
    x, y = synthetic_batch(13, seed=6)
    bim = _reference(small_net, x, y, AttackSpec("bim", 4 / 255, steps=4, alpha=1 / 255))
    pgd = _reference(small_net, x, y, AttackSpec("pgd", 4 / 255, steps=4, alpha=1 / 255, random_start=False))
    assert torch.equal(bim, pgd)


def test_mifgsm_without_momentum_is_bim_bit_for_bit(small_net: nn.Module) -> None:
    x, y = synthetic_batch(13, seed=7)
    mifgsm = _reference(small_net, x, y, AttackSpec("mifgsm", 4 / 255, steps=4, decay=0.0))
    bim = _reference(small_net, x, y, AttackSpec("bim", 4 / 255, steps=4))
    assert torch.equal(mifgsm, bim)


def test_mifgsm_follows_the_papers_recursion(small_net: nn.Module) -> None:
    """g_t+1 = μ·g_t + ∇/‖∇‖₁ and x_t+1 = Π(x_t + α·sign(g_t+1)), written out for two steps."""
    x, y = synthetic_batch(5, seed=8)
    eps, alpha, mu = 4 / 255, 1 / 255, 0.7
    x_t, g_t = x.clone(), torch.zeros_like(x)
    for _ in range(2):
        grad = loss_gradient(small_net, x_t, y, "sum")
        g_t = mu * g_t + grad / grad.abs().sum(dim=(1, 2, 3), keepdim=True)
        x_t = (x + (x_t + alpha * g_t.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    spec = AttackSpec("mifgsm", eps, steps=2, alpha=alpha, decay=mu)
    assert torch.equal(_reference(small_net, x, y, spec), x_t)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_from_a_random_start_is_one_pgd_step_bit_for_bit(small_net: nn.Module, norm: str) -> None:
    x, y = synthetic_batch(13, seed=9)
    eps = 4 / 255 if norm == "linf" else 0.5
    fgsm = AttackSpec("fgsm", eps, norm=norm, random_start=True, alpha=1.25 * eps, seed=3)
    pgd = AttackSpec("pgd", eps, norm=norm, steps=1, alpha=1.25 * eps, seed=3)
    start = fgsm.definition.default_start(x, eps, fgsm.params, 3)
    assert torch.equal(start, pgd.definition.default_start(x, eps, pgd.params, 3))
    assert torch.equal(_reference(small_net, x, y, fgsm), _reference(small_net, x, y, pgd))


def test_random_start_fgsm_is_seeded_and_fgsm_alone_is_not() -> None:
    assert AttackSpec("fgsm", 1 / 255, random_start=True).seeded
    assert not AttackSpec("fgsm", 1 / 255).seeded
    assert attacks.get("fgsm").shares_gradient_across_eps(AttackSpec("fgsm", 1 / 255).params)
    assert not attacks.get("fgsm").shares_gradient_across_eps(
        AttackSpec("fgsm", 1 / 255, random_start=True).params
    )


# --- the libraries' declared arithmetic ------------------------------------------------------------

# (library, spec) pairs whose offer declares an arithmetic of its own.
DECLARED = [
    (name, spec)
    for name in ("art", "torchattacks", "foolbox", "cleverhans")
    if name in adapters.runnable()
    for spec in (
        AttackSpec("fgsm", 0.5, norm="l2"),
        AttackSpec("pgd", 1.0, steps=5, norm="l2", random_start=False),
        AttackSpec("bim", 8 / 255, steps=5),
        AttackSpec("mifgsm", 8 / 255, steps=5),
    )
    if runs_spec(name, spec) and adapters.get(name).declaration.arithmetic(spec) is not None
]


@pytest.mark.parametrize(("name", "spec"), DECLARED, ids=[f"{n}-{s.label}" for n, s in DECLARED])
def test_a_declared_arithmetic_is_needed(small_net: nn.Module, name: str, spec: AttackSpec) -> None:
    """The library's x_adv equals the expectation in its own arithmetic on every pixel of some batch and,
    on that batch, differs from the definition's own rounding: the declaration is not decoration. The
    batches are tried in turn, one of them dark (an X-ray's background: a pixel near 0 is where
    ``x + (x_adv - x)`` and ``x_adv`` part); round-off shows on at least one."""
    adapter = adapters.get(name)
    misses = []
    for seed, scale in ((21, 1.0), (22, 1.0), (23, 0.1)):
        x, y = synthetic_batch(16, seed=seed)
        x = x * scale
        x_adv = adapter.run(small_net, x, y, spec).x_adv
        assert torch.equal(
            x_adv, ExpectationCache(small_net, x, y).get(spec, adapter.declaration, [spec.eps]).x_adv
        )
        definitions = spec.definition.reference(
            small_net, x, y, spec.eps, spec.params, x, adapter.declaration.loss_reduction(spec)
        )[0]
        misses.append(int((x_adv != definitions).sum()))
    assert max(misses) > 0, f"{name} {spec.label}: the definition's own arithmetic already matches; drop it"


def test_foolbox_mifgsm_accumulates_the_gradients_sign(small_net: nn.Module) -> None:
    """What Foolbox's MI-FGSM computes instead of the paper's (its documented departure): the momentum
    of sign(∇), not of ∇/‖∇‖₁ — reproduced here from its source, bit for bit."""
    x, y = synthetic_batch(13, seed=10)
    spec = AttackSpec("mifgsm", 8 / 255, steps=4, decay=1.0)
    if not runs_spec("foolbox", spec):
        pytest.skip("this Foolbox has no LinfMomentumIterativeFastGradientMethod (it arrived in 3.3.4)")
    sign_momentum = attacks.mifgsm.Momentum(normalise=torch.sign, accumulate=lambda m, g, mu: mu * m + g)
    expected = spec.definition.reference(small_net, x, y, spec.eps, spec.params, x, "sum", sign_momentum)[0]
    x_adv = adapters.get("foolbox").run(small_net, x, y, spec).x_adv
    assert torch.equal(x_adv, expected)
    assert bool((x_adv != _reference(small_net, x, y, spec)).any())
    assert "sign of each gradient" in adapters.get("foolbox").declaration.offer("mifgsm").departure


def test_a_library_that_ignores_a_variant_is_refused_it() -> None:
    """An L2 or random-start spec is refused by an offer that does not declare it, never run as L∞ FGSM."""
    refusals = {
        name: adapters.get(name).declaration.refusal(AttackSpec("fgsm", 1 / 255, random_start=True))
        for name in adapters.runnable()
    }
    assert refusals["reference"] == "" and refusals["torchattacks"] == ""
    if "secml-torch" in refusals:
        assert refusals["secml-torch"] == "offers no FGSM with random_start"
    if "deeprobust" in adapters.runnable():
        assert adapters.get("deeprobust").declaration.refusal(AttackSpec("pgd", 0.5, norm="l2")) == (
            "offers PGD in linf only, not l2"
        )
    assert math.isclose(AttackSpec("pgd", 2.0, norm="l2").eps, 2.0)
