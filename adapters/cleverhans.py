"""CleverHans 4.0.0 (``cleverhans.torch.attacks``): ``fast_gradient_method`` (FGSM, L2 FGM) and
``projected_gradient_descent`` (PGD, L∞ and L2; BIM as PGD with ``rand_init=False``), untargeted or
targeted.

Both are plain functions; every argument is passed, none left to CleverHans's defaults (FGM:
``clip_min = clip_max = None``, i.e. *no clipping at all*, ``y=None``, ``sanity_checks=False``; PGD:
``rand_init=True``, ``rand_minmax=eps``, ``sanity_checks=True``). True labels are always passed: with
``y=None`` both attack the model's *predicted* labels ("to avoid the label leaking effect"),
``_, y = torch.max(model_fn(x), 1)`` — a different attack, and one more forward pass. Untargeted:
``targeted=False``; targeted: ``targeted=True`` with ``y`` the targets, and CleverHans negates the
loss (``if targeted: loss = -loss``, fast_gradient_method.py), as the definition does. CleverHans never calls
``model.eval()`` and its ``loss.backward()`` accumulates ``.grad`` on the parameters; the shared guard
covers both.

FGM (``cleverhans/torch/attacks/fast_gradient_method.py``)::

    x = x.clone().detach().to(torch.float).requires_grad_(True)
    loss_fn = torch.nn.CrossEntropyLoss()
    loss = loss_fn(model_fn(x), y)
    loss.backward()
    optimal_perturbation = optimize_linear(x.grad, eps, norm)
    adv_x = x + optimal_perturbation
    adv_x = torch.clamp(adv_x, clip_min, clip_max)

and ``optimize_linear`` (``cleverhans/torch/utils.py``) is ``torch.sign(grad)`` in L∞ and in L2::

    avoid_zero_div = torch.tensor(1e-12, dtype=grad.dtype, device=grad.device)
    square = torch.max(avoid_zero_div, torch.sum(grad ** 2, red_ind, keepdim=True))
    optimal_perturbation = grad / torch.sqrt(square)
    scaled_perturbation = eps * optimal_perturbation

so the L2 floor is on the *squared* norm: a sample whose gradient has ‖g‖₂ < 1e-6 is divided by 1e-6
and steps eps·‖g‖₂/1e-6 instead of eps. The loss is a mean, so each sample's gradient shrinks with the
batch size: measured on the adapter tests' small net, the smallest per-sample norm is 2.5e-6 at N=256,
and with its logits doubled (a more confident model) 2 of 16 samples step 0.37 and 0.018 instead of
0.5. That is another step, not round-off: the declared arithmetic (:func:`_l2_direction`) follows CleverHans's
rounding only where the floor does not bind, so such samples disagree. The one step is not projected.
Loss: ``CrossEntropyLoss()`` (mean), hard-coded. Passes: 1 forward + 1 backward.

PGD (``cleverhans/torch/attacks/projected_gradient_descent.py``)::

    assert eps_iter <= eps, (eps_iter, eps)
    eta = torch.zeros_like(x).uniform_(-rand_minmax, rand_minmax)    # rand_init, else zeros_like(x)
    eta = clip_eta(eta, norm, eps)
    adv_x = x + eta
    adv_x = torch.clamp(adv_x, clip_min, clip_max)
    while i < nb_iter:
        adv_x = fast_gradient_method(model_fn, adv_x, eps_iter, norm, clip_min=clip_min,
                                     clip_max=clip_max, y=y, targeted=targeted)
        eta = adv_x - x
        eta = clip_eta(eta, norm, eps)
        adv_x = x + eta
        adv_x = torch.clamp(adv_x, clip_min, clip_max)

Each step is FGM from the iterate, which clips to [0, 1] *before* ``clip_eta`` projects onto the ball
(ART's order: ``clip_first``); the clamp after it never moves a pixel (x + a projected step lies between
x and the clipped iterate, and the float32 rounding of both operations is monotone), so the declared
geometry (:data:`_L2`) leaves it out. ``clip_eta`` in L2 (``utils.py``)::

    norm = torch.sqrt(torch.max(avoid_zero_div, torch.sum(eta ** 2, dim=reduc_ind, keepdim=True)))
    factor = torch.min(torch.tensor(1.0, dtype=eta.dtype, device=eta.device), eps / norm)
    eta *= factor

The hard ``assert eps_iter <= eps`` is not a refusal: a spec with alpha > eps is refused before
CleverHans runs (:func:`_refuses`), and never becomes an AssertionError. ``sanity_checks=False`` for
both attacks: its asserts only re-check the input range (the guard has validated x in [0, 1]), ``eps_iter
<= eps`` (refused already) and, in L∞, ``eps + clip_min <= clip_max`` (L∞ eps is in (0, 1]); they never
change x_adv, cost no model pass, and vanish under ``python -O``. Passes: PGD-T ``T`` forwards + ``T``
backwards (with true labels it predicts nothing).

Random start: the draw is ``torch.zeros_like(x).uniform_(-rand_minmax, rand_minmax)`` on torch's global
RNG (on x's device), with ``rand_minmax=eps`` passed, in *both* norms: in L2 that cube of half-width eps is
then projected by ``clip_eta`` onto the L2 ball, and since its norm is ≈ eps·√(d/3) it lands, for any
image of more than 3 pixels, on the ball's surface — not uniform in the ball, but judged from that start
all the same. We seed it with ``spec.seed`` inside ``seeded_global_rngs`` so the caller's RNG state is
restored; :func:`_start` makes the same draw, which is how the harness knows the exact x_adv CleverHans
must return.

Arithmetic (:data:`_L2`): in L∞ CleverHans rounds exactly as the definition does (clipping before the
L∞ clamp gives the same floats: measured bit for bit, PGD-10 at 16/255 included); in L2 its gradient
norm ``sqrt(max(1e-12, sum(g ** 2)))``, its ``clip_eta`` and its clip before the projection each give
other floats than the definition's geometry (``tests/adapters/test_adapters_cleverhans.py`` measures
all three), so the expectation is computed in CleverHans's order and compared bit for bit.

Import: ``import cleverhans`` hashes every ``.py`` file of the package (``devtools/version.py``) and
imports nothing else; the torch attacks import only NumPy and torch. CleverHans's declared dependencies
(TensorFlow Probability, ``mnist``, ``nose``, ...) are for its TF and JAX code, hence ``pip install
--no-deps cleverhans``. The functions are looked up on their modules at call time, so a patched module
attribute (the mutation suite's) is what runs.
"""

