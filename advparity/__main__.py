"""``python -m advparity`` and the ``advparity`` script: pin CPU kernels, then run the command line."""

from __future__ import annotations

import sys


def main() -> int:
    from advparity.harness import kernels

    # Before anything imports torch: a preset that pins CPU kernels (cpu_isa) must be in force when
    # ATen, oneDNN and MKL initialise, or its numbers depend on the machine.
    try:
        kernels.pin_from_argv(sys.argv[1:])
    except kernels.KernelPinError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2  # bad input, as harness.cli.EXIT_BAD_INPUT (not imported yet: it would start torch)

    from advparity.harness.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
