"""The attack contract every adapter shares, and the guards that enforce it — written once, here.

An adapter only maps an :class:`AttackSpec` onto one library's FGSM/PGD classes (its *attack
function*). Everything that must hold whatever the library does lives in :func:`run_guarded`:

1. validate the spec and the batch before any library runs (``ValueError`` saying expected vs got);
2. snapshot the model — every submodule's ``training`` flag, every parameter, buffer, ``.grad`` and
   ``requires_grad`` flag — and restore it afterwards, even if the attack raised;
3. run the attack with every submodule in eval mode under ``torch.enable_grad()`` (so it also works
   inside ``torch.no_grad()``), behind a transparent wrapper that counts forward rows and
   input-gradient rows (passes per sample) and zero input-gradient components per sample;
4. check the output: x's shape, dtype and device, finite, inside [0, 1] and inside the eps-ball up to
   float32 round-off; a violation raises :class:`AttackOutputError` naming the library and the bound.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

ATTACKS: tuple[str, ...] = ("fgsm", "pgd")

# One float32 ulp at 1.0 is 2**-23 ≈ 1.19e-7: the largest rounding error a single float32 add or
# subtract of pixel values in [0, 1] can make. Libraries project in different orders (step → clip →
# project vs step → project → clip) and some in float64, so |x_adv - x| may exceed eps by that much.
EPS_TOLERANCE = 1.2e-7


@dataclass(frozen=True)
class AttackSpec:
    """One attack configuration, in pixel units (pixels live in [0, 1]).

    ``alpha=None`` means the paper's step rule ``eps / 4``. FGSM is a single full step of size eps
    from the clean image: it ignores ``steps``, ``alpha``, ``random_start`` and ``seed``.
    """

    attack: Literal["fgsm", "pgd"]
    eps: float
    steps: int = 10
    alpha: float | None = None
    random_start: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise ValueError(f"expected attack to be one of {list(ATTACKS)}, got {self.attack!r}")
        # ART refuses numpy/torch scalars for eps, so the spec always holds Python floats.
        object.__setattr__(self, "eps", _check_eps(self.eps))
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise ValueError(f"expected steps to be an integer >= 1, got {self.steps!r}")
        object.__setattr__(self, "steps", int(self.steps))
        if self.alpha is not None:
            object.__setattr__(self, "alpha", _check_alpha(self.alpha))
        if not isinstance(self.random_start, bool):
            raise ValueError(f"expected random_start to be True or False, got {self.random_start!r}")
        # NumPy's global seed (what ART's random start draws from) must lie in [0, 2**32).
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"expected seed to be an integer, got {self.seed!r}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"expected seed in [0, 2**32), got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def step_size(self) -> float:
        """The PGD step actually used: ``alpha``, or ``eps / 4`` when alpha is None."""
        return self.eps / 4 if self.alpha is None else self.alpha


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ValueError(f"expected eps to be a real number in (0, 1], got {eps!r}")
    value = float(eps)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite eps in (0, 1], got {value}")
    if value > 1:
        raise ValueError(f"eps={value:g} is outside (0, 1]; pixel units — did you mean {value:g}/255?")
    if value <= 0:
        raise ValueError(f"eps={value:g} is outside (0, 1]; expected a perturbation size > 0, e.g. 8/255")
    return value


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ValueError(f"expected alpha to be None or a real number in (0, 1], got {alpha!r}")
    value = float(alpha)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"expected alpha in (0, 1] (pixel units) or None for eps/4, got {value:g}")
    return value


@runtime_checkable
class Adapter(Protocol):
    """One attack library behind the project's single signature."""

    name: str

    def generate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
        """Adversarial examples for ``x`` (float32 ``[N, C, H, W]`` in [0, 1]) and true labels ``y``."""
        ...


LossReduction = Literal["sum", "mean"]
LOSS_REDUCTIONS: tuple[str, ...] = ("sum", "mean")
# (x, spec) -> the point the library's PGD starts from, for this batch and seed.
StartFn = Callable[[torch.Tensor, AttackSpec], torch.Tensor]