from __future__ import annotations

import cleverhans.torch.attacks.fast_gradient_method as _fgm_module
import cleverhans.torch.attacks.projected_gradient_descent as _pgd_module
import numpy as np
import torch
from torch import nn

from .attacks import geometry
from .attacks.geometry import Geometry
from .base import GuardedAdapter
from .declaration import Declaration, Offer
from .rng import seeded_global_rngs
from .spec import AttackSpec

# CleverHans's ``norm`` argument mimics NumPy's ord.
_NORMS = {"linf": np.inf, "l2": 2}
# ``avoid_zero_div`` in optimize_linear and clip_eta: a floor under the *squared* L2 norm.
_AVOID_ZERO_DIV = 1e-12


def _squared_sums(t: torch.Tensor) -> torch.Tensor:
    """``sum(t ** 2)`` per sample, keepdim, as CleverHans reduces it."""
    return torch.sum(t**2, list(range(1, t.ndim)), keepdim=True)


def _floor(t: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_AVOID_ZERO_DIV, dtype=t.dtype, device=t.device)


def _floored_norms(squares: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(1e-12, squares))``: CleverHans's norm, floored under its square."""
    return torch.sqrt(torch.max(_floor(squares), squares))


def _l2_direction(grad: torch.Tensor) -> torch.Tensor:
    """CleverHans's ``grad / sqrt(max(1e-12, sum(grad ** 2)))`` where its floor does not bind, so the
    expectation rounds as it does. Where it binds (‖g‖₂ < 1e-6) CleverHans steps eps·‖g‖₂/1e-6 instead
    of eps — another step, not round-off — so there the expectation keeps the definition's unit step
    (0 for a zero gradient, as CleverHans) and the cell shows the difference."""
    squares = _squared_sums(grad)
    unfloored = squares >= _floor(squares)
    return torch.where(unfloored, grad / _floored_norms(squares), geometry.unit_l2(grad))


