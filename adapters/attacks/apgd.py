"""APGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks"): PGD with momentum and a step size that halves at checkpoints.

Written here from the algorithm, in the arithmetic order of the original code (``autopgd_base.py``
of ``pyautoattack`` 0.2.0, ``APGDAttack.attack_single_run``), so that from the same start it returns
the same points bit for bit; ``tests/adapters/test_attacks_apgd.py`` holds it to the original.

One run from a start x⁽⁰⁾ (clipped to [0, 1]) with T = ``steps`` iterations, step size η = 2·eps:

* iteration k computes z = P(x⁽ᵏ⁾ + η·s(∇)) — s the sign (L∞) or ∇/(‖∇‖₂ + 1e-12) (L2), P the
  projection onto the eps-ball and [0, 1] — and then the momentum step
  x⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + a·(z − x⁽ᵏ⁾) + (1 − a)·(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾)), a = 1 at k = 0 and 0.75 after;
* the loss is the cross-entropy (``"ce"``) or the difference-of-logits ratio (``"dlr"``:
  −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12), π the logits sorted in decreasing order) per
  sample, summed over the batch; each sample keeps its highest-loss point and its gradient;
* checkpoints: the first after ⌊0.22·T⌋ iterations, each later one ⌊0.03·T⌋ sooner than the last
  but at least ⌊0.06·T⌋ after it (each at least 1). At a checkpoint a sample's step size halves, and
  it restarts from its highest-loss point, where its loss rose in at most ρ of the interval's
  iterations, or where the step was not halved at the last checkpoint and the best loss has not
  improved since;
* what the attack returns for a sample is the last iterate the model misclassifies (x⁽⁰⁾ counts),
  and x itself where none is misclassified or where the model already misclassifies x (the original
  attacks only the samples it classifies correctly).

Restarts (``restarts`` = k): each restart attacks the samples no earlier restart fooled, from a new
random start; a sample keeps the first restart that fools it.

APGD-T (``targets`` = m; the original's ``APGDAttack_targeted``): m rounds of ``restarts`` runs, round
r ∈ {2, …, m + 1} targeting, for each sample still to fool, the class with its r-th largest logit at
x (read by one forward at the start of each run), with the targeted DLR loss
−(z_y − z_t) / (z_π1 − ½·(z_π3 + z_π4) + 1e-12). Success is still any misclassification.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .definition import Attack, LossReduction
from .gradients import relative_magnitude
from .norms import Norm, check_norm
from .step_rule import check_steps

LOSSES: tuple[str, ...] = ("ce", "dlr")
# How the original code, and the libraries that port it, spell a norm (``APGDAttack(norm=...)``).
ORIGINAL_NORMS: dict[str, str] = {"linf": "Linf", "l2": "L2"}


@dataclass(frozen=True)
class APGDParams:
    """``loss``: ``"ce"`` or ``"dlr"`` (needs at least 3 classes); ``steps``: iterations (the
    original's ``n_iter``); ``restarts``: random starts (``n_restarts``); ``rho``: the share of an
    interval's iterations in which the loss must rise to keep the step size (``rho``); ``targets``:
    APGD-T's number of target classes, the top non-true ones (``n_target_classes``), None for APGD."""

    loss: str = "ce"
    norm: Norm = "linf"
    steps: int = 100
    restarts: int = 1
    rho: float = 0.75
    targets: int | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"expected loss to be one of {list(LOSSES)}, got {self.loss!r}")
        check_norm(self.norm)
        object.__setattr__(self, "steps", check_steps(self.steps))
        if (
            isinstance(self.restarts, bool)
            or not isinstance(self.restarts, numbers.Integral)
            or self.restarts < 1
        ):
            raise ValueError(f"expected restarts to be an integer >= 1, got {self.restarts!r}")
        object.__setattr__(self, "restarts", int(self.restarts))
        if (
            isinstance(self.rho, bool)
            or not isinstance(self.rho, numbers.Real)
            or not 0 < float(self.rho) < 1
        ):
            raise ValueError(f"expected rho to be a real number in (0, 1), got {self.rho!r}")
        object.__setattr__(self, "rho", float(self.rho))
        if self.targets is not None:
            if (
                isinstance(self.targets, bool)
                or not isinstance(self.targets, numbers.Integral)
                or self.targets < 1
            ):
                raise ValueError(f"expected targets to be an integer >= 1 or absent, got {self.targets!r}")
            object.__setattr__(self, "targets", int(self.targets))
            if self.loss != "dlr":
                # The original's APGD-T asserts its one loss, the targeted DLR (``perturb``).
                raise ValueError(
                    f'targets (APGD-T) runs the targeted DLR loss: expected loss = "dlr", got {self.loss!r}'
                )

    def runs(self) -> list[int | None]:
        """The target rank of each run, in the original's order (each target class, each restart):
        None for untargeted APGD's restarts."""
        ranks: list[int | None] = [None] if self.targets is None else list(range(2, self.targets + 2))
        return [rank for rank in ranks for _ in range(self.restarts)]


