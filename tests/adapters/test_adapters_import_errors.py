"""A library that cannot be imported here is unavailable; a bug in advparity's own adapter code is not."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from advparity import adapters


@pytest.fixture
def fake_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_lib.py").write_text('raise RuntimeError("the library broke on import")\n')
    (tmp_path / "adapter_of_broken_lib.py").write_text("import broken_lib  # noqa: F401\n")
    (tmp_path / "adapter_missing_name.py").write_text(
        "from broken_lib_api import removed_symbol  # noqa: F401\n"
    )
    (tmp_path / "broken_lib_api.py").write_text("present = 1\n")
    (tmp_path / "adapter_with_a_bug.py").write_text("ADAPTER = undefined_name  # noqa: F821\n")
    yield tmp_path
    for name in (
        "broken_lib",
        "adapter_of_broken_lib",
        "adapter_missing_name",
        "broken_lib_api",
        "adapter_with_a_bug",
    ):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("adapter_of_broken_lib", "RuntimeError: the library broke on import"),
        ("adapter_missing_name", "ImportError: cannot import name 'removed_symbol'"),
    ],
)
def test_a_library_that_fails_on_import_is_unavailable(
    fake_modules: Path, monkeypatch: pytest.MonkeyPatch, module: str, reason: str
) -> None:
    monkeypatch.setitem(adapters._MODULES, "art", module)
    with pytest.raises(adapters.LibraryUnavailable, match="art is installed but cannot run") as err:
        adapters.get("art")
    assert err.value.reason.startswith(reason)
    assert adapters.availability("art").state == "unavailable"


def test_a_bug_in_our_adapter_code_is_an_internal_error(
    fake_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NameError in the adapter module itself is advparity's bug: it propagates (the CLI's exit 3)."""
    monkeypatch.setitem(adapters._MODULES, "art", "adapter_with_a_bug")
    with pytest.raises(NameError, match="undefined_name"):
        adapters.get("art")
    with pytest.raises(NameError):
        adapters.availability("art")