@dataclass(frozen=True)
class Declaration:
    """What an adapter documents about how its library computes the attack — checked, not trusted.

    The harness turns these into the *exact* x_adv the library must return (the reference's FGSM/PGD
    code run with this loss reduction from this start) and the pass counts it must spend; a library
    that differs from either is judged to disagree.

    ``loss_reduction``: how the library reduces cross-entropy over a batch. ``sum`` and ``mean`` are
    the same attack in exact arithmetic, but the 1/N of a mean changes float32 round-off when N is not
    a power of two; the expected x_adv is computed with the library's own reduction so that it can be
    compared bit for bit.
    ``passes``: (forward, backward) passes per sample for a spec, as read from the library's source
    and measured by the guard's hooks.
    ``start``: the library's PGD random-start point for a batch, reproduced outside the library from
    the same random draws (read from its source); None where it cannot be reproduced, and then its
    random-start PGD can only be judged statistically.
    """

    loss_reduction: LossReduction
    passes: Callable[[AttackSpec], tuple[float, float]]
    start: StartFn | None
    # The attacks the library offers (adv-lib has no FGSM); a run plans no cells for the others.
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    # False where the library's PGD always draws a random start (DeepRobust): no-start PGD is not offered.
    pgd_without_random_start: bool = True
    # attack -> how the library's version departs from the reference's attack, read from its source and
    # measured. Not an excuse: such cells still disagree; the report quotes this as the explanation, and
    # the adapter tests fail if a release stops departing (then the entry goes).
    departures: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"expected loss_reduction in {LOSS_REDUCTIONS}, got {self.loss_reduction!r}")
        unknown = [a for a in self.attacks if a not in ("fgsm", "pgd")]
        if unknown or not self.attacks:
            raise ValueError(f"expected attacks among ('fgsm', 'pgd'), got {self.attacks!r}")

    def offers(self, spec: AttackSpec) -> bool:
        """Whether the library computes ``spec`` at all (it may still compute it wrongly)."""
        if spec.attack not in self.attacks:
            return False
        return spec.attack != "pgd" or spec.random_start or self.pgd_without_random_start


def pass_counts(
    fgsm: tuple[float, float] = (1.0, 1.0), pgd_extra_forwards: int = 0
) -> Callable[[AttackSpec], tuple[float, float]]:
    """A :attr:`Declaration.passes`: (forward, backward) per sample — ``fgsm`` for FGSM; for PGD one of
    each per step plus ``pgd_extra_forwards`` forwards (a library that predicts to log or report)."""

    def count(spec: AttackSpec) -> tuple[float, float]:
        if spec.attack == "fgsm":
            return fgsm
        return float(spec.steps + pgd_extra_forwards), float(spec.steps)

    return count


# (model, x, y, spec, num_classes) -> x_adv. Receives a validated batch (fresh copies), a model
# already in eval mode with gradients enabled, and the class count read from the model's output.
AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, AttackSpec, int], torch.Tensor]


@dataclass(frozen=True)
class AttackStats:
    """What one attack call spent, measured by hooks on the model (not assumed).

    ``forward_passes_per_sample``: rows that went through the model's forward, divided by N (a
    library that predicts the clean and adversarial batch for logging pays 2 extra here).
    ``backward_passes_per_sample``: rows of input gradient computed, divided by N.
    ``zero_grad_elements``: per sample, input components (of ``elements_per_sample = C·H·W``) whose
    gradient was exactly 0 in the first gradient that sample received — FGSM's only gradient, PGD's
    gradient at its start point; ``sign(0) = 0`` means those components do not move.
    ``zero_grad_elements_all_steps``: the same, summed over every gradient of the attack.
    ``state_changes``: what the library left changed in the model when it returned (modules out of eval
    mode, parameter or buffer values), before the guard restored it; empty when nothing was.
    """

    library: str
    n_samples: int
    forward_passes_per_sample: float
    backward_passes_per_sample: float
    elements_per_sample: int
    zero_grad_elements: np.ndarray
    zero_grad_elements_all_steps: np.ndarray
    seconds: float
    state_changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttackResult:
    x_adv: torch.Tensor
    stats: AttackStats


