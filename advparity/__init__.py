"""advparity: do the adversarial-attack libraries compute the attacks they claim, and how robust is a model?

The public interface::

    import advparity

    result = advparity.crosscheck(model, images, labels, eps=["1/255", "4/255"], steps=10)
    from advparity.testing import assert_robust   # a robustness regression test for your own suite
    spec = advparity.AttackSpec("pgd", eps=4 / 255, steps=10)

and the command line, ``python -m advparity`` (or the ``advparity`` script). The subpackages are the
repository's top-level folders, installed under this name (``pyproject.toml``'s package-dir):
``advparity.model`` (data, networks, training), ``advparity.adapters`` (one per attack library),
``advparity.harness`` (presets, runner, CLI) and ``advparity.reports`` (verdicts, tables, report).

Importing this package imports no torch: ``python -m advparity`` must pin CPU kernels before torch starts
(``advparity/harness/kernels.py``), so the API is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advparity.adapters.spec import AttackSpec
    from advparity.harness.api import CrossCheckResult, crosscheck

__all__ = ["AttackSpec", "CrossCheckResult", "crosscheck"]

# name -> the module it lives in, imported when first asked for.
_LAZY = {
    "crosscheck": "advparity.harness.api",
    "CrossCheckResult": "advparity.harness.api",
    "AttackSpec": "advparity.adapters.spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'advparity' has no attribute {name!r}")
