"""Library attacks measured to compute something other than the reference's attack, and what they do.

The tests that hold a library to the reference's exact x_adv (parity, the declared expectation, the
random-start statistics, the end-to-end cross-checks) assert for each entry here that the library
still *differs*: a release that fixes it fails them, and its entry goes. Everything else about these
libraries (passes, model state, input checks, seeding) is tested as for any other library, and each
entry has a test file of its own that pins down what the library computes instead.

Importable by name from every test folder, like ``small_nets``.
"""

from __future__ import annotations

DEPARTURES: dict[tuple[str, str], str] = {
    # tests/adapter_suite/test_adapters_secml_torch.py
    ("secml-torch", "pgd"): (
        "secml-torch's native PGD returns, per sample, the highest-loss iterate among x_0 … x_{T-1} (the "
        "T-th step is computed and discarded), and its L∞ random start is x + eps for every pixel >= 2·eps"
    ),
    # tests/adapter_suite/test_adapters_adv_lib.py
    ("adv-lib", "pgd"): (
        "adv-lib's pgd_linf returns, per sample, the last misclassified iterate among x_0 … x_{T-1} (the "
        "T-th step is computed and discarded), and the clean image where none was misclassified"
    ),
}


def departs(library: str, attack: str) -> bool:
    """True where ``library``'s ``attack`` is known not to be the reference's attack (see DEPARTURES)."""
    return (library, attack) in DEPARTURES
