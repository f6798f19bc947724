"""One attack interface over ART, torchattacks, Foolbox and secml-torch, judged by a plain-PyTorch reference.

    >>> import adapters
    >>> adapters.names()
    ['reference', 'art', 'torchattacks', 'foolbox', 'secml-torch']
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
1. Write ``adapters/<lib>.py`` with one function
   ``_attack(model, x, y, spec, num_classes) -> x_adv`` that maps every field of the spec onto the
   library's own FGSM/PGD classes — set every hyper-parameter explicitly, pass the true labels, seed
   its random start inside ``base.seeded_global_rngs(spec.seed, x.device)`` — and end the file with
   ``ADAPTER = GuardedAdapter(name="<lib>", attack_fn=_attack, declaration=Declaration(...))``. No
   guards there: base.py has them.
   The :class:`Declaration` is what the cross-check holds the library to: its loss reduction (sum or
   mean), its forward/backward passes per sample for a spec, and ``start(x, spec)``, the library's PGD
   random-start point reproduced from the same random draws (read the library's source; ``None``
   where it cannot be reproduced — its random-start PGD is then only judged statistically).
2. Add one line ``"<lib>": "adapters.<lib>",`` to ``_MODULES`` below.
3. Run ``pytest tests/adapter_suite``: the parity, state, pass-count and declaration tests iterate over
   ``names()`` (``test_adapters_declared.py`` checks that the library's output equals the x_adv built
   from its declaration bit for bit); add the library's measured pass counts to
   ``tests/adapter_suite/test_adapters_passes.py`` and mutants of it to ``tests/mutation_suite``.
"""

from __future__ import annotations

import importlib

from .base import (
    Adapter,
    AttackOutputError,
    AttackResult,
    AttackSpec,
    AttackStats,
    Declaration,
    GuardedAdapter,
    run_attack,
)

__all__ = [
    "Adapter",
    "AttackOutputError",
    "AttackResult",
    "AttackSpec",
    "AttackStats",
    "Declaration",
    "GuardedAdapter",
    "get",
    "names",
    "run_attack",
]

# Imported on first use: ART alone takes seconds to import, and a run may not need every library.
_MODULES: dict[str, str] = {
    "reference": "adapters.reference",
    "art": "adapters.art",
    "torchattacks": "adapters.torchattacks",
    "foolbox": "adapters.foolbox",
    "secml-torch": "adapters.secml_torch",
}


def names() -> list[str]:
    """Adapter names, the reference first."""
    return list(_MODULES)


def get(name: str) -> GuardedAdapter:
    """The adapter called ``name`` (one of :func:`names`)."""
    if name not in _MODULES:
        raise ValueError(f"expected an adapter name in {names()}, got {name!r}")
    adapter: GuardedAdapter = importlib.import_module(_MODULES[name]).ADAPTER
    return adapter
