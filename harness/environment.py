"""Torch set-up for exact cross-library comparisons, and the environment a run records (versions,
hardware, CPU kernels)."""

from __future__ import annotations

import logging
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from advparity.harness import kernels

from advparity import adapters

log = logging.getLogger(__name__)


def configure_torch(device: torch.device, cpu_threads: int = 0) -> None:
    """Settings that keep cross-library comparisons exact rather than fast; ``cpu_threads=0``: one per core."""
    # TF32 rounds matmul/conv inputs to 10 mantissa bits: libraries would differ by round-off alone.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # cuDNN autotuning may pick different kernels per call; deterministic kernels make reruns equal.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if device.type == "cuda":
        # cuBLAS picks its reduction order by workspace; a fixed workspace makes GEMMs repeatable. It is
        # read when cuBLAS initialises (the process's first matmul), so a user's own setting wins.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # Kernels that accumulate with atomics give run-to-run round-off differences; warn where one
        # runs instead of letting it blur the bit-for-bit comparison silently.
        torch.use_deterministic_algorithms(True, warn_only=True)
    set_cpu_threads(device, cpu_threads)


def set_cpu_threads(device: torch.device, cpu_threads: int = 0) -> None:
    """Torch's CPU threads: ``cpu_threads``, or one per core this process may use (0)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads or cores)


def environment() -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    # Every attack library advparity knows (adapters.DISTRIBUTIONS), and eagerpy, which Foolbox runs on.
    for dist in ("advparity", "torch", "torchvision", *adapters.DISTRIBUTIONS.values(), "eagerpy", "numpy"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    hardware: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # What decides CPU round-off besides the thread count (harness/kernels.py).
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "cpu_isa_pin": {name: os.environ.get(name) for name in kernels.KERNEL_VARIABLES},
        "cpu_flags": _cpu_flags(),
        # The same version number comes as CPU and CUDA wheels built from one commit with other libraries.
        "torch_build": f"{torch.__version__} (git {str(torch.version.git_version)[:12]}, CUDA {torch.version.cuda})",
    }
    return {"versions": versions, "hardware": hardware}


def check_kernels(isa: str | None, device: torch.device) -> None:
    """Warn when a preset pins CPU kernels that this process does not run (torch started before the pin)."""
    if isa is None or device.type != "cpu":
        return
    ok, capability = kernels.in_effect(isa)
    if not ok:
        names = " ".join(f"{k}={v}" for k, v in kernels.ISA_ENVIRONMENT[isa].items())
        log.warning(
            "the preset pins CPU kernels to %s, but torch runs %s kernels in this process (it started before "
            "the pin): its numbers may differ from another machine's in the last bits. Run it through "
            "`python -m advparity`, or set %s before Python starts.",
            isa,
            capability,
            names,
        )


# The vector extensions that decide which kernels torch may pick.
_VECTOR_FLAGS = frozenset({"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile"})


def _cpu_flags() -> list[str]:
    """The CPU's vector extensions among :data:`_VECTOR_FLAGS` (empty where /proc/cpuinfo is absent)."""
    return sorted(_VECTOR_FLAGS.intersection((_cpuinfo("flags") or "").split()))


def _cpuinfo(field_name: str) -> str | None:
    """The first ``field_name`` line of /proc/cpuinfo (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field_name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown"
