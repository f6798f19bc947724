"""The orchestrator: presets, the pipeline steps and the command line (``python -m harness``).

The Python API — :func:`harness.crosscheck` and ``harness.testing.assert_robust`` — is imported on first
use: ``python -m harness`` must pin CPU kernels (``harness/kernels.py``) before anything imports torch,
and importing this package must not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.api import CrossCheckResult, crosscheck

__all__ = ["CrossCheckResult", "crosscheck"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
