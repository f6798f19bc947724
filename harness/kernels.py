"""Pin the CPU kernel family torch uses, before torch starts — so a preset's numbers are the same on any x86-64 CPU.

CPU round-off depends on which vector kernels ATen, oneDNN and MKL pick: on an AVX-512 host they pick
AVX-512 ones, whose summation order differs from the AVX2 kernels of an older host. Measured: the
``ci`` preset trained and attacked on an AVX-512 host moved 28 of 68 numbers against a baseline made
with AVX2 kernels; with the three variables below set before torch started, every number and the
weights were reproduced bit for bit. All three libraries read their variable once, when they first
initialise, so the pin must come before torch runs its first operation: ``python -m advparity`` applies
a preset's ``cpu_isa`` before it imports anything that imports torch.

This module must not import torch at module level.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

PRESET_DIR = Path(__file__).parent / "presets"

# The variables ATen, oneDNN and MKL read once, when they initialise.
KERNEL_VARIABLES: tuple[str, ...] = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
# The kernel families a preset may pin, and the variables that pin them (ATen, oneDNN, MKL).
# AVX2 is what every x86-64 CPU of the last decade has, so a pin to it reproduces anywhere.
ISA_ENVIRONMENT: Mapping[str, Mapping[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
}
# What torch.backends.cpu.get_cpu_capability() reports under each pin.
ISA_CAPABILITY: Mapping[str, str] = {"avx2": "AVX2"}
CPU_ISAS: tuple[str, ...] = tuple(ISA_ENVIRONMENT)


class KernelPinError(ValueError):
    """A pin that cannot take effect in this process (bad input: exit 2); the message says what to do."""


def check_isa(isa: object, source: str = "cpu_isa") -> str | None:
    """``None`` (no pin) or one of :data:`CPU_ISAS`; anything else is a ``ValueError``."""
    if isa is None or isa == "":
        return None
    if not isinstance(isa, str) or isa.lower() not in ISA_ENVIRONMENT:
        raise ValueError(f"{source}: expected one of {list(CPU_ISAS)} or no cpu_isa, got {isa!r}")
    return isa.lower()


def pin(isa: str | None, environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
    """Set the variables that pin ``isa``'s kernels (no-op for None).

    A different value the user set for one of them is an error rather than silently overridden.
    """
    if isa is None:
        return
    for name, value in ISA_ENVIRONMENT[isa].items():
        current = environ.get(name)
        if current is not None and current.lower() != value.lower():
            raise KernelPinError(
                f"the preset pins CPU kernels to {isa} ({name}={value}), but the environment sets "
                f"{name}={current}; unset it or use a preset without cpu_isa"
            )
        environ[name] = value


def in_effect(isa: str | None) -> tuple[bool, str]:
    """Whether torch (imported here if not yet) runs ``isa``'s kernels, and the capability it reports."""
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability())
    return (isa is None or capability == ISA_CAPABILITY[isa]), capability


def preset_isa(name_or_path: str | Path) -> str | None:
    """The ``cpu_isa`` of a preset, read without importing torch (None when it pins nothing or is unreadable:
    loading the preset later reports any error properly)."""
    candidate = Path(name_or_path)
    path = (
        candidate
        if (candidate.suffix == ".toml" or candidate.exists())
        else PRESET_DIR / f"{name_or_path}.toml"
    )
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    try:
        return check_isa(table.get("cpu_isa"), f"{path}: cpu_isa")
    except ValueError:
        return None


def pin_from_argv(argv: Sequence[str]) -> str | None:
    """Pin the kernels of the preset named by ``--preset`` in a command line; returns the pinned ISA."""
    args = list(argv)
    name: str | None = None
    for i, arg in enumerate(args):
        if arg == "--preset" and i + 1 < len(args):
            name = args[i + 1]
        elif arg.startswith("--preset="):
            name = arg.split("=", 1)[1]
    if name is None:
        return None
    isa = preset_isa(name)
    pin(isa)
    return isa
