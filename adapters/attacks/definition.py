"""What an attack is, independent of any library: the contract every attack module fills in.

An attack module (``fgsm.py``, ``pgd.py``) defines one :class:`Attack` subclass and one frozen
dataclass of its parameters; ``attacks/__init__.py`` registers it by name. Everything the rest of the
project needs to know about an attack is asked of its definition: which parameters it takes (and
their checks), what it is called in a report, whether a seed changes it, what a textbook
implementation spends, where its reference starts, what the reference computes from a given start,
and how far an x_adv is from x in the attack's norm. Nothing outside the attack's module branches on
its name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from . import restarts, targets
from .norms import Norm, check_eps, distance

LossReduction = Literal["sum", "mean"]
LOSS_REDUCTIONS: tuple[str, ...] = ("sum", "mean")


@dataclasses.dataclass(frozen=True)
class NoParams:
    """The parameters of an attack that has none besides eps (FGSM)."""


class Attack:
    """One attack's definition. Subclasses set the class attributes and implement :meth:`reference`.

    ``params`` is a frozen dataclass whose fields are the attack's parameters, with their defaults,
    checked in its ``__post_init__`` (``ValueError`` saying expected vs got).
    """

    name: ClassVar[str]
    # The norm of an attack without a ``norm`` parameter; one with it (FGSM, PGD) is in either norm.
    norm: ClassVar[Norm] = "linf"
    params: ClassVar[type] = NoParams
    # Keys a preset's [[attacks]] table may set besides ``attack`` and ``eps``; each is parsed by
    # :meth:`preset_params`. An attack's parameters and its preset keys can differ (a preset writes
    # alpha as the rule "eps/4", a spec holds the step itself).
    preset_keys: ClassVar[tuple[str, ...]] = ()

    # --- parameters -------------------------------------------------------------------------------

    def make_params(self, values: Mapping[str, Any]) -> Any:
        """The attack's parameter dataclass from ``values``; an unknown key names the attack and its keys."""
        known = [f.name for f in dataclasses.fields(self.params)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"attack {self.name!r} has no parameter(s) {unknown}; expected some of {known}"
                if known
                else f"attack {self.name!r} takes no parameters besides eps and seed, got {unknown}"
            )
        return self.params(**values)

    def norm_of(self, params: Any) -> Norm:
        """The norm ``params`` budget eps in: their ``norm`` field where the attack has one."""
        norm: Norm = getattr(params, "norm", self.norm)
        return norm

    def check_eps(self, eps: object, params: Any) -> float:
        """eps as a Python float, checked for the attack's norm (``ValueError`` otherwise)."""
        return check_eps(eps, self.norm_of(params))

    def preset_params(self, table: Mapping[str, Any], eps: float) -> Any:
        """The parameters of one cell of a preset's ``[[attacks]]`` entry at ``eps`` (keys: :attr:`preset_keys`)."""
        return self.make_params(dict(table))

    def check_preset(self, table: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the attack and its keys for a key it does not define, or a value
        :meth:`preset_params` refuses (tried at eps = 1/255)."""
        unknown = sorted(set(table) - set(self.preset_keys))
        if unknown:
            keys = ["attack", "eps", "libraries", *self.preset_keys]
            raise ValueError(f"attack {self.name!r} has no key(s) {unknown}; expected some of {keys}")
        self.preset_params(table, 1 / 255)

    def check_classes(self, params: Any, num_classes: int) -> None:
        """``ValueError`` where ``params`` cannot attack a model of ``num_classes`` classes (a target
        class per class that does not list one each, a loss that needs more classes): checked before
        a run writes anything."""
        targets.check_classes(getattr(params, "target_labels", None), num_classes)

    def variants(self, params: Any) -> tuple[str, ...]:
        """The optional variants ``params`` ask for — parameters beyond the attack's textbook form, such
        as FGSM's random start — by name. A library's offer lists the variants it computes
        (:attr:`~advparity.adapters.declaration.Offer.variants`) and is refused the others, so that a
        library which ignores the parameter never runs the plain attack in its place."""
        return ()

    def shares_gradient_across_eps(self, params: Any) -> bool:
        """True where one gradient serves every eps of a grid (FGSM without a random start): the runner
        then judges a whole eps grid as one group and the reference computes it with :meth:`reference_grid`."""
        return False

    # --- what the report shows --------------------------------------------------------------------

    def label(self, params: Any) -> str:
        """One name per distinct variant, as a report prints it: ``FGSM``, ``PGD-10``."""
        return self.name.upper()

    def seeded(self, params: Any) -> bool:
        """Whether the seed changes the attack's output (a random start does; FGSM's single step does not)."""
        return False

    def columns(self, params: Any, eps: float) -> dict[str, Any]:
        """The values of the results rows' ``steps``, ``alpha`` and ``random_start`` columns."""
        return {"steps": 1, "alpha": eps, "random_start": False}

    def params_from_columns(self, columns: Mapping[str, Any]) -> Any:
        """The parameters behind :meth:`columns` — how a run recorded before results rows carried a
        ``params`` column is read back: the columns this attack's parameters define (a NumPy scalar, as
        a frame holds it, as the Python value the parameters check for)."""
        known = {f.name for f in dataclasses.fields(self.params)}
        return self.make_params(
            {k: v.item() if hasattr(v, "item") else v for k, v in columns.items() if k in known}
        )

    def cell_key(self, params: Any) -> str:
        """The part of a cell's file name that tells this attack's variants apart."""
        # A parameter left at None (untargeted) adds nothing, so a new optional parameter keeps old keys.
        return (
            "__".join(
                f"{k}{_key_value(v)}" for k, v in sorted(dataclasses.asdict(params).items()) if v is not None
            )
            or "default"
        )

    # --- what it computes -------------------------------------------------------------------------

    def passes(self, params: Any) -> tuple[float, float]:
        """(forward, backward) passes per sample of a textbook implementation: one of each per gradient."""
        return (1.0, 1.0)

    def default_start(self, x: torch.Tensor, eps: float, params: Any, seed: int) -> torch.Tensor:
        """Where the reference's own attack starts: x itself unless the attack draws a random start."""
        return x

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: Any,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The attack computed from ``start`` with the loss reduced by ``reduction``: x_adv and each
        pixel's gradient floor (``reference.relative_magnitude``, minimum over the attack's gradients).

        ``arithmetic``: how one library rounds the same mathematics (a library's offer declares it,
        e.g. a :class:`~.geometry.Geometry`); None for the definition's own."""
        raise NotImplementedError

    def from_starts(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: Any,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
        selection: restarts.Selection | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`reference` from each start of ``start`` (one, or ``restarts.py``'s k stacked), with
        the restart each sample keeps chosen by ``selection`` (None: the definition's own rule)."""
        if restarts.count(params) == 1:
            return self.reference(model, x, y, eps, params, start, reduction, arithmetic)
        candidates = [self.reference(model, x, y, eps, params, one, reduction, arithmetic) for one in start]
        chosen = selection or restarts.LAST_SUCCESS
        return restarts.select(model, x, y, candidates, chosen, targeted_of(params))

    def reference_grid(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps_list: Sequence[float],
        params: Any,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`reference` at every eps of a grid, each from :meth:`default_start` (seed 0)."""
        return {
            eps: self.from_starts(
                model, x, y, eps, params, self.default_start(x, eps, params, 0), reduction, arithmetic
            )
            for eps in eps_list
        }

    def distance(self, a: torch.Tensor, b: torch.Tensor, params: Any = None) -> torch.Tensor:
        """Per-sample distance in the norm of ``params`` (float64 ``[N]``): what their eps budgets."""
        return distance(self.norm_of(params), a, b)


def targeted_of(params: Any) -> bool:
    """Whether ``params`` ask for a targeted attack (``targets.py``: the labels are then the targets)."""
    return getattr(params, "targeted", None) is not None


def arithmetic_note(arithmetic: Any) -> str:
    """How an offer's ``arithmetic`` rounds the attack, in a few words, as the report quotes it
    beside an agreement ('' for the definition's own)."""
    return "" if arithmetic is None else str(getattr(arithmetic, "note", "") or type(arithmetic).__name__)


def _key_value(value: object) -> str:
    if isinstance(value, tuple):
        return "-".join(_key_value(v) for v in value)
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.9g}"
    return str(value)
