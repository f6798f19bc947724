"""One attack interface over ART, torchattacks, Foolbox, secml-torch, adv-lib, DeepRobust, advertorch,
CleverHans and the original AutoAttack, judged by a plain-PyTorch reference.

    >>> from advparity import adapters
    >>> adapters.names()
    ['reference', 'art', 'torchattacks', 'foolbox', 'secml-torch', 'adv-lib', 'deeprobust', 'advertorch',
     'cleverhans', 'autoattack']
    >>> spec = adapters.AttackSpec("pgd", eps=1 / 255)          # steps=10, alpha=eps/4, random start
    >>> x_adv = adapters.get("art").generate(model, x, y, spec)  # doctest: +SKIP
    >>> result = adapters.run_attack(adapters.get("art"), model, x, y, spec)  # doctest: +SKIP
    >>> result.stats.backward_passes_per_sample  # doctest: +SKIP
    10.0

``x`` is float32 ``[N, C, H, W]`` in [0, 1] (normalisation is the model's first layer), ``y`` int64
``[N]`` true labels. Every adapter runs behind the same guards (``adapters/base.py``): inputs are
validated before any library runs, the model runs in eval mode with gradients enabled, its modes,
parameters, buffers and ``.grad`` are restored afterwards, and the output is checked against [0, 1]
and the eps-ball (:class:`AttackOutputError`). :func:`run_attack` also returns the passes per sample
and the zero-gradient counts that hooks measured (:class:`AttackStats`).

Adding a library
----------------
1. Write ``adapters/<lib>.py``: per attack it offers, one call
   ``(model, x, y, spec, num_classes) -> x_adv`` that maps every field of the spec onto the library's
   own attack class — set every hyper-parameter explicitly, pass the true labels, seed its random
   start inside ``rng.seeded_global_rngs(spec.seed, x.device)`` — and end the file with
   ``ADAPTER = GuardedAdapter(name="<lib>", attack_fn=None, declaration=Declaration(offers={...}))``.
   No guards there: base.py has them.
   Each :class:`~.declaration.Offer` is what the cross-check holds the library to for that attack: its
   call, its loss reduction (sum or mean), its forward/backward passes per sample, ``start(x, spec)``
   (the library's random start reproduced from the same random draws, read from its source; ``None``
   where it cannot be reproduced — its seeded cells are then only judged statistically), ``refuses``
   (a spec the library cannot express, e.g. DeepRobust's PGD always draws a start) and ``departure``
   (where its attack is measured to be a different one, in words the verdict quotes; those cells still
   disagree). An attack without an offer is refused by name; a run plans no cells for it.
2. Add one line ``"<lib>": "advparity.adapters.<lib>",`` to ``_MODULES`` below (its place there is the
   place reports list it in); its display name to ``DISPLAY_NAMES`` where that is not ``<lib>``; for an
   optional library, its pip distribution to ``DISTRIBUTIONS`` and its extra to ``EXTRAS`` (and
   ``pyproject.toml``), so that a missing one is skipped with one line and a broken one is reported as
   unavailable.
3. Run ``pytest tests/adapters``: the parity, state, pass-count and declaration tests iterate over
   :func:`runnable` (``test_adapters_declared.py`` checks that the library's output equals the x_adv
   built from its declaration bit for bit); add the library's measured pass counts to
   ``tests/adapters/test_adapters_passes.py`` and mutants of it to ``tests/mutation``
   (an optional library's in ``mutants_<module>.py``, listed in ``OPTIONAL_MUTANT_MODULES``).

Adding an attack is one module in ``adapters/attacks`` (see its ``__init__``) and one offer per library.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from typing import Literal

from .base import AttackOutputError, AttackResult, GuardedAdapter, run_attack
from .counting import AttackStats
from .declaration import Adapter, Declaration, Offer
from .spec import AttackSpec

__all__ = [
    "Adapter",
    "AttackOutputError",
    "AttackResult",
    "AttackSpec",
    "AttackStats",
    "Declaration",
    "Offer",
    "GuardedAdapter",
    "Availability",
    "CORE_LIBRARIES",
    "LibraryUnavailable",
    "availability",
    "display_name",
    "get",
    "names",
    "run_attack",
    "runnable",
]

# Imported on first use: ART alone takes seconds to import, and a run may not need every library.
_MODULES: dict[str, str] = {
    "reference": "advparity.adapters.reference",
    "art": "advparity.adapters.art",
    "torchattacks": "advparity.adapters.torchattacks",
    "foolbox": "advparity.adapters.foolbox",
    "secml-torch": "advparity.adapters.secml_torch",
    "adv-lib": "advparity.adapters.adv_lib",
    "deeprobust": "advparity.adapters.deeprobust",
    "advertorch": "advparity.adapters.advertorch",
    "cleverhans": "advparity.adapters.cleverhans",
    "autoattack": "advparity.adapters.autoattack",
}

# How reports write a library's name where it is not the registry name. Here rather than on the
# adapter: a library that cannot be imported here is named too. The runner records them in the
# manifest (reports import no adapters).
DISPLAY_NAMES: dict[str, str] = {
    "art": "ART",
    "foolbox": "Foolbox",
    "deeprobust": "DeepRobust",
    "cleverhans": "CleverHans",
    "autoattack": "AutoAttack",
}

# The libraries advparity depends on (always installed); the others are optional extras.
CORE_LIBRARIES: tuple[str, ...] = ("art", "torchattacks", "foolbox")

# The pip distribution behind each library, to tell "not installed" from "installed but cannot run",
# and the advparity extra that installs it (``pip install 'advparity[<extra>]'``); the core three are
# dependencies of advparity itself.
DISTRIBUTIONS: dict[str, str] = {
    "art": "adversarial-robustness-toolbox",
    "torchattacks": "torchattacks",
    "foolbox": "foolbox",
    "secml-torch": "secml-torch",
    "adv-lib": "adv-lib",
    "deeprobust": "deeprobust",
    "advertorch": "advertorch",
    "cleverhans": "cleverhans",
    "autoattack": "pyautoattack",
}
EXTRAS: dict[str, str] = {
    "secml-torch": "secml",
    "adv-lib": "adv-lib",
    "deeprobust": "deeprobust",
    "advertorch": "advertorch",
    "cleverhans": "cleverhans",
    "autoattack": "autoattack",
}

AvailabilityState = Literal["ready", "not installed", "unavailable"]


class LibraryUnavailable(ImportError):
    """A library that is installed but cannot be imported or set up; ``reason`` is its error."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} is installed but cannot run: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Availability:
    """Whether an adapter can run here: ``ready``, ``not installed`` (skipped with one line) or
    ``unavailable`` (installed but broken: the run records it and its verdict says why)."""

    name: str
    state: AvailabilityState
    reason: str = ""
    version: str = ""