def _l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """``clip_eta``: its floor binds only where ‖delta‖₂ < 1e-6, which moves the point only for an L2
    eps below 1e-6."""
    one = torch.tensor(1.0, dtype=delta.dtype, device=delta.device)
    return delta * torch.min(one, eps / _floored_norms(_squared_sums(delta)))


_L2 = Geometry(
    "l2",
    direction=_l2_direction,
    project=_l2_project,
    clip_first=True,
    note="CleverHans clips each step to [0, 1] before projecting it onto the L2 ball (the definition "
    "projects first) and divides by sqrt(max(1e-12, sum(g**2))); a gradient under that floor is held to "
    "a full step",
)


def _fgm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    x_adv: torch.Tensor = _fgm_module.fast_gradient_method(
        model,
        x,
        eps=spec.eps,
        norm=_NORMS[spec.norm],
        clip_min=0.0,
        clip_max=1.0,
        y=y,  # true labels: y=None attacks the model's predictions
        targeted=spec.targeted is not None,  # then y holds the targets: loss = -loss
        sanity_checks=False,
    )
    return x_adv


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    return _projected_gradient_descent(model, x, y, spec, _NORMS[spec.norm], spec.random_start)


def _bim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # BIM is CleverHans's PGD from x itself: rand_init=False starts at eta = zeros_like(x).
    return _projected_gradient_descent(model, x, y, spec, np.inf, random_start=False)


def _projected_gradient_descent(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, norm: float, random_start: bool
) -> torch.Tensor:
    x_adv: torch.Tensor = _pgd_module.projected_gradient_descent(
        model,
        x,
        eps=spec.eps,
        eps_iter=spec.step_size,
        nb_iter=spec.steps,
        norm=norm,
        clip_min=0.0,
        clip_max=1.0,
        y=y,
        targeted=spec.targeted is not None,  # then y holds the targets: loss = -loss
        rand_init=random_start,
        rand_minmax=spec.eps,
        sanity_checks=False,
    )
    return x_adv


# CleverHans's call per attack (the offers' and the bench's).
_CALLS = {"fgsm": _fgm, "pgd": _pgd, "bim": _bim}


def generate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    """CleverHans's FGM or PGD for ``spec`` with every argument set, unseeded and unguarded (the
    adapter adds both; ``harness bench`` can time this call bare)."""
    call = _CALLS.get(spec.attack)
    if call is None:
        raise ValueError(f"cleverhans offers no {spec.attack!r}; expected one of {list(_CALLS)}")
    # CleverHans returns x + perturbation, still attached to the graph of its last gradient.
    return call(model, x, y, spec).detach()


def _attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        return generate(model, x, y, spec)


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        eta = torch.zeros_like(x).uniform_(-spec.eps, spec.eps)
    eta = eta.clamp(-spec.eps, spec.eps) if spec.norm == "linf" else _l2_project(eta, spec.eps)
    return torch.clamp(x + eta, 0.0, 1.0)


def _refuses(spec: AttackSpec) -> str:
    # CleverHans's `assert eps_iter <= eps` would raise an AssertionError inside the library.
    if spec.step_size > spec.eps:
        return (
            f"offers no {spec.attack.upper()} with a step larger than eps "
            f"(alpha={spec.step_size:g} > eps={spec.eps:g})"
        )
    return ""


def _arithmetic(spec: AttackSpec) -> Geometry | None:
    return _L2 if spec.norm == "l2" else None


ADAPTER = GuardedAdapter(
    name="cleverhans",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(
                call=_attack,
                loss_reduction="mean",
                norms=("linf", "l2"),
                variants=("targeted",),
                arithmetic=_arithmetic,
            ),
            "pgd": Offer(
                call=_attack,
                loss_reduction="mean",
                norms=("linf", "l2"),
                variants=("targeted",),
                start=_start,
                refuses=_refuses,
                arithmetic=_arithmetic,
            ),
            "bim": Offer(call=_attack, loss_reduction="mean", variants=("targeted",), refuses=_refuses),
        }
    ),
)