class AttackOutputError(ValueError):
    """A library returned something outside the attack's contract (bounds, eps-ball, shape, finiteness).

    ``x_adv`` holds the offending output (or None for a wrong type) so a runner can still record it.
    """

    def __init__(self, library: str, bound: str, detail: str, x_adv: torch.Tensor | None = None) -> None:
        super().__init__(f"{library}: output breaks {bound}: {detail}")
        self.library = library
        self.bound = bound
        self.x_adv = x_adv


@dataclass
class GuardedAdapter:
    """An :class:`Adapter` made of a library's attack function wrapped in the shared guards.

    ``last_stats`` holds the :class:`AttackStats` of the latest :meth:`generate` call; :meth:`run`
    returns them together with x_adv (prefer it when calls may interleave).
    """

    name: str
    attack_fn: AttackFn
    declaration: Declaration
    last_stats: AttackStats | None = field(default=None, compare=False, repr=False)

    def generate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
        """Adversarial examples for ``x`` with true labels ``y``; the model is left exactly as it was."""
        return self.run(model, x, y, spec).x_adv

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> AttackResult:
        """Like :meth:`generate`, but also returns what the call spent."""
        if isinstance(spec, AttackSpec) and not self.declaration.offers(spec):
            what = "PGD without a random start" if spec.attack == "pgd" else spec.attack.upper()
            raise ValueError(
                f"{self.name} offers no {what}; expected one of its attacks {self.declaration.attacks}"
            )
        result = run_guarded(self.name, self.attack_fn, model, x, y, spec)
        self.last_stats = result.stats
        return result


def run_attack(
    adapter: Adapter, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec
) -> AttackResult:
    """Run any adapter under the shared guards and return x_adv with its pass and zero-gradient counts."""
    if isinstance(adapter, GuardedAdapter):
        return adapter.run(model, x, y, spec)

    def call_generate(
        m: nn.Module, xb: torch.Tensor, yb: torch.Tensor, s: AttackSpec, _k: int
    ) -> torch.Tensor:
        return adapter.generate(m, xb, yb, s)

    return run_guarded(adapter.name, call_generate, model, x, y, spec)


def run_guarded(
    library: str, attack_fn: AttackFn, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec
) -> AttackResult:
    """Validate, run ``attack_fn`` under the state guard with pass counting, check the output."""
    if not isinstance(spec, AttackSpec):
        raise ValueError(f"expected spec to be an adapters.AttackSpec, got {type(spec).__name__}")
    with attack_session(model, x, y, library) as session:
        start = time.perf_counter()
        x_adv = attack_fn(session.counter, x.detach().clone(), y.detach().clone(), spec, session.num_classes)
        seconds = time.perf_counter() - start
    check_output(library, x, x_adv, spec.eps)
    return AttackResult(x_adv.detach(), session.counter.stats(library, seconds, session.state_changes))


# --- input validation ----------------------------------------------------------------------------


def validate_batch(x: object, y: object) -> None:
    """Check x and y as far as possible without the model; raise ``ValueError`` saying expected vs got."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected x to be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"expected y to be a torch.Tensor, got {type(y).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected x of shape [N, C, H, W], got {x.ndim} dims {list(x.shape)}")
    if x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"expected a non-empty batch x, got shape {list(x.shape)}")
    # ART computes in float32 whatever it is given, and EPS_TOLERANCE is float32's: other dtypes
    # would make libraries disagree for reasons that are not the attack's.
    if x.dtype != torch.float32:
        raise ValueError(f"expected x of dtype torch.float32 (pixels in [0, 1]), got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"expected finite pixels in x, got {bad} NaN/inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"expected pixels in [0, 1] (normalisation belongs inside the model), got range [{lo:g}, {hi:g}]"
        )
    if y.dtype != torch.int64:
        raise ValueError(f"expected y of dtype torch.int64 (class indices), got {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"expected y of shape [N] (class indices, not one-hot), got shape {list(y.shape)}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"expected one label per image: x has {x.shape[0]} images, y has {y.shape[0]} labels"
        )
    if y.device != x.device:
        raise ValueError(f"expected y on x's device {x.device}, got {y.device}")


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer; None for a stateless model."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return None


# num_classes per model object and input signature, so only a model's first attack pays the extra
# forward pass (~30 ms on DenseNet-121: 10 % of a 16-image FGSM). PassCounter checks every logits
# width the libraries see against it, so a head changed in place between calls is caught, not trusted.
_NUM_CLASSES: weakref.WeakKeyDictionary[nn.Module, dict[tuple[object, ...], int]] = (
    weakref.WeakKeyDictionary()
)


def _input_signature(x: torch.Tensor) -> tuple[object, ...]:
    return (tuple(x.shape[1:]), x.dtype, x.device)


def cached_num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """:func:`infer_num_classes`, run once per model and input signature."""
    known = _NUM_CLASSES.setdefault(model, {})
    key = _input_signature(x)
    if key not in known:
        known[key] = infer_num_classes(model, x)
    return known[key]


def forget_num_classes(model: nn.Module) -> None:
    _NUM_CLASSES.pop(model, None)


def infer_num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The class count from the model's own output on one image (no assumption about the head)."""
    with torch.no_grad():
        logits = model(x[:1])
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"expected the model to return logits of shape [N, num_classes], got {got} for N=1")
    if logits.shape[1] < 2:
        raise ValueError(f"expected at least 2 classes in the model's output, got {logits.shape[1]}")
    return int(logits.shape[1])


