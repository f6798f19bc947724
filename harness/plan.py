"""Which cells a run holds: every library x attack x eps (x seed) of the preset's grid, and how they group.

Cells that share the reference's adversarial images form a *group* (:meth:`Cell.group`): every eps of
an attack that shares its gradient across eps (FGSM) together, else one group per eps, parameters and
seed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from advparity.adapters import attacks as attack_registry
from advparity.harness.config import AttackConfig, eps_label
from advparity.harness.store import Cell

REFERENCE = "reference"


def plan_cells(
    config: AttackConfig,
    libraries: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
    eps: Sequence[float] | None = None,
) -> list[Cell]:
    """The preset's grid, optionally narrowed; filters outside the grid are errors, not no-ops.

    A seeded attack (a random start) runs every reference seed for the reference and every library
    seed for the libraries; an unseeded one runs once, as seed 0.
    """
    grids = config.grids
    _check_subset("--libraries", libraries, config.libraries)
    _check_subset("--attacks", attacks, list(dict.fromkeys(grid.attack for grid in grids)))
    _check_subset(
        "--eps",
        [eps_label(e) for e in eps] if eps is not None else None,
        [eps_label(e) for e in {e for grid in grids for e in grid.eps}],
    )
    chosen_libraries = [lib for lib in config.libraries if libraries is None or lib in libraries]
    cells = []
    for grid in grids:
        if attacks is not None and grid.attack not in attacks:
            continue
        definition = attack_registry.get(grid.attack)
        for e in grid.eps:
            if eps is not None and e not in eps:
                continue
            params = grid.params(e)
            for library in (lib for lib in chosen_libraries if grid.runs(lib)):
                seeds = (
                    (config.reference_seeds if library == REFERENCE else config.library_seeds)
                    if definition.seeded(params)
                    else (0,)
                )
                cells.extend(Cell(library, grid.attack, e, seed, params) for seed in seeds)
    return cells


def grid_eps(config: AttackConfig, cell: Cell) -> list[float]:
    """Every eps of the run at which ``cell``'s attack runs with ``cell``'s parameters, sorted: what
    the reference computes together where the attack shares its gradient across eps (FGSM)."""
    return sorted(
        {
            e
            for grid in config.grids
            if grid.attack == cell.attack
            for e in grid.eps
            if grid.params(e) == cell.params
        }
    )


def _check_subset(flag: str, chosen: Sequence[str] | None, allowed: Sequence[str]) -> None:
    if chosen is None:
        return
    if not chosen:
        raise ValueError(f"{flag}: expected one or more of {sorted(allowed)}, got none")
    outside = list(dict.fromkeys(c for c in chosen if c not in allowed))
    if outside:
        # A long list (a script's mistake) is cut: the message must stay one readable paragraph.
        shown = f"{outside[:5]}" + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        raise ValueError(f"{flag}: {shown} not in this preset's grid; expected some of {sorted(allowed)}")


def groups(cells: Iterable[Cell]) -> list[tuple[tuple[Any, ...], list[Cell]]]:
    """Cells sharing the reference's x_adv (:meth:`Cell.group`): every eps of FGSM together, PGD per
    (eps, parameters, seed)."""
    grouped: dict[tuple[Any, ...], list[Cell]] = defaultdict(list)
    for cell in cells:
        grouped[cell.group()].append(cell)
    return list(grouped.items())
