"""What each library offers, read from its declaration: the table the README prints.

One column per attack and option a user asks for in a preset; per library ✓ (computed, and judged bit
for bit), "departs" (computed, but another algorithm: the cell disagrees, its verdict quotes the
departure) or — (refused: no cell, one line saying so). Built from the declarations, not written by
hand, so a test can hold the documentation to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .declaration import Declaration
from .spec import AttackSpec

_EPS = 1 / 255

# (column, the spec it stands for). Targeted BIM and MI-FGSM follow the library's BIM and MI-FGSM.
COLUMNS: tuple[tuple[str, AttackSpec], ...] = (
    ("FGSM", AttackSpec("fgsm", _EPS)),
    ("FGM-L2", AttackSpec("fgsm", 0.5, norm="l2")),
    ("FGSM-RS", AttackSpec("fgsm", _EPS, random_start=True)),
    ("PGD", AttackSpec("pgd", _EPS)),
    ("PGD-L2", AttackSpec("pgd", 0.5, norm="l2")),
    ("BIM", AttackSpec("bim", _EPS)),
    ("MI-FGSM", AttackSpec("mifgsm", _EPS)),
    ("PGD restarts", AttackSpec("pgd", _EPS, restarts=3)),
    ("FGSM-RS restarts", AttackSpec("fgsm", _EPS, random_start=True, restarts=3)),
    ("targeted PGD", AttackSpec("pgd", _EPS, targeted="least-likely")),
    ("targeted FGSM", AttackSpec("fgsm", _EPS, targeted="least-likely")),
    ("APGD", AttackSpec("apgd", _EPS)),
    ("APGD-T", AttackSpec("apgd", _EPS, loss="dlr", targets=3)),
)


def offer_mark(declaration: Declaration, spec: AttackSpec) -> str:
    """✓, "departs" or — for one library and spec."""
    if not declaration.accepts(spec):
        return "—"
    return "departs" if declaration.departure(spec) else "✓"


def offers_table(declarations: Sequence[tuple[str, Declaration]]) -> str:
    """A Markdown table: one row per (library name, declaration), one column per :data:`COLUMNS`."""
    lines = [
        "| library | " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, declaration in declarations:
        marks = [offer_mark(declaration, spec) for _, spec in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(marks) + " |")
    return "\n".join(lines)
