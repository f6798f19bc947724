"""One import package: ``import advparity`` works anywhere, and nothing named ``model`` or ``reports`` is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False)


def test_outside_the_repository_only_advparity_is_importable(tmp_path: Path) -> None:
    """A user's own ``model/`` package must neither shadow ours nor be shadowed by it."""
    found = _python("import advparity, advparity.harness, advparity.model.data, sys; print('ok')", tmp_path)
    assert found.returncode == 0 and found.stdout.strip() == "ok", found.stderr
    for generic in ("model", "reports", "harness", "adapters"):
        missing = _python(f"import {generic}", tmp_path)
        assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr, generic


def test_a_users_own_model_package_does_not_shadow_advparity(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "__init__.py").write_text("MINE = True\n")
    both = _python("import model, advparity.model.data as data; print(model.MINE, data.CLASSES[0])", tmp_path)
    assert both.returncode == 0, both.stderr
    assert both.stdout.split() == ["True", "COVID"]


def test_importing_advparity_loads_no_torch(tmp_path: Path) -> None:
    """``python -m advparity`` pins CPU kernels before torch starts; the package import must not start it."""
    probe = _python(
        "import sys, advparity, advparity.harness, advparity.harness.kernels; print('torch' in sys.modules)",
        tmp_path,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "False", probe.stderr


def test_the_public_names(tmp_path: Path) -> None:
    probe = _python(
        "import advparity\n"
        "from advparity.testing import assert_robust\n"
        "from advparity.harness.api import crosscheck\n"
        "assert advparity.crosscheck is crosscheck and callable(assert_robust)\n"
        "print(advparity.AttackSpec('pgd', eps=1 / 255).steps)",
        tmp_path,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "10", probe.stderr


def test_the_console_script_and_python_dash_m(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("advparity")
    for command in ([str(script)], [sys.executable, "-m", "advparity"]):
        result = subprocess.run(
            [*command, "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "usage: python -m advparity" in result.stdout


def test_the_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    """What ``pip install advparity`` puts in site-packages: ``advparity/`` and its dist-info, nothing else."""
    # Built from a copy: setuptools writes build/ beside the sources, which must not touch the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for name in ("advparity", "harness", "adapters", "model", "reports"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0 and "No module named" in built.stderr:
        pytest.skip(f"cannot build a wheel without isolation here: {built.stderr.strip().splitlines()[-1]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("advparity-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"advparity"}, sorted(tops)
    for expected in (
        "advparity/__main__.py",
        "advparity/harness/cli.py",
        "advparity/harness/presets/ci.toml",
        "advparity/reports/baselines/ci.json",
        "advparity/adapters/art.py",
        "advparity/model/data.py",
    ):
        assert expected in names, expected
