"""Shared fixtures: small synthetic data sets, generated once per session, and a smoke-preset model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import torch  # noqa: E402
from advparity.harness import pipeline  # noqa: E402
from advparity.harness.config import load_preset  # noqa: E402
from advparity.model.synthetic import SynthSpec, counts_for_total, write_dataset  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 synthetic images at 32 px in the Kaggle layout (the smallest set that splits 80/10/10)."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    return write_dataset(root, SynthSpec(counts=counts_for_total(160), size=32, seed=7), progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A smoke-preset checkpoint and its data root (trained once for this module)."""
    out = tmp_path_factory.mktemp("trained")
    preset = load_preset("smoke")
    root = pipeline.prepare_data(preset, out, None, progress=False)
    model = pipeline.train_model(preset, root, out / "model", torch.device("cpu"), progress=False)
    return model.checkpoint, root
