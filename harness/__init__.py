"""The orchestrator: presets, the pipeline steps and the command line (``python -m advparity``).

The Python API — :func:`advparity.crosscheck` and ``advparity.testing.assert_robust`` — is imported on
first use: ``python -m advparity`` must pin CPU kernels (``harness/kernels.py``) before anything imports
torch, and importing this package must not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advparity.harness.api import CrossCheckResult, crosscheck

__all__ = ["CrossCheckResult", "crosscheck"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from advparity.harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'advparity.harness' has no attribute {name!r}")
