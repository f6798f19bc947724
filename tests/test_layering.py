"""The packages' layering, read from every module's imports (function-level ones included):

- ``model`` and ``adapters`` import nothing else of ours;
- ``reports`` imports nothing of ours but ``model.jsonfile``, and neither torch nor anything built on it:
  the run directory is the only interface between running and reporting;
- ``harness`` may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "adapters", "reports")
# What each package may import of ours, besides itself.
ALLOWED: dict[str, tuple[str, ...]] = {
    "model": (),
    "adapters": (),
    "reports": ("advparity.model.jsonfile",),
}
# Third-party modules reports must not import: they need torch.
TORCH_BASED = ("torch", "torchvision", "pytorch_grad_cam", "safetensors.torch")


def _imports(path: Path, package: str, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = ["advparity", package, *path.relative_to(root / package).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # "from advparity import adapters" imports a package by name.
            found += [
                (node.lineno, f"{module}.{alias.name}") for alias in node.names if module == "advparity"
            ]
    return found


def _ours(module: str) -> bool:
    return module == "advparity" or module.startswith("advparity.")


def _violations(package: str, root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in _imports(path, package, root):
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if _ours(module):
                inside = module == f"advparity.{package}" or module.startswith(f"advparity.{package}.")
                allowed = any(module == a or module.startswith(f"{a}.") for a in ALLOWED[package])
                if module != "advparity" and not inside and not allowed:
                    bad.append(where)
            elif package == "reports" and any(module == t or module.startswith(f"{t}.") for t in TORCH_BASED):
                bad.append(where)
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_follow_the_layering(package: str) -> None:
    assert _violations(package) == []


def test_the_check_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The walk must find an import hidden in a function and resolve a relative one."""
    found = {module for _, module in _imports(ROOT / "adapters" / "base.py", "adapters")}
    assert "advparity.adapters.counting" in found  # from .counting import ...
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "probe.py").write_text(
        "from . import schema\n\ndef f():\n    from advparity.harness import runner\n    import torch\n",
        encoding="utf-8",
    )
    assert _violations("reports", tmp_path) == [
        "reports/probe.py:4 imports advparity.harness",
        "reports/probe.py:5 imports torch",
    ]
