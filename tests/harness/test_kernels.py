"""CPU kernel pinning: a preset's cpu_isa is in force before torch starts, and runs record the kernels."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from advparity.harness import kernels
from advparity.harness.config import ConfigError, load_preset
from advparity.harness.environment import environment

ROOT = Path(__file__).resolve().parents[2]


def _has_avx2() -> bool:
    try:
        return "avx2" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


needs_avx2 = pytest.mark.skipif(
    platform.machine() != "x86_64" or not _has_avx2(), reason="AVX2 kernels need an x86-64 CPU with AVX2"
)


def _capability_in_fresh_process(code: str, env: dict[str, str]) -> str:
    """torch's CPU capability in a new interpreter that runs ``code`` first (torch not yet imported)."""
    script = f"{code}\nimport torch\nprint(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in kernels.KERNEL_VARIABLES}


def test_ci_preset_pins_avx2_and_demo_and_paper_do_not() -> None:
    assert load_preset("ci").cpu_isa == "avx2"
    assert kernels.preset_isa("ci") == "avx2"
    assert load_preset("paper").cpu_isa is None and kernels.preset_isa("paper") is None


@needs_avx2
def test_the_cli_pins_the_preset_kernels_before_torch_starts() -> None:
    pinned = _capability_in_fresh_process(
        "from harness import kernels; kernels.pin_from_argv(['run', '--preset', 'ci', '--out', 'x'])",
        _clean_env(),
    )
    assert pinned == "AVX2"
    # The same call for a preset without cpu_isa leaves torch's own choice (AVX512 on such a host).
    unpinned = _capability_in_fresh_process(
        "from harness import kernels; kernels.pin_from_argv(['run', '--preset=paper'])", _clean_env()
    )
    assert unpinned == _capability_in_fresh_process("", _clean_env())


def test_pin_refuses_a_conflicting_setting_and_accepts_the_same_one() -> None:
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    with pytest.raises(kernels.KernelPinError, match="ATEN_CPU_CAPABILITY=avx512; unset it"):
        kernels.pin("avx2", env)
    same = {"MKL_CBWR": "avx2"}
    kernels.pin("avx2", same)
    assert same == {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    untouched: dict[str, str] = {}
    kernels.pin(None, untouched)
    assert untouched == {}


def test_a_bad_cpu_isa_names_the_file_and_the_choices(tmp_path: Path) -> None:
    text = (ROOT / "harness" / "presets" / "smoke.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text('cpu_isa = "sse2"\n' + text)
    with pytest.raises(ConfigError, match=r"bad.toml: cpu_isa: expected one of \['avx2'\]"):
        load_preset(bad)
    assert kernels.preset_isa(bad) is None  # read without torch; loading it reports the error
    assert kernels.pin_from_argv(["run", "--out", "x"]) is None


def test_the_manifest_records_what_decides_round_off() -> None:
    import torch

    hardware = environment()["hardware"]
    assert hardware["cpu_capability"] == torch.backends.cpu.get_cpu_capability() != ""
    assert set(hardware["cpu_isa_pin"]) == set(kernels.KERNEL_VARIABLES)
    assert {"machine", "cpu", "torch_threads", "cpu_flags"} <= set(hardware)
    if _has_avx2():
        assert "avx2" in hardware["cpu_flags"]