def _install_hint(name: str) -> str:
    extra = EXTRAS.get(name)
    return f"pip install 'advparity[{extra}]'" if extra else f"pip install {DISTRIBUTIONS[name]}"


def availability(name: str) -> Availability:
    """Import ``name``'s adapter (and with it the library) and say whether it can run here."""
    if name not in _MODULES:
        raise ValueError(f"expected an adapter name in {names()}, got {name!r}")
    version = ""
    if name in DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(DISTRIBUTIONS[name])
        except importlib.metadata.PackageNotFoundError:
            return Availability(
                name, "not installed", f"{DISTRIBUTIONS[name]} is not installed ({_install_hint(name)})"
            )
    try:
        get(name)
    except LibraryUnavailable as err:
        return Availability(name, "unavailable", err.reason, version)
    return Availability(name, "ready", "", version)


def runnable() -> list[str]:
    """The adapters whose library can run here (:func:`availability` is ``ready``), the reference first."""
    return [name for name in names() if availability(name).state == "ready"]


def _raised_in_adapter(err: BaseException, module_name: str) -> bool:
    """Whether ``err`` was raised by the adapter module's own code (its innermost frame is in that file)."""
    spec = importlib.util.find_spec(module_name)
    tb = err.__traceback__
    if spec is None or spec.origin is None or tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.realpath(tb.tb_frame.f_code.co_filename) == os.path.realpath(spec.origin)


def names() -> list[str]:
    """Adapter names, the reference first."""
    return list(_MODULES)


def display_name(name: str) -> str:
    """How reports write the library ``name`` (one of :func:`names`): ``ART``, ``Foolbox``, ``torchattacks``."""
    if name not in _MODULES:
        raise ValueError(f"expected an adapter name in {names()}, got {name!r}")
    return DISPLAY_NAMES.get(name, name)


def get(name: str) -> GuardedAdapter:
    """The adapter called ``name`` (one of :func:`names`); :class:`LibraryUnavailable` where its library
    is missing or cannot be imported (:func:`availability` tells which)."""
    if name not in _MODULES:
        raise ValueError(f"expected an adapter name in {names()}, got {name!r}")
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as err:
        # The library (or something it needs) cannot be imported here: its state on this machine.
        raise LibraryUnavailable(name, f"{type(err).__name__}: {err}") from err
    except Exception as err:
        if _raised_in_adapter(err, _MODULES[name]):
            raise  # a bug in advparity's own adapter code (a NameError, say): an internal error
        # Anything else raised while the installed library imports (a symbol removed from torch, a
        # dependency's API change) is that library's state on this machine, not advparity's bug.
        raise LibraryUnavailable(name, f"{type(err).__name__}: {err}") from err
    adapter: GuardedAdapter = module.ADAPTER
    return adapter
