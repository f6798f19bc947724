"""``python -m harness``."""

import sys

from harness import kernels

# Before anything imports torch: a preset that pins CPU kernels (cpu_isa) must be in force when
# ATen, oneDNN and MKL initialise, or its numbers depend on the machine.
try:
    kernels.pin_from_argv(sys.argv[1:])
except kernels.KernelPinError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)  # bad input, as harness.cli.EXIT_BAD_INPUT (not imported yet: it must not start torch)

from harness.cli import main  # noqa: E402

sys.exit(main())
