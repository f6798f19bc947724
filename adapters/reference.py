"""Plain-PyTorch FGSM and PGD: the arbiter every library is compared against.

Written to be checked line by line against the equations (L∞, pixels in [0, 1]):

    FGSM:  x_adv = clip_[0,1]( x + eps · sign(∇x L(x, y)) )
    PGD:   x_0   = clip_[0,1]( x + U(-eps, eps) )            (random start; x_0 = x without)
           x_t+1 = clip_[0,1]( x + clip_[-eps,eps]( x_t + alpha · sign(∇x L(x_t, y)) - x ) )

L is cross-entropy **summed** over the batch. sign(∇) ignores a positive scale, so sum and mean give
the same attack in exact arithmetic. We sum because then a sample's gradient does not depend on the
batch it came in, and because the 1/N of a mean can underflow small float32 components to an exact 0
(``sign(0) = 0``: that pixel never moves). torchattacks and ART (as users set it up) take the mean,
Foolbox the sum: with N a power of two the 1/N scale is exact and all agree bit for bit; otherwise the
scale changes round-off, and a component whose gradient is within round-off of 0 can flip sign.

The random start draws from a local ``torch.Generator`` seeded with ``spec.seed``; the caller's global
RNG state is never touched.

The same code computes every library's *expected* x_adv (``adapters/expected.py``): :func:`pgd_from`
takes the start point and the loss reduction as arguments, and also returns each pixel's *gradient
floor* — the smallest |gradient| it had over the attack's steps, relative to that sample's largest —
so that a pixel on which a library steps the other way can be told apart: where the floor is within
round-off of zero, the sign itself is round-off.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import AttackResult, GuardedAdapter, attack_session, check_output
from .declaration import Declaration, LossReduction, offered, pass_counts
from .spec import AttackSpec, as_eps_list

NAME = "reference"


def loss_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: LossReduction = "sum"
) -> torch.Tensor:
    """∇x of the cross-entropy (summed over the batch, or its mean), one forward and one backward."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction=reduction)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def relative_magnitude(grad: torch.Tensor) -> torch.Tensor:
    """|grad| per component over the largest |grad| of its sample (0 where a sample's gradient is all 0)."""
    magnitude = grad.abs()
    largest = magnitude.flatten(1).amax(dim=1).view(-1, *([1] * (grad.ndim - 1)))
    return torch.where(largest > 0, magnitude / largest, torch.zeros_like(magnitude))


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    grad = loss_gradient(model, x, y)
    return (x + eps * grad.sign()).clamp(0.0, 1.0)


def uniform_start(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """The reference's own start: x + U(-eps, eps) from a local generator, clipped to [0, 1]."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    return (x + noise).clamp(0.0, 1.0)


def pgd_from(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    reduction: LossReduction = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD from ``start`` (x itself for no random start); returns x_adv and each pixel's gradient floor.

    The floor is the smallest :func:`relative_magnitude` a pixel's gradient had over the steps.
    """
    x_adv = start.detach().clone()
    floor = torch.ones_like(x)
    for _ in range(steps):
        grad = loss_gradient(model, x_adv, y, reduction)
        floor = torch.minimum(floor, relative_magnitude(grad))
        x_adv = x_adv + alpha * grad.sign()  # ascent step
        x_adv = x + (x_adv - x).clamp(-eps, eps)  # projection onto the eps-ball around x
        x_adv = x_adv.clamp(0.0, 1.0)  # and onto the image box
    return x_adv.detach(), floor


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool,
    seed: int,
) -> torch.Tensor:
    start = uniform_start(x, eps, seed) if random_start else x
    return pgd_from(model, x, y, start, eps, alpha, steps)[0]


def _fgsm_call(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    return fgsm(model, x, y, spec.eps)


def _pgd_call(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    return pgd(model, x, y, spec.eps, spec.step_size, spec.steps, spec.random_start, spec.seed)


# One call per attack the reference implements; the Declaration's attacks are these keys.
_ATTACKS = {"fgsm": _fgsm_call, "pgd": _pgd_call}


def _attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    x_adv: torch.Tensor = offered(_ATTACKS, spec, NAME)(model, x, y, spec)
    return x_adv


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    return uniform_start(x, spec.eps, spec.seed)


ADAPTER = GuardedAdapter(
    name=NAME,
    attack_fn=_attack,
    declaration=Declaration(
        loss_reduction="sum", passes=pass_counts(), start=_start, attacks=tuple(_ATTACKS)
    ),
)


def fgsm_grid(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float]
) -> list[AttackResult]:
    """FGSM at every eps of the grid from ONE gradient, under the same guards as :data:`ADAPTER`.

    Element i equals ``ADAPTER.generate(model, x, y, AttackSpec("fgsm", eps_list[i]))`` bit for bit.
    All results share one :class:`AttackStats`: the whole grid cost one forward and one backward.
    """
    grid = as_eps_list(eps_list)
    with attack_session(model, x, y, NAME) as session:
        start = time.perf_counter()
        sign = loss_gradient(session.counter, x, y).sign()
        outputs = [(x + eps * sign).clamp(0.0, 1.0).detach() for eps in grid]
        seconds = time.perf_counter() - start
    for eps, x_adv in zip(grid, outputs, strict=True):
        check_output(NAME, x, x_adv, eps)
    stats = session.counter.stats(NAME, seconds, session.state_changes)
    return [AttackResult(x_adv, stats) for x_adv in outputs]
