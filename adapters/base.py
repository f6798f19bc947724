"""The attack contract every adapter shares, and the guards that enforce it — written once, here.

An adapter only maps an :class:`AttackSpec` onto one library's attack classes (one call per attack
it offers, ``adapters/declaration.py``). Everything that must hold whatever the library does lives in :func:`run_guarded`:

1. validate the spec and the batch before any library runs (``ValueError`` saying expected vs got);
2. snapshot the model — every submodule's ``training`` flag, every parameter, buffer, ``.grad`` and
   ``requires_grad`` flag — and restore it afterwards, even if the attack raised;
3. run the attack with every submodule in eval mode under ``torch.enable_grad()`` (so it also works
   inside ``torch.no_grad()``), behind a transparent wrapper that counts forward rows and
   input-gradient rows (passes per sample) and zero input-gradient components per sample;
4. check the output: x's shape, dtype and device, finite, inside [0, 1] and inside the eps-ball (in the
   attack's norm) up to float32 round-off; a violation raises :class:`AttackOutputError` naming the library and the bound.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from .attacks.norms import EPS_TOLERANCE, eps_tolerance  # noqa: F401 (EPS_TOLERANCE: read here by tests)
from .counting import AttackStats, PassCounter, cached_num_classes
from .declaration import Adapter, AttackFn, Declaration
from .spec import AttackSpec
from .state import model_device, restore, snapshot

NORM_NAMES = {"linf": "L∞", "l2": "L2"}


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
    """An :class:`Adapter` made of a library's offers wrapped in the shared guards.

    ``attack_fn`` None runs the declaration's offer for the spec's attack; a function there replaces
    every offer's call (tests plant faults that way). ``last_stats`` holds the :class:`AttackStats` of
    the latest :meth:`generate` call; :meth:`run` returns them together with x_adv (prefer it when
    calls may interleave).
    """

    name: str
    attack_fn: AttackFn | None
    declaration: Declaration
    last_stats: AttackStats | None = field(default=None, compare=False, repr=False)

    def generate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
        """Adversarial examples for ``x`` with true labels ``y``; the model is left exactly as it was."""
        return self.run(model, x, y, spec).x_adv

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> AttackResult:
        """Like :meth:`generate`, but also returns what the call spent."""
        if not isinstance(spec, AttackSpec):
            raise ValueError(f"expected spec to be an adapters.AttackSpec, got {type(spec).__name__}")
        refusal = self.declaration.refusal(spec)
        if refusal:
            raise ValueError(f"{self.name} {refusal}")
        attack_fn = self.attack_fn or self.declaration.offer(spec.attack).call
        result = run_guarded(self.name, attack_fn, model, x, y, spec)
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
    with attack_session(model, x, y, library) as session:  # validates x and y first
        given_x, given_y = x.detach().clone(), y.detach().clone()
        start = time.perf_counter()
        x_adv = attack_fn(session.counter, given_x, given_y, spec, session.num_classes)
        seconds = time.perf_counter() - start
    # The library got copies; one it wrote into would have written into the caller's tensors (ART
    # once added its perturbation in place into the caller's array): the cell is invalid.
    session.state_changes.extend(input_writes(x, y, given_x, given_y))
    check_output(library, x, x_adv, spec)
    return AttackResult(x_adv.detach(), session.counter.stats(library, seconds, session.state_changes))


def input_writes(x: torch.Tensor, y: torch.Tensor, given_x: torch.Tensor, given_y: torch.Tensor) -> list[str]:
    """What a library wrote into the inputs it was given (copies of ``x`` and ``y``), in words."""
    writes = []
    for name, original, given in (("x", x, given_x), ("y", y, given_y)):
        changed = int((given != original).sum()) if given.shape == original.shape else int(original.numel())
        if changed:
            writes.append(f"wrote into its input {name} in place ({changed} values changed)")
    return writes


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


def validate_labels(y: torch.Tensor, num_classes: int) -> None:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"expected labels in [0, {num_classes}) (the model has {num_classes} outputs), got range [{lo}, {hi}]"
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


def check_output(library: str, x: torch.Tensor, x_adv: object, spec: AttackSpec) -> None:
    """Raise :class:`AttackOutputError` unless x_adv has x's shape/dtype/device, is finite, in [0, 1]
    and within eps of x in the attack's norm (up to :func:`~.attacks.norms.eps_tolerance`)."""
    eps = spec.eps
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
    norm = spec.norm
    farthest = float(spec.definition.distance(x_adv, x, spec.params).max())
    tolerance = eps_tolerance(norm, eps)
    if farthest > eps + tolerance:
        raise AttackOutputError(
            library,
            "the eps-ball",
            f"{NORM_NAMES[norm]} distance {farthest:.9g} > eps {eps:.9g} by {farthest - eps:.3g} "
            f"(tolerance {tolerance:.3g})",
            x_adv,
        )
