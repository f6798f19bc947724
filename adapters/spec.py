"""The attack specification every adapter takes: which attack, eps, seed, and the attack's parameters.

Values are checked here, once — eps and seed by the spec, the rest by the attack's definition
(``adapters/attacks``) — so that no library sees an eps outside (0, 1] or a float step count.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import attacks
from .attacks.definition import Attack
from .attacks.norms import Norm, check_eps


@dataclass(frozen=True, init=False)
class AttackSpec:
    """One attack configuration, in pixel units (pixels live in [0, 1]).

    ``AttackSpec("pgd", 8 / 255, steps=10, seed=3)``: the attack's registry name, eps, the seed (what
    a random start draws from; ignored by attacks it does not change) and the attack's parameters,
    given as keywords or as ``params`` (its parameter dataclass or a mapping). Parameters the attack
    does not define are a ``ValueError`` naming the attack and its parameters. The parameters read as
    attributes: ``spec.steps``, ``spec.random_start``.
    """

    attack: str
    eps: float
    seed: int
    params: Any

    def __init__(
        self, attack: str, eps: float, seed: int = 0, params: object = None, **values: object
    ) -> None:
        if not isinstance(attack, str) or attack not in attacks.names():
            raise ValueError(f"expected attack to be one of {attacks.names()}, got {attack!r}")
        definition = attacks.get(attack)
        if params is None:
            params = definition.make_params(values)
        elif values:
            raise ValueError(f"expected the parameters as params or as keywords, got both ({sorted(values)})")
        elif isinstance(params, Mapping):
            params = definition.make_params(params)
        elif not isinstance(params, definition.params):
            raise ValueError(
                f"expected params of attack {attack!r} to be a {definition.params.__name__} or a mapping, "
                f"got {type(params).__name__}"
            )
        object.__setattr__(self, "attack", attack)
        object.__setattr__(self, "eps", definition.check_eps(eps, params))
        object.__setattr__(self, "seed", _check_seed(seed))
        object.__setattr__(self, "params", params)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the attack's parameters read as attributes.
        if name.startswith("__") or name == "params":
            raise AttributeError(name)
        params = self.__dict__.get("params")
        if params is not None and name in {f.name for f in dataclasses.fields(params)}:
            return getattr(params, name)
        attack = self.__dict__.get("attack")
        raise AttributeError(f"attack {attack!r} has no parameter {name!r}")

    @property
    def definition(self) -> Attack:
        """The attack's definition (``adapters/attacks``)."""
        return attacks.get(self.attack)

    @property
    def step_size(self) -> float:
        """The step an iterative attack takes: ``alpha``, or ``eps / 4`` when alpha is None."""
        step_size = getattr(self.params, "step_size", None)
        if step_size is None:
            raise AttributeError(f"attack {self.attack!r} takes no steps")
        return float(step_size(self.eps))

    @property
    def label(self) -> str:
        """How a report names this variant: ``FGSM``, ``PGD-10``."""
        return self.definition.label(self.params)

    @property
    def norm(self) -> Norm:
        """The norm eps budgets (``linf`` or ``l2``)."""
        return self.definition.norm_of(self.params)

    @property
    def seeded(self) -> bool:
        """Whether the seed changes the output (a random start)."""
        return self.definition.seeded(self.params)


def _check_seed(seed: object) -> int:
    # NumPy's global seed (what ART's random start draws from) must lie in [0, 2**32).
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"expected seed to be an integer, got {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"expected seed in [0, 2**32), got {seed}")
    return int(seed)


def as_eps_list(eps_list: Sequence[float], norm: Norm = "linf") -> list[float]:
    """Validate a grid of eps values in ``norm`` (L∞: each in (0, 1]) and return them as Python floats."""
    if len(eps_list) == 0:
        raise ValueError("expected at least one eps, got an empty list")
    return [check_eps(eps, norm) for eps in eps_list]
