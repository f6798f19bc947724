"""Library attacks measured to compute something other than the reference's attack, and what they do.

The list is the adapters' own (each offer's ``departure``, quoted in the verdicts' reasons). The tests
that hold a library to the reference's exact x_adv (parity, the declared expectation, the random-start
statistics, the end-to-end cross-checks) assert for each entry that the library still *differs*: a
release that fixes it fails them, and the entry goes. Everything else about these libraries (passes,
model state, input checks, seeding) is tested as for any other library, and each has a test file of
its own that pins down what it computes instead.

Importable by name from every test folder, like ``small_nets``.
"""

from __future__ import annotations

from advparity import adapters

DEPARTURES: dict[tuple[str, str], str] = {
    (name, attack): text
    for name in adapters.runnable()
    for attack, offer in adapters.get(name).declaration.offers.items()
    # A departure of some specs only (a function of the spec: ART's FGM with restarts) is pinned by
    # the test of those specs (tests/adapters/test_attacks_restarts.py), not here.
    if isinstance(text := offer.departure, str) and text
}


def departs(library: str, attack: str) -> bool:
    """True where ``library``'s ``attack`` is known not to be the reference's attack (see DEPARTURES)."""
    return (library, attack) in DEPARTURES


# Invariants a library is measured to break (adapters/invariants.py), pinned: (library, attack, norm) →
# the check. torchattacks' FGM-L2 and PGDL2 return NaN at eps = 0 where their step is eps or a fraction
# of it: `factor = self.eps / delta_norms` (attacks/pgdl2.py) is 0 / 0 when the step moved nothing. (A
# PGD-L2 cell of a run steps by its own alpha, a number, at eps = 0: the norm is then > 0 and it holds.)
BROKEN_AT_ZERO: dict[tuple[str, str, str], str] = {
    ("torchattacks", "fgsm", "l2"): "eps = 0 returns x",
    ("torchattacks", "pgd", "l2"): "eps = 0 returns x",
}
