"""Shared fixtures: small synthetic data sets, generated once per session, and a smoke-preset model."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# libgomp's threads spin for up to 300000 rounds before sleeping: on a shared 2-core machine each of
# torch's 2 threads then burns its core waiting for the other (measured: a DenseNet step ~8x slower
# under load). A short spin measured fastest both idle and loaded; it changes how idle threads wait,
# not the thread count or how work is split, so not the numbers. Read when libgomp loads (the first
# `import torch`), and inherited by the subprocesses and Ray workers tests start.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import torch  # noqa: E402
from advparity.harness import pipeline  # noqa: E402
from advparity.harness.config import load_preset  # noqa: E402
from advparity.model.synthetic import SynthSpec, counts_for_total, write_dataset  # noqa: E402

# Test modules that run the pipeline end to end (train, run, report, the CLI, Ray, a wheel), tests that
# train a model or run a full-size DenseNet-121 (their fixtures below), and the mutation suite: marked
# here, in one place, so `make test-fast` (-m "not slow and not e2e and not mutation") keeps the unit
# tests and `make test` still runs everything.
E2E_MODULES = frozenset(
    {
        "harness/test_api.py",
        "harness/test_api_bad_input.py",
        "harness/test_bench.py",
        "harness/test_cli.py",
        "harness/test_cli_bad_input.py",
        "harness/test_kernels.py",
        "harness/test_models.py",
        "harness/test_ray_executor.py",
        "harness/test_runner.py",
        "harness/test_store.py",
        "model/test_train.py",
        "test_package.py",
        "gradcam/test_gradcam_run.py",
        "reports/test_report_browser.py",
        "reports/test_reports_regress.py",
    }
)
E2E_FIXTURES = frozenset({"trained", "smoke_demo", "densenet", "densenet_batch"})
# Single tests elsewhere that train a model.
E2E_TESTS = frozenset(
    {
        "model/test_data.py::test_a_manifest_beside_another_trains_and_runs_from_the_card",
        "model/test_data.py::test_train_model_on_a_three_class_image_folder_records_the_classes",
        "model/test_data.py::test_a_training_set_that_leaves_one_image_over_still_trains",
    }
)
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.resolve().relative_to(TESTS).as_posix()
        if where.startswith("mutation/"):
            item.add_marker(pytest.mark.mutation)
        elif (
            where in E2E_MODULES
            or f"{where}::{item.name}" in E2E_TESTS
            or E2E_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 synthetic images at 32 px in the Kaggle layout (the smallest set that splits 80/10/10)."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    return write_dataset(root, SynthSpec(counts=counts_for_total(160), size=32, seed=7), progress=False)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A smoke-preset checkpoint and its data root, trained once per test session: tests read it and
    write only copies."""
    out = tmp_path_factory.mktemp("trained")
    preset = load_preset("smoke")
    root = pipeline.prepare_data(preset, out, None, progress=False)
    model = pipeline.train_model(preset, root, out / "model", torch.device("cpu"), progress=False)
    return model.checkpoint, root


@pytest.fixture(scope="session")
def smoke_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``python -m advparity demo --preset smoke --out OUT`` (train, attack, Grad-CAM, report) once per
    session, and what it printed: tests read OUT (data/, model/, run/) and write only copies."""
    from advparity.harness.cli import EXIT_OK, main

    out = tmp_path_factory.mktemp("smoke_demo") / "demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["-q", "demo", "--preset", "smoke", "--out", str(out), "--device", "cpu"])
    assert code == EXIT_OK, printed.getvalue()
    return out, printed.getvalue()