def validate_labels(y: torch.Tensor, num_classes: int) -> None:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"expected labels in [0, {num_classes}) (the model has {num_classes} outputs), got range [{lo}, {hi}]"
        )


# --- model state: snapshot and exact restore ------------------------------------------------------


@dataclass
class _ParamState:
    param: nn.Parameter
    data: torch.Tensor
    grad: torch.Tensor | None  # the original .grad object: restored by identity, not only by value
    grad_data: torch.Tensor | None
    requires_grad: bool


@dataclass
class ModelState:
    """Everything an attack could disturb: modes, parameters, buffers, ``.grad``, ``requires_grad``."""

    modes: list[tuple[nn.Module, bool]]
    # Which object each parameter/buffer slot held: (module, its _parameters or _buffers dict, name, object).
    slots: list[tuple[nn.Module, dict[str, Any], str, torch.Tensor | None]]
    params: list[_ParamState]
    buffers: list[tuple[torch.Tensor, torch.Tensor]]


def snapshot(model: nn.Module) -> ModelState:
    # One walk over the modules, reading their parameter and buffer dicts directly: the recursive
    # named_parameters()/named_buffers() helpers cost ~20 ms per call on DenseNet-121 (its ~600 modules),
    # which was most of the adapters' overhead on a batch of FGSM.
    modes: list[tuple[nn.Module, bool]] = []
    slots: list[tuple[nn.Module, dict[str, Any], str, torch.Tensor | None]] = []
    params: dict[int, _ParamState] = {}  # by id: a parameter shared by two modules is saved once
    buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in model.modules():
        modes.append((module, module.training))
        for name, p in module._parameters.items():
            slots.append((module, module._parameters, name, p))
            if p is not None and id(p) not in params:
                params[id(p)] = _ParamState(
                    param=p,
                    data=p.detach().clone(),
                    grad=p.grad,
                    grad_data=None if p.grad is None else p.grad.detach().clone(),
                    requires_grad=p.requires_grad,
                )
        for name, b in module._buffers.items():
            slots.append((module, module._buffers, name, b))
            if b is not None and id(b) not in buffers:
                buffers[id(b)] = (b, b.detach().clone())
    return ModelState(modes, slots, list(params.values()), list(buffers.values()))


