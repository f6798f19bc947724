"""The geometry of a gradient step in an attack's norm, and how one implementation rounds it.

A gradient attack's step has three parts whose floating-point arithmetic differs by library, though
the mathematics is the same:

* ``direction(g)``: the steepest-ascent unit step, per sample — ``sign(g)`` in L∞; ``g / ‖g‖₂`` in L2,
  where libraries divide or multiply by a reciprocal, add a constant or floor the norm, in torch or
  in NumPy;
* ``project(delta, eps)``: the perturbation brought back into the eps-ball — a clamp in L∞; in L2 a
  rescaling by ``min(1, eps / ‖delta‖₂)``, in float32 or float64;
* ``clip_first``: whether the step is clipped to the [0, 1] box before the projection (ART) or after
  (torchattacks, Foolbox, CleverHans). In L∞ the two orders give the same point; in L2 they do not.
* ``projects_one_step``: whether a single full step from x (FGSM) is projected too. A step of length
  eps lies in the ball in exact arithmetic, so the definition does not project it; a library that
  runs FGSM as a one-step PGD does, which can move a pixel by an ulp.
* ``reprojects_output``: whether the returned x_adv is projected once more, without the box
  (Foolbox's ``clip_perturbation`` on the attack's result), which can move a pixel by an ulp again.
* ``whole_step``: an implementation's own step where it does not decompose into the parts above
  (torchattacks' BIM clamps the point itself between ``x - eps`` and ``x + eps`` with masked selects
  instead of adding a clamped perturbation to x): :meth:`with_step`.

:data:`LINF` and :data:`L2` are the definitions' own (the reference's). An adapter's offer passes its
library's :class:`Geometry` (``Offer.arithmetic``) where its arithmetic differs only in round-off, so
its expected x_adv is computed in the library's own order and compared bit for bit — not within a
tolerance wide enough to hide a real bug.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .norms import Norm

Direction = Callable[[torch.Tensor], torch.Tensor]
Projection = Callable[[torch.Tensor, float], torch.Tensor]
# (x, x_t, grad, alpha, eps) -> x_t+1
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, float], torch.Tensor]


@dataclass(frozen=True)
class Geometry:
    """One implementation's step arithmetic in one norm (see the module docstring)."""

    norm: Norm
    direction: Direction
    project: Projection
    clip_first: bool = False
    projects_one_step: bool = False
    reprojects_output: bool = False
    whole_step: Step | None = None
    # What a report says of this arithmetic beside an agreement: the library's order, in a few words.
    note: str = ""

    def with_step(self, step: Step, note: str) -> Geometry:
        """This geometry with an implementation's own :meth:`step` (``whole_step``)."""
        return dataclasses.replace(self, whole_step=step, note=note)

    def step(
        self, x: torch.Tensor, x_t: torch.Tensor, grad: torch.Tensor, alpha: float, eps: float
    ) -> torch.Tensor:
        """One ascent step from ``x_t`` of length ``alpha``, back into the eps-ball around ``x`` and the box."""
        if self.whole_step is not None:
            return self.whole_step(x, x_t, grad, alpha, eps)
        x_next = x_t + alpha * self.direction(grad)
        if self.clip_first:
            x_next = x_next.clamp(0.0, 1.0)
            return x + self.project(x_next - x, eps)
        return (x + self.project(x_next - x, eps)).clamp(0.0, 1.0)

    def one_step(self, x: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
        """FGSM's single full step of length eps from ``x``, clipped to the box (and :meth:`output`)."""
        if self.projects_one_step:
            return self.output(x, self.step(x, x, grad, eps, eps), eps)
        return self.output(x, (x + eps * self.direction(grad)).clamp(0.0, 1.0), eps)

    def output(self, x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> torch.Tensor:
        """What the implementation returns for its last iterate ``x_adv``."""
        return x + self.project(x_adv - x, eps) if self.reprojects_output else x_adv


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` ``[N]`` shaped to broadcast against ``like`` ``[N, ...]``."""
    return values.view(-1, *([1] * (like.ndim - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm ``[N]`` in t's dtype (``torch.linalg.vector_norm``)."""
    return torch.linalg.vector_norm(t.flatten(1), ord=2, dim=1)


def sign(grad: torch.Tensor) -> torch.Tensor:
    return grad.sign()


def clamp_linf(delta: torch.Tensor, eps: float) -> torch.Tensor:
    return delta.clamp(-eps, eps)


def unit_l2(grad: torch.Tensor) -> torch.Tensor:
    """``g / ‖g‖₂`` per sample; a sample whose gradient is all zero takes no step."""
    norms = l2_norms(grad)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    return grad / per_sample(safe, grad)


def rescale_l2(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """``delta · min(1, eps / ‖delta‖₂)`` per sample: the nearest point of the L2 ball (0 stays 0)."""
    norms = l2_norms(delta)
    factor = torch.where(norms > eps, eps / torch.where(norms > 0, norms, torch.ones_like(norms)), 1.0)
    return delta * per_sample(factor.to(delta.dtype), delta)


LINF = Geometry("linf", direction=sign, project=clamp_linf)
L2 = Geometry("l2", direction=unit_l2, project=rescale_l2)
_DEFINITIONS = {"linf": LINF, "l2": L2}


def of(norm: Norm) -> Geometry:
    """The definitions' own geometry in ``norm``."""
    if norm not in _DEFINITIONS:
        raise ValueError(f"expected a norm in {sorted(_DEFINITIONS)}, got {norm!r}")
    return _DEFINITIONS[norm]
