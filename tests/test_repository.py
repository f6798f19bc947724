"""The repository stands on its own: its licence matches pyproject.toml, every link in the README and docs
resolves to a file in the repository, no source cites a document that is not in it, and ``make clean``
leaves results alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from advparity.harness.config import tomllib  # the standard library's, or tomli before Python 3.11

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# Markdown links and images: [text](target) — relative targets only.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_licence_file_matches_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"][
        "text"
    ]
    assert declared == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    missing = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            missing.append(target)
    assert missing == [], f"{page.name} links to files that are not in the repository: {missing}"


def test_no_source_cites_a_document_outside_the_repository() -> None:
    sources = [
        p
        for pattern in ("*.py", "*.toml", "*.md", "Makefile", "*.ini")
        for p in ROOT.rglob(pattern)
        if not any(
            part.startswith(".") or part in {"runs", "build"} or part.endswith(".egg-info")
            for part in p.relative_to(ROOT).parts
        )
    ]
    assert len(sources) > 50
    citing = [
        str(p.relative_to(ROOT))
        for p in sources
        if p.name != "test_repository.py"
        and re.search(r"DESIGN\.md|shared/paper", p.read_text(encoding="utf-8"))
    ]
    assert citing == []


def test_make_clean_leaves_results_alone() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^clean:\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe is not None
    assert "runs" not in recipe.group(1) and "DEMO_OUT" not in recipe.group(1)