def restore(model: nn.Module, state: ModelState, library: str) -> list[str]:
    """Put the model back exactly as :func:`snapshot` saw it; warn and return what had changed
    (``"parameters"``, ``"buffers"``)."""
    for module, registry, name, obj in state.slots:
        # A dict lookup, not getattr: nn.Module.__getattr__ costs ~µs each, ~1,100 slots on DenseNet-121.
        if registry.get(name) is not obj:
            setattr(module, name, obj)
    changed: list[str] = []
    with torch.no_grad():
        for ps in state.params:
            if not torch.equal(ps.param, ps.data):
                changed.append("parameters")
                ps.param.copy_(ps.data)
            ps.param.requires_grad_(ps.requires_grad)
            if ps.grad is not None and ps.grad_data is not None:
                # Foolbox's backward() accumulates into the existing .grad tensor in place.
                ps.grad.copy_(ps.grad_data)
            # ART's zero_grad() sets .grad to None; the caller's gradient object comes back.
            if ps.param.grad is not ps.grad:
                ps.param.grad = ps.grad
        for buffer, saved in state.buffers:
            if not torch.equal(buffer, saved):
                changed.append("buffers")
                buffer.copy_(saved)
    for module, training in state.modes:
        if module.training != training:  # nn.Module.__setattr__ is slow: set only what changed
            module.training = training  # per module: train()/eval() would recurse and undo frozen BN
    if changed:
        logger.warning("%s changed the model's %s during the attack; restored", library, sorted(set(changed)))
    return sorted(set(changed))


# --- pass counting --------------------------------------------------------------------------------


