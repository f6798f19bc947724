"""Shared fixtures: small synthetic data sets, generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from model.synthetic import SynthSpec, counts_for_total, write_dataset  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 synthetic images at 32 px in the Kaggle layout (the smallest set that splits 80/10/10)."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    return write_dataset(root, SynthSpec(counts=counts_for_total(160), size=32, seed=7), progress=False)
