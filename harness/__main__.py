"""``python -m harness``."""

import sys

from harness import kernels

# Before anything imports torch: a preset that pins CPU kernels (cpu_isa) must be in force when
# ATen, oneDNN and MKL initialise, or its numbers depend on the machine.
kernels.pin_from_argv(sys.argv[1:])

from harness.cli import main  # noqa: E402

sys.exit(main())
