"""The mutation suite's own trained model: the smoke preset's data, trained with the suite's model
(``suite.SUITE_MODEL``), once per test session. It overrides the shared ``trained`` fixture here only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from advparity.harness import pipeline
from suite import suite_preset


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("mutation_trained")
    preset = suite_preset()
    root = pipeline.prepare_data(preset, out, None, progress=False)
    model = pipeline.train_model(preset, root, out / "model", torch.device("cpu"), progress=False)
    return model.checkpoint, root
