"""Plant the two states a library can be in besides ready, for the tests of availability, runs and reports.

Importable by name from every test folder, like ``small_nets``.
"""

from __future__ import annotations

import importlib.metadata
import sys

import pytest


def pretend_not_installed(monkeypatch: pytest.MonkeyPatch, distribution: str) -> None:
    """``importlib.metadata`` no longer finds ``distribution``; every other one is found as before."""
    real_version = importlib.metadata.version

    def version(dist: str) -> str:
        if dist == distribution:
            raise importlib.metadata.PackageNotFoundError(dist)
        return real_version(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)


def pretend_broken_import(
    monkeypatch: pytest.MonkeyPatch, distribution: str, module: str, adapter_module: str, version: str
) -> None:
    """``distribution`` is installed at ``version`` but ``import <module>`` raises ImportError — what
    advertorch 0.2.3 does under current torch — and its adapter module is imported afresh."""
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda dist: version if dist == distribution else real_version(dist)
    )
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` raises ImportError
    monkeypatch.delitem(sys.modules, adapter_module, raising=False)
