"""The arbiter against mathematics: affine models whose worst case within eps is known exactly
(``adapters/optima.py``), the solver held to scipy's, and the reference's attacks — and every library's —
held to the optimum where theory says they must reach it, and never beyond it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advparity.adapters import AttackSpec, get, runnable
from advparity.adapters.optima import affine_model, margins, optimum
from advparity.harness import optima as optima_specs
from scipy.optimize import linprog, minimize

SHAPE = (1, 8, 8)
ULP = 2.0**-23


def _batch(n: int, seed: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, *SHAPE, generator=generator)


def _labels(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)  # every sample classified correctly: each is attacked


@pytest.mark.parametrize("classes", [2, 4])
def test_the_linf_optimum_is_scipys_linear_program(classes: int) -> None:
    model = affine_model(classes, SHAPE, seed=1)
    x = _batch(6, seed=2)
    y = _labels(model, x)
    eps = 8 / 255
    solved = optimum(model, x, y, eps, "linf")
    weight, bias = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    for i in range(len(x)):
        xi = x[i].flatten().double().numpy()
        bounds = list(zip(np.maximum(-eps, -xi), np.minimum(eps, 1 - xi), strict=True))
        best = min(
            linprog(weight[y[i]] - weight[j], bounds=bounds, method="highs").fun
            + (weight[y[i]] - weight[j]) @ xi
            + bias[y[i]]
            - bias[j]
            for j in range(classes)
            if j != y[i]
        )
        assert float(solved.margin[i]) == pytest.approx(best, abs=1e-9)


def test_the_l2_optimum_is_scipys_constrained_minimum() -> None:
    """With the box active on some pixels (x near 0 and 1) and not on others."""
    model = affine_model(3, SHAPE, seed=3)
    x = _batch(4, seed=4)
    y = _labels(model, x)
    eps = 1.0
    solved = optimum(model, x, y, eps, "l2")
    weight, bias = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    for i in range(len(x)):
        xi = x[i].flatten().double().numpy()
        best = np.inf
        for j in (j for j in range(3) if j != y[i]):
            w = weight[y[i]] - weight[j]
            result = minimize(
                lambda d, w=w: w @ d,
                np.zeros_like(xi),
                jac=lambda d, w=w: w,
                bounds=list(zip(-xi, 1 - xi, strict=True)),
                constraints=[{"type": "ineq", "fun": lambda d: eps**2 - d @ d, "jac": lambda d: -2 * d}],
                method="SLSQP",
                options={"ftol": 1e-12, "maxiter": 500},
            )
            best = min(best, result.fun + w @ xi + bias[y[i]] - bias[j])
        assert float(solved.margin[i]) == pytest.approx(best, abs=1e-6)
        delta = solved.x_adv[i].flatten() - x[i].flatten().double()
        assert float(delta.norm()) <= eps * (1 + 1e-12)
        assert bool(
            ((x[i].flatten().double() + delta) >= -1e-12).all()
            & ((x[i].flatten().double() + delta) <= 1 + 1e-12).all()
        )
    # The box binds: the unconstrained optimum −eps·w/‖w‖ would leave [0, 1] somewhere.
    assert bool(((solved.x_adv == 0) | (solved.x_adv == 1)).any())


def _reference(spec: AttackSpec, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return get("reference").generate(model, x, y, spec)


@pytest.mark.parametrize(
    "spec",
    [
        AttackSpec("fgsm", 8 / 255),
        AttackSpec("pgd", 8 / 255, steps=10, random_start=False),
        AttackSpec("pgd", 8 / 255, steps=10, random_start=True, seed=3),
        AttackSpec("apgd", 8 / 255, steps=10, loss="ce"),
    ],
    ids=["FGSM", "PGD-10", "PGD-10-RS", "APGD-CE-10"],
)
def test_on_a_binary_affine_model_the_references_linf_attacks_reach_the_optimum(spec: AttackSpec) -> None:
    """Two classes: the cross-entropy gradient's sign is the optimum's on every pixel, so FGSM's step
    clipped to [0, 1] is the optimal corner, and PGD's (and APGD's) steps of eps/4 (2·eps) reach it —
    up to the float32 rounding of x ± eps."""
    model = affine_model(2, SHAPE, seed=5)
    x = _batch(16, seed=6)
    y = _labels(model, x)
    x_adv = _reference(spec, model, x, y)
    best = optimum(model, x, y, spec.eps, "linf")
    fooled = margins(model, x_adv, y) < 0
    # APGD returns x for a sample it does not fool: it must fool exactly those the optimum fools, and
    # reach the optimum on them.
    reached = fooled if spec.attack == "apgd" else torch.ones_like(fooled)
    assert torch.equal(fooled, best.margin < 0)
    assert float((x_adv.double() - best.x_adv).abs()[reached].max()) <= ULP
    assert torch.allclose(margins(model, x_adv, y)[reached], best.margin[reached], atol=1e-6, rtol=0)
    assert 0 < int(fooled.sum()) < len(y)  # eps that fools some samples and not others


def test_on_an_interior_binary_model_fgm_l2_is_the_optimum() -> None:
    """Away from the box (x in [0.3, 0.7], eps 0.5 over 64 pixels), the L2 optimum is −eps·w/‖w‖ and
    FGM-L2's normalised gradient step is it."""
    model = affine_model(2, SHAPE, seed=7)
    x = _batch(16, seed=8, low=0.3, high=0.7)
    y = _labels(model, x)
    spec = AttackSpec("fgsm", 0.5, norm="l2")
    x_adv = _reference(spec, model, x, y)
    best = optimum(model, x, y, spec.eps, "l2")
    assert bool(((best.x_adv > 0) & (best.x_adv < 1)).all())  # the box does not bind
    assert torch.allclose(margins(model, x_adv, y), best.margin, atol=1e-6, rtol=0)


# The specs `python -m advparity optima` measures (harness/optima.py), one list for both.
LIBRARY_SPECS = list(optima_specs.SPECS)


@pytest.mark.parametrize("library", runnable())
@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("spec", LIBRARY_SPECS, ids=lambda s: s.label)
def test_no_library_beats_the_optimum_and_the_exact_ones_reach_it(
    library: str, classes: int, spec: AttackSpec
) -> None:
    """The optimum is a floor: a margin below it means an output outside the budget, which the guard
    refuses first, or a wrong optimum. On the binary model in L∞ every library that computes FGSM or
    PGD as its declaration says (no departure) reaches it; the others' gap is measured, not assumed."""
    declaration = get(library).declaration
    if spec.attack == "apgd" and classes < 3 and spec.loss == "dlr":
        pytest.skip("DLR needs 3 classes")
    if not declaration.accepts(spec):
        pytest.skip(f"{library} {declaration.refusal(spec)}")
    model = affine_model(classes, SHAPE, seed=9)
    x = _batch(16, seed=10, low=0.1, high=0.9)
    y = _labels(model, x)
    x_adv = get(library).generate(model, x, y, spec)
    reached = margins(model, x_adv, y)
    best = optimum(model, x, y, spec.eps, spec.norm).margin
    slack = 1e-5 * (1 + best.abs())
    assert bool((reached >= best - slack).all()), (reached - best).min()
    if (
        classes == 2
        and spec.norm == "linf"
        and spec.attack in ("fgsm", "pgd")
        and not declaration.departure(spec)
    ):
        assert torch.allclose(reached, best, atol=1e-5, rtol=0), (reached - best).abs().max()
