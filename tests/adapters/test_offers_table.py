"""The README's table of what each library offers is the one its declaration gives."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from advparity.adapters.offers import COLUMNS, offer_mark, offers_table
from advparity.adapters.spec import AttackSpec
from support.adapter_checks import LIBRARIES

from advparity import adapters

README = Path(__file__).resolve().parents[2] / "README.md"


def _pinned() -> dict[str, str]:
    """The releases ``make install`` pins (Makefile ``NAME==VERSION``): the ones the README documents."""
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    return dict(re.findall(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9_.]*)", makefile))


def test_the_documented_table_is_the_declarations() -> None:
    documented = README.read_text(encoding="utf-8")
    header = offers_table([]).splitlines()
    assert "\n".join(header) in documented
    # Each library that runs here: its row as its declaration gives it (the others are documented
    # from the same function where they run).
    pinned = _pinned()
    for name in LIBRARIES:
        distribution = adapters.DISTRIBUTIONS[name]
        if importlib.metadata.version(distribution) != pinned.get(distribution):
            continue  # another release than the README documents (tox's libs-oldest): its offers may differ
        row = offers_table([(name, adapters.get(name).declaration)]).splitlines()[-1]
        assert row in documented.splitlines(), f"README.md should have the row\n{row}"


def test_a_mark_says_refused_departs_or_computed() -> None:
    reference = adapters.get("reference").declaration
    assert all(offer_mark(reference, spec) == "✓" for _, spec in COLUMNS)
    if "adv-lib" in LIBRARIES:
        declaration = adapters.get("adv-lib").declaration
        assert offer_mark(declaration, AttackSpec("fgsm", 1 / 255)) == "—"
        assert offer_mark(declaration, AttackSpec("pgd", 1 / 255)) == "departs"