@dataclass(frozen=True)
class Checkpoints:
    """The original's checkpoint schedule for ``steps`` iterations (``APGDAttack.__init__``)."""

    first: int  # n_iter_2: iterations before the first checkpoint
    shortest: int  # n_iter_min: the shortest interval
    decrease: int  # size_decr: how much shorter each interval is than the last

    @classmethod
    def of(cls, steps: int) -> Checkpoints:
        return cls(max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1))


@dataclass(frozen=True)
class SingleRun:
    """What one run returns per sample (the original's ``x_best, acc, loss_best, x_best_adv``)."""

    x_best: torch.Tensor  # the highest-loss point
    robust: torch.Tensor  # bool [N]: classified correctly at every iterate (``acc``)
    loss_best: torch.Tensor
    x_best_adv: torch.Tensor  # the last misclassified iterate (x⁽⁰⁾ where none)
    floor: torch.Tensor  # per pixel: the smallest relative |gradient| over the run


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per sample, the difference-of-logits ratio (the original's ``dlr_loss``, term for term)."""
    ordered, order = logits.sort(dim=1)
    true_is_top = (order[:, -1] == y).float()
    u = torch.arange(logits.shape[0])
    return -(logits[u, y] - ordered[:, -2] * true_is_top - ordered[:, -1] * (1.0 - true_is_top)) / (
        ordered[:, -1] - ordered[:, -3] + 1e-12
    )


def targeted_dlr_loss(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor, order: str = "original"
) -> torch.Tensor:
    """Per sample, APGD-T's targeted DLR loss (``dlr_loss_targeted``; ``order="torchattacks"``: its
    port's denominator, z_π1 − ½·z_π3 − ½·z_π4, the same quantity rounded another way)."""
    ordered = logits.sort(dim=1)[0]
    u = torch.arange(logits.shape[0])
    if order == "torchattacks":
        spread = ordered[:, -1] - 0.5 * ordered[:, -3] - 0.5 * ordered[:, -4]
    else:
        spread = ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4])
    return -(logits[u, y] - logits[u, target]) / (spread + 1e-12)


def _losses(
    loss: str, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, order: str
) -> torch.Tensor:
    if target is not None:
        return targeted_dlr_loss(logits, y, target, order)
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if logits.shape[1] < 3:
        raise ValueError(
            f"the DLR loss needs at least 3 classes (it reads the third-largest logit), got {logits.shape[1]}"
        )
    return dlr_loss(logits, y)


def _normalize(v: torch.Tensor, norm: Norm) -> torch.Tensor:
    """v over its per-sample norm + 1e-12 (``APGDAttack.normalize``)."""
    if norm == "linf":
        t = v.abs().view(v.shape[0], -1).max(1)[0]
    else:
        t = (v**2).view(v.shape[0], -1).sum(-1).sqrt()
    return v / (t.view(-1, *([1] * (v.ndim - 1))) + 1e-12)


def _l2_norm(v: torch.Tensor) -> torch.Tensor:
    # other_utils.L2_norm(keepdim=True): the per-sample L2 norm, shaped to broadcast.
    return (v**2).view(v.shape[0], -1).sum(-1).sqrt().view(-1, *([1] * (v.ndim - 1)))


