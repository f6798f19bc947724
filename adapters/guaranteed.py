"""Models on which an adversarial example within eps provably exists: an attack that misses one is weak.

After the binarization test of Zimmermann, Brendel, Tramèr and Carlini, "Increasing Confidence in
Adversarial Robustness Evaluations" (NeurIPS 2022): keep the network's features f (the model with its
last ``nn.Linear`` replaced by the identity) and replace that readout by a binary one,
s(z) = w·f(z) + c, logits (−s/2, s/2), class 0 "as clean", class 1 "adversarial". Per sample x_i:

* a boundary point b_i within the budget: L∞ clip(x_i + eps·sign(u_i), 0, 1), L2
  clip(x_i + eps·u_i/‖u_i‖₂, 0, 1), u_i Gaussian from a seeded generator;
* ``inner`` points x_i + δ uniform in the ball of radius ``inner_fraction``·eps (clipped to [0, 1]).

One readout serves the whole batch (so a library attacks it in one call): (w, c) is the minimum-norm
solution, in float64, of w·f(p) + c = −1 at every x_i and inner point and +1 at every b_i — with more
features than points it interpolates them exactly. The **certificate** of sample i is b_i itself,
verified with the binarized model's own float32 forward pass: class 1 at b_i, class 0 at x_i and every
inner point, b_i within eps of x_i and in [0, 1]. So an adversarial example within eps exists for every
certified sample, and an attack given (x_i, label 0) that does not find one (class 1, within eps and
[0, 1]) is weak there. A sample whose certificate fails (its points not separable in float32) is left
out of the score and counted.

What it cannot say: the readout is not the original model's, so a library that passes may still be weak
on the original; the inner points make the region around x_i clean, not the whole ball.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .attacks.norms import Norm, check_norm, distance, eps_tolerance

INNER = 8  # inner points per sample
INNER_FRACTION = 0.5  # their ball's radius, as a fraction of eps


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The model's last ``nn.Linear`` (in ``named_modules()`` order): the readout the test replaces."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear readout to replace: the guaranteed-adversarial test "
            "needs a model whose last layer is a linear classifier"
        )
    return found[-1]


class _Readout(nn.Module):
    """s = w·f + c, returned as the two logits (−s/2, s/2)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.float().clone())
        self.bias = nn.Parameter(bias.float().reshape(()).clone())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        s = features.flatten(1) @ self.weight + self.bias
        return torch.stack([-s / 2, s / 2], dim=1)


class BinarizedModel(nn.Module):
    """A copy of a model whose last linear layer is the identity, followed by the binary readout."""

    def __init__(self, model: nn.Module, readout: _Readout | None = None) -> None:
        super().__init__()
        features = copy.deepcopy(model).eval()
        name, _ = last_linear(features)
        parent_name, _, child = name.rpartition(".")
        parent = features.get_submodule(parent_name) if parent_name else features
        if not name:
            raise ValueError("the model is a single nn.Linear: there are no features before its readout")
        setattr(parent, child, nn.Identity())
        self.features = features
        self.readout = readout if readout is not None else _Readout(torch.zeros(1), torch.zeros(()))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x))


@dataclass(frozen=True)
class Binarized:
    model: BinarizedModel  # in eval mode
    labels: torch.Tensor  # int64 [N] zeros: what an attack is given as y
    certificate: torch.Tensor  # [N, C, H, W]: the boundary points
    certified: torch.Tensor  # bool [N]: the certificate verified (see the module docstring)
    eps: float
    norm: Norm


def _ball(x: torch.Tensor, radius: float, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    """A point uniform in the ``norm`` ball of ``radius`` around each sample, clipped to [0, 1]."""
    if norm == "linf":
        delta = (2 * torch.rand(x.shape, generator=generator, dtype=torch.float64) - 1) * radius
    else:
        u = torch.randn(x.shape, generator=generator, dtype=torch.float64).flatten(1)
        d = u.shape[1]
        r = torch.rand(len(x), 1, generator=generator, dtype=torch.float64) ** (1 / d)
        delta = (u / u.norm(dim=1, keepdim=True) * r * radius).reshape(x.shape)
    return (x.double() + delta).clamp(0, 1).float()


def _boundary(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    u = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    if norm == "linf":
        delta = eps * u.sign()
    else:
        flat = u.flatten(1)
        delta = (eps * flat / flat.norm(dim=1, keepdim=True)).reshape(x.shape)
    point = (x.double() + delta).clamp(0, 1).float()
    # float32 rounding of x + delta may land a hair outside the ball: pull it back inside.
    if norm == "linf":
        point = torch.minimum(torch.maximum(point, x - eps), x + eps).clamp(0, 1)
    return point


@torch.no_grad()
def binarize(
    model: nn.Module,
    x: torch.Tensor,
    eps: float,
    norm: str = "linf",
    *,
    seed: int = 0,
    inner: int = INNER,
    inner_fraction: float = INNER_FRACTION,
) -> Binarized:
    """The binarized model for the batch ``x`` at budget ``eps`` in ``norm``, with its certificates."""
    checked_norm = check_norm(norm)
    if not eps > 0:
        raise ValueError(f"expected eps > 0, got {eps}")
    if inner < 0 or not 0 <= inner_fraction < 1:
        raise ValueError(f"expected inner >= 0 and 0 <= inner_fraction < 1, got {inner}, {inner_fraction}")
    generator = torch.Generator().manual_seed(seed)
    binarized = BinarizedModel(model).to(x.device)
    boundary = _boundary(x.cpu(), eps, checked_norm, generator).to(x.device)
    inners = [
        _ball(x.cpu(), inner_fraction * eps, checked_norm, generator).to(x.device) for _ in range(inner)
    ]
    clean_side = torch.cat([x, *inners]) if inners else x
    features = binarized.features
    f_clean = features(clean_side).flatten(1).double()
    f_boundary = features(boundary).flatten(1).double()
    design = torch.cat(
        [torch.cat([f_clean, f_boundary]), torch.ones(len(f_clean) + len(f_boundary), 1).double()], 1
    )
    target = torch.cat([-torch.ones(len(f_clean)), torch.ones(len(f_boundary))]).double().to(design.device)
    solution = torch.linalg.pinv(design) @ target  # the minimum-norm (least-squares) solution
    binarized.readout = _Readout(solution[:-1], solution[-1]).to(x.device)
    binarized.eval()
    n = len(x)
    clean_pred = binarized(clean_side).argmax(dim=1).reshape(1 + inner, n)
    certified = (
        (binarized(boundary).argmax(dim=1) == 1)
        & (clean_pred == 0).all(dim=0)
        & (distance(checked_norm, boundary, x) <= eps + eps_tolerance(checked_norm, eps)).to(x.device)
        & ((boundary >= 0) & (boundary <= 1)).flatten(1).all(dim=1)
    )
    return Binarized(
        model=binarized,
        labels=torch.zeros(n, dtype=torch.int64, device=x.device),
        certificate=boundary,
        certified=certified,
        eps=eps,
        norm=checked_norm,
    )


@torch.no_grad()
def found(binarized: Binarized, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """bool [N]: x_adv is within the budget and [0, 1], and the binarized model calls it adversarial."""
    norm, eps = binarized.norm, binarized.eps
    within = distance(norm, x_adv, x).to(x.device) <= eps + eps_tolerance(norm, eps)
    inside = ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(dim=1) & torch.isfinite(x_adv).flatten(1).all(dim=1)
    return within & inside & (binarized.model(x_adv).argmax(dim=1) == 1)
