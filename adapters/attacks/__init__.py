"""The attacks advparity knows, by registry name: one module per attack, one line each below.

    >>> from advparity.adapters import attacks
    >>> attacks.names()
    ['fgsm', 'pgd', 'bim', 'mifgsm', 'apgd']
    >>> attacks.get("pgd").label(attacks.get("pgd").make_params({"steps": 10}))
    'PGD-10'

Adding an attack is one module defining an :class:`~.definition.Attack` subclass (``docs/development.md``)
and one :func:`register` line here; each library then offers it in its adapter (``adapters/declaration.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from . import apgd, bim, fgsm, mifgsm, pgd
from .definition import LOSS_REDUCTIONS, Attack, LossReduction, NoParams
from .norms import NORMS, Norm, distance

__all__ = [
    "LOSS_REDUCTIONS",
    "NORMS",
    "Attack",
    "LossReduction",
    "NoParams",
    "Norm",
    "distance",
    "get",
    "names",
    "register",
    "registered",
]

_REGISTRY: dict[str, Attack] = {}


def register(attack: Attack) -> Attack:
    """Add ``attack`` under its name; a second attack of the same name is refused."""
    if not isinstance(attack, Attack):
        raise ValueError(f"expected an attacks.Attack, got {type(attack).__name__}")
    if attack.name in _REGISTRY:
        raise ValueError(f"an attack named {attack.name!r} is already registered")
    _REGISTRY[attack.name] = attack
    return attack


@contextlib.contextmanager
def registered(attack: Attack) -> Iterator[Attack]:
    """``attack`` registered for the duration of a ``with`` block (tests, experiments)."""
    register(attack)
    try:
        yield attack
    finally:
        del _REGISTRY[attack.name]


def names() -> list[str]:
    """Registry names, in the order reports list attacks."""
    return list(_REGISTRY)


def get(name: str) -> Attack:
    """The attack registered as ``name``; ``ValueError`` naming the known ones otherwise."""
    attack = _REGISTRY.get(name) if isinstance(name, str) else None
    if attack is None:
        raise ValueError(f"expected an attack among {names()}, got {name!r}")
    return attack


register(fgsm.ATTACK)
register(pgd.ATTACK)
register(bim.ATTACK)
register(mifgsm.ATTACK)
register(apgd.ATTACK)