def _project(x: torch.Tensor, z: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """z into the eps-ball around x and [0, 1], in the original's order."""
    if norm == "linf":
        return torch.clamp(torch.min(torch.max(z, x - eps), x + eps), 0.0, 1.0)
    scale = torch.min(eps * torch.ones_like(x), _l2_norm(z - x))
    return torch.clamp(x + _normalize(z - x, norm) * scale, 0.0, 1.0)


def _gradient(
    model: nn.Module,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    reduction: LossReduction,
    target: torch.Tensor | None,
    order: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, per-sample loss, input gradient of the loss summed — or averaged — over the batch)."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        per_sample = _losses(loss, logits, y, target, order)
        total = per_sample.sum() if reduction == "sum" else per_sample.mean()
    # The original accumulates over its EOT iterations (one here) into zeros and divides by their
    # count: the same values, the same signed zeros.
    grad = torch.zeros_like(x_adv)
    grad += torch.autograd.grad(total, [x_adv])[0].detach()
    grad /= 1.0
    return logits.detach(), per_sample.detach(), grad


def _oscillates(loss_steps: torch.Tensor, i: int, k: int, rho: float) -> torch.Tensor:
    """1. where the loss rose in at most ρ·k of the last k iterations (``check_oscillation``; its
    index wraps to the last row, still zero, at the first checkpoint, as the original's does)."""
    rises = torch.zeros(loss_steps.shape[1], device=loss_steps.device)
    for back in range(k):
        rises += (loss_steps[i - back] > loss_steps[i - back - 1]).float()
    return (rises <= k * rho * torch.ones_like(rises)).float()


def single_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    params: APGDParams,
    start: torch.Tensor,
    reduction: LossReduction = "sum",
    target: torch.Tensor | None = None,
    order: str = "original",
) -> SingleRun:
    """One APGD run from ``start`` on every sample of the batch (the module docstring's algorithm);
    ``target``: APGD-T's target class per sample (None: untargeted); ``order``: whose rounding of the
    targeted DLR (:func:`targeted_dlr_loss`)."""
    norm, steps = params.norm, params.steps
    n = x.shape[0]
    schedule = Checkpoints.of(steps)
    x_adv = start.detach().clone().clamp(0.0, 1.0)
    x_best = x_adv.clone()
    x_best_adv = x_adv.clone()
    loss_steps = torch.zeros([steps, n], device=x.device)

    logits, per_sample, grad = _gradient(model, x_adv, y, params.loss, reduction, target, order)
    floor = relative_magnitude(grad)
    grad_best = grad.clone()
    robust = logits.max(1)[1] == y
    loss_best = per_sample.clone()

    step_size = 2.0 * eps * torch.ones([n, *([1] * (x.ndim - 1))], device=x.device)
    x_adv_old = x_adv.clone()
    since_check, interval = 0, schedule.first
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones_like(loss_best)

    for i in range(steps):
        with torch.no_grad():
            x_adv = x_adv.detach()
            previous_move = x_adv - x_adv_old
            x_adv_old = x_adv.clone()
            a = 0.75 if i > 0 else 1.0
            if norm == "linf":
                z = _project(x, x_adv + step_size * torch.sign(grad), eps, norm)
                x_adv = _project(x, x_adv + (z - x_adv) * a + previous_move * (1 - a), eps, norm)
            else:
                z = _project(x, x_adv + step_size * _normalize(grad, norm), eps, norm)
                x_adv = _project(x, x_adv + (z - x_adv) * a + previous_move * (1 - a), eps, norm)
            x_adv = x_adv + 0.0

        logits, per_sample, grad = _gradient(model, x_adv, y, params.loss, reduction, target, order)
        floor = torch.minimum(floor, relative_magnitude(grad))
        correct = logits.max(1)[1] == y
        robust = torch.min(robust, correct)
        fooled = (correct == 0).nonzero().squeeze()
        x_best_adv[fooled] = x_adv[fooled] + 0.0

        with torch.no_grad():
            current = per_sample.clone()
            loss_steps[i] = current + 0
            improved = (current > loss_best).nonzero().squeeze()
            x_best[improved] = x_adv[improved].clone()
            grad_best[improved] = grad[improved].clone()
            loss_best[improved] = current[improved] + 0

            since_check += 1
            if since_check == interval:
                halve = _oscillates(loss_steps, i, interval, params.rho)
                stalled = (1.0 - reduced_last_check) * (loss_best_last_check >= loss_best).float()
                halve = torch.max(halve, stalled)
                reduced_last_check = halve.clone()
                loss_best_last_check = loss_best.clone()
                if halve.sum() > 0:
                    chosen = (halve > 0).nonzero().squeeze()
                    step_size[chosen] /= 2.0
                    x_adv[chosen] = x_best[chosen].clone()
                    grad[chosen] = grad_best[chosen].clone()
                interval = max(interval - schedule.decrease, schedule.shortest)
                since_check = 0

    return SingleRun(x_best.detach(), robust, loss_best, x_best_adv.detach(), floor)