class PassCounter(nn.Module):
    """Transparent wrapper handed to the libraries instead of the user's model.

    Counts rows through forward and, via a tensor hook on the input, rows of input gradient through
    backward. A wrapper (rather than a hook on the model) also sees models that ART unrolls: ART calls
    the children of an ``nn.Sequential`` one by one, bypassing the top module's forward hooks.
    """

    def __init__(
        self, model: nn.Module, n_samples: int, elements_per_sample: int, num_classes: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes  # checked on every forward when given
        self.n_samples = n_samples
        self.elements_per_sample = elements_per_sample
        self.forward_rows = 0
        self.backward_rows = 0
        self._cursor = 0  # rows of gradient map to samples in order (libraries keep batch order)
        self._zero_records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_rows += int(x.shape[0])
        if x.requires_grad:
            x.register_hook(self._on_input_grad)
        logits = self.model(x)
        if self.num_classes is not None and (
            not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != self.num_classes
        ):
            forget_num_classes(self.model)
            got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(
                f"expected the model to return logits of shape [N, {self.num_classes}] as on its first attack, "
                f"got {got}; was the model changed in place? (the next attack re-reads its output size)"
            )
        return logits

    def _on_input_grad(self, grad: torch.Tensor) -> None:
        rows = int(grad.shape[0])
        index = (self._cursor + torch.arange(rows, device=grad.device)) % self.n_samples
        self._zero_records.append((index, (grad.reshape(rows, -1) == 0).sum(dim=1)))
        self._cursor = (self._cursor + rows) % self.n_samples
        self.backward_rows += rows

    def stats(self, library: str, seconds: float, state_changes: Sequence[str] = ()) -> AttackStats:
        first = np.zeros(self.n_samples, dtype=np.int64)
        total = np.zeros(self.n_samples, dtype=np.int64)
        seen = np.zeros(self.n_samples, dtype=bool)
        for index, zeros in self._zero_records:
            idx, cnt = index.cpu().numpy(), zeros.cpu().numpy()
            fresh = ~seen[idx]
            first[idx[fresh]] = cnt[fresh]
            seen[idx] = True
            np.add.at(total, idx, cnt)
        return AttackStats(
            library=library,
            n_samples=self.n_samples,
            forward_passes_per_sample=self.forward_rows / self.n_samples,
            backward_passes_per_sample=self.backward_rows / self.n_samples,
            elements_per_sample=self.elements_per_sample,
            zero_grad_elements=first,
            zero_grad_elements_all_steps=total,
            seconds=seconds,
            state_changes=tuple(state_changes),
        )


@dataclass
class Session:
    counter: PassCounter  # what the library gets instead of the model
    num_classes: int
    # Filled when the session ends: what the library left changed before the guard restored it.
    state_changes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def attack_session(model: nn.Module, x: torch.Tensor, y: torch.Tensor, library: str) -> Iterator[Session]:
    """Validate the batch, then yield the counting model in eval mode with gradients enabled.

    On exit — normal or by exception — the model's modes, parameters, buffers, ``.grad`` and
    ``requires_grad`` flags are restored. Parameters are frozen during the attack: weight gradients
    are not computed at all (faster), a library's ``backward()`` has nothing to accumulate into, and
    the input gradient stays the same (measured bit-identical on DenseNet-121, CPU).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"expected model to be a torch.nn.Module, got {type(model).__name__}")
    validate_batch(x, y)
    device = model_device(model)
    if device is not None and device != x.device:
        raise ValueError(f"expected x on the model's device {device}, got {x.device}")
    state = snapshot(model)
    session: Session | None = None
    try:
        # From the snapshot's lists rather than model.parameters()/model.eval(): each of those walks
        # the module tree again (a few ms apiece on DenseNet-121). The flags end as eval() sets them.
        for ps in state.params:
            ps.param.requires_grad_(False)
        for module, training in state.modes:
            if training:
                module.training = False
        with torch.inference_mode(False), torch.enable_grad():
            num_classes = cached_num_classes(model, x)  # before counting starts: not the library's cost
            validate_labels(y, num_classes)
            counter = PassCounter(
                model,
                n_samples=int(x.shape[0]),
                elements_per_sample=int(x[0].numel()),
                num_classes=num_classes,
            )
            session = Session(counter=counter.eval(), num_classes=num_classes)
            yield session
    finally:
        left_training = [module for module, _ in state.modes if module.training]
        changed = restore(model, state, library)
        if session is not None:
            if left_training:
                # The guard put every module in eval before the library ran; a library must not
                # switch any back (a train-mode forward uses batch statistics and updates BatchNorm).
                session.state_changes.append(f"{len(left_training)} module(s) left in train mode")
            session.state_changes.extend(f"{what} values changed" for what in changed)


# --- output checks --------------------------------------------------------------------------------


def check_output(library: str, x: torch.Tensor, x_adv: object, eps: float) -> None:
    """Raise :class:`AttackOutputError` unless x_adv has x's shape/dtype/device, is finite, in [0, 1]
    and within eps of x (L∞, up to :data:`EPS_TOLERANCE`)."""
    if not isinstance(x_adv, torch.Tensor):
        raise AttackOutputError(
            library, "the output type", f"expected a torch.Tensor, got {type(x_adv).__name__}"
        )
    for what, want, got in (("shape", x.shape, x_adv.shape), ("dtype", x.dtype, x_adv.dtype)):
        if want != got:
            raise AttackOutputError(library, f"the {what}", f"expected {want}, got {got}", x_adv)
    if x_adv.device != x.device:
        raise AttackOutputError(library, "the device", f"expected {x.device}, got {x_adv.device}", x_adv)
    finite = torch.isfinite(x_adv)
    if not bool(finite.all()):
        raise AttackOutputError(library, "finiteness", f"{int((~finite).sum())} NaN/inf values", x_adv)
    lo, hi = float(x_adv.min()), float(x_adv.max())
    if lo < 0 or hi > 1:
        excess = max(-lo, hi - 1)
        raise AttackOutputError(
            library, "the [0, 1] box", f"range [{lo:.9g}, {hi:.9g}], {excess:.3g} outside", x_adv
        )
    # float64 makes the difference of two float32 values exact: the check adds no round-off of its own.
    linf = float((x_adv.detach().double() - x.detach().double()).abs().max())
    if linf > eps + EPS_TOLERANCE:
        raise AttackOutputError(
            library,
            "the eps-ball",
            f"L∞ distance {linf:.9g} > eps {eps:.9g} by {linf - eps:.3g} (tolerance {EPS_TOLERANCE:g})",
            x_adv,
        )


# --- global RNGs that libraries draw their random start from --------------------------------------


@contextlib.contextmanager
def seeded_global_rngs(seed: int, device: torch.device) -> Iterator[None]:
    """Seed NumPy's and torch's global RNGs (CPU and ``device``) and restore their states afterwards.

    Libraries offer no generator argument for their random start; this is as far as seeding goes
    without clobbering the caller's random streams.
    """
    numpy_state = np.random.get_state()
    cuda_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=cuda_devices):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda_devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def as_eps_list(eps_list: Sequence[float]) -> list[float]:
    """Validate a grid of eps values (each in (0, 1]) and return them as Python floats."""
    if len(eps_list) == 0:
        raise ValueError("expected at least one eps, got an empty list")
    return [_check_eps(eps) for eps in eps_list]