def random_start(
    x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator, order: str = "original"
) -> torch.Tensor:
    """The original's start draw for a batch (``attack_single_run``): x + eps · t / ‖t‖, t uniform in
    [−1, 1] per component (L∞: the largest |t| of a sample is scaled to 1) or standard normal (L2).

    ``order="torchattacks"``: the same draw in torchattacks' port's order, ``(eps · t) / ‖t‖`` with no
    1e-12 in L∞ and the L2 norm summed over (C, H, W) — other last bits on some pixels, which the first
    momentum step, x + (z − x), carries into every iterate."""
    if norm == "linf":
        t = 2 * torch.rand(x.shape, generator=generator).to(x.device) - 1
    else:
        t = torch.randn(x.shape, generator=generator).to(x.device)
    if order == "torchattacks":
        ones = torch.ones([x.shape[0], *([1] * (x.ndim - 1))], device=x.device)
        if norm == "linf":
            largest = t.reshape([t.shape[0], -1]).abs().max(dim=1, keepdim=True)[0]
            return x.detach() + eps * ones * t / largest.reshape([-1, *([1] * (x.ndim - 1))])
        return x.detach() + eps * ones * t / (
            (t**2).sum(dim=tuple(range(1, x.ndim)), keepdim=True).sqrt() + 1e-12
        )
    return x + eps * torch.ones_like(x) * _normalize(t, norm)


def target_of_rank(model: nn.Module, x: torch.Tensor, rank: int) -> torch.Tensor:
    """Per sample, the class with the ``rank``-th largest logit at x (the original's
    ``output.sort(dim=1)[1][:, -target_class]``): one forward."""
    with torch.no_grad():
        return model(x).sort(dim=1)[1][:, -rank]


# A library's own start for the samples still to fool, from NumPy's legacy RNG (ART's random_sphere).
NumpyDraw = Callable[[torch.Tensor, float, Norm, np.random.RandomState], torch.Tensor]


@dataclass(frozen=True)
class SubsetDraws:
    """The starts the original draws (``APGDAttack.perturb``): torch's generator seeded once with
    ``seed``, then, per restart, one draw for the samples still to fool — the ones classified
    correctly at x and not fooled by an earlier restart — in their order; none when none is left.
    A start that depends on the run itself, so it is drawn while the expectation runs."""

    seed: int
    # Whose rounding of the same draws and loss, "original" or "torchattacks" (random_start,
    # targeted_dlr_loss): part of the start because it is declared where the start is.
    order: str = "original"
    # A library that draws its own start per subset from NumPy's global RNG, seeded with ``seed``
    # (ART): that draw, from a RandomState of the seed (the same stream), instead of random_start.
    numpy_draw: NumpyDraw | None = None

    def generator(self) -> torch.Generator | np.random.RandomState:
        if self.numpy_draw is not None:
            return np.random.RandomState(self.seed)
        return torch.Generator().manual_seed(self.seed)

    def start(self, x: torch.Tensor, eps: float, norm: Norm, generator: Any) -> torch.Tensor:
        """The start of the samples ``x`` still to fool, drawn next from ``generator``."""
        if self.numpy_draw is not None:
            return self.numpy_draw(x, eps, norm, generator)
        return random_start(x, eps, norm, generator, self.order)


class APGD(Attack):
    name = "apgd"
    params = APGDParams
    preset_keys = ("loss", "norm", "steps", "restarts", "rho", "targets")

    def preset_params(self, table: Mapping[str, Any], eps: float) -> APGDParams:
        params: APGDParams = self.make_params(dict(table))
        return params

    def label(self, params: APGDParams) -> str:
        name = "APGD-T" if params.targets is not None else f"APGD-{params.loss.upper()}"
        name += ("" if params.norm == "linf" else f"-{params.norm.upper()}") + f"-{params.steps}"
        name += "" if params.restarts == 1 else f" ×{params.restarts}"
        return name if params.targets is None else f"{name} top-{params.targets}"

    def check_classes(self, params: APGDParams, num_classes: int) -> None:
        super().check_classes(params, num_classes)
        if params.loss == "dlr" and num_classes < 3:
            raise ValueError(
                f'loss = "dlr" needs a model with at least 3 classes (it reads the third-largest logit); '
                f'this one has {num_classes}: use loss = "ce"'
            )
        if params.targets is not None and (num_classes < 4 or params.targets >= num_classes):
            raise ValueError(
                f"targets = {params.targets} (APGD-T) needs a model with at least 4 classes (its loss reads "
                f"the fourth-largest logit) and more than {params.targets}; this one has {num_classes}"
            )

    def variants(self, params: APGDParams) -> tuple[str, ...]:
        return (("restarts",) if params.restarts > 1 else ()) + (("targets",) if params.targets else ())

    def seeded(self, params: APGDParams) -> bool:
        return True

    def columns(self, params: APGDParams, eps: float) -> dict[str, Any]:
        return {"steps": params.steps, "alpha": 2.0 * eps, "random_start": True}

    def passes(self, params: APGDParams) -> tuple[float, float]:
        # The clean forward that picks the samples to attack, then per run (restart, target class) one
        # forward and backward at the start and at each iteration — and APGD-T's forward that picks
        # the target —, where every sample is attacked and never fooled.
        k = len(params.runs())
        targeting = 0.0 if params.targets is None else 1.0
        return (1.0 + k * (params.steps + 1 + targeting), float(k * (params.steps + 1)))

    def default_start(self, x: torch.Tensor, eps: float, params: APGDParams, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        draws = [random_start(x, eps, params.norm, generator) for _ in params.runs()]
        return draws[0] if len(draws) == 1 else torch.stack(draws)

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: APGDParams,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv, floor, _ = self.from_start(
            model, x, y, eps, params, start, reduction, _clean_correct(model, x, y)
        )
        return x_adv, floor

    def from_starts(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: APGDParams,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
        selection: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(start, SubsetDraws):
            return self.on_subsets(model, x, y, eps, params, start, reduction)
        runs = params.runs()
        if runs == [None]:
            return self.reference(model, x, y, eps, params, start, reduction, arithmetic)
        # Each run attacks the samples no earlier one fooled: a sample keeps its first success.
        unfooled = _clean_correct(model, x, y)
        x_adv, floor = x.detach().clone(), torch.ones_like(x)
        for rank, one in zip(runs, [start] if len(runs) == 1 else start, strict=True):
            target = None if rank is None else target_of_rank(model, x, rank)
            candidate, candidate_floor, fooled = self.from_start(
                model, x, y, eps, params, one, reduction, unfooled, target
            )
            x_adv = torch.where(_rows(fooled, x), candidate, x_adv)
            floor = torch.where(_rows(unfooled, x), torch.minimum(floor, candidate_floor), floor)
            unfooled = unfooled & ~fooled
        return x_adv, floor

    def on_subsets(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: APGDParams,
        draws: SubsetDraws,
        reduction: LossReduction,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The attack as the original runs it: each run (restart, target class) on the batch of the
        samples still to fool alone, from :class:`SubsetDraws` — its batches, and so the passes it
        spends, are the original's."""
        generator = draws.generator()
        unfooled = _clean_correct(model, x, y)
        x_adv, floor = x.detach().clone(), torch.ones_like(x)
        for rank in params.runs():
            index = unfooled.nonzero().squeeze(1)
            if index.numel() == 0:
                break  # the original's later runs draw nothing and spend nothing
            target = None if rank is None else target_of_rank(model, x[index], rank)
            start = draws.start(x[index], eps, params.norm, generator)
            run = single_run(model, x[index], y[index], eps, params, start, reduction, target, draws.order)
            fooled = index[~run.robust]
            x_adv[fooled] = run.x_best_adv[~run.robust]
            floor[index] = torch.minimum(floor[index], run.floor)
            unfooled[fooled] = False
        return x_adv, floor

    def from_start(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: APGDParams,
        start: torch.Tensor,
        reduction: LossReduction,
        attacked: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_adv, floor, and which samples of ``attacked`` the run fooled (the others return x)."""
        run = single_run(model, x, y, eps, params, start, reduction, target)
        fooled = attacked & ~run.robust
        return torch.where(_rows(fooled, x), run.x_best_adv, x.detach()), run.floor, fooled


def _clean_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The samples the model classifies correctly at x: the ones the original attacks."""
    with torch.no_grad():
        return model(x).max(1)[1] == y


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.ndim - 1)))


ATTACK = APGD()
