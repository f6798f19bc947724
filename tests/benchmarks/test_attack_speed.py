"""Benchmarks (pytest-benchmark): every library × attack on one DenseNet-121 batch at 64 px.

Run with ``tox -e bench`` (JSON in .tox/bench.json) or ``pytest tests/benchmarks -m bench``. Each
benchmark records images/s, passes per image and its ratio to the reference in ``extra_info``;
``test_adapter_overhead`` asserts that our adapter adds at most 5 % to calling each library directly
(the reference has no "library call" to compare with; its adapter's cost is the same guards, reported by
``python -m advparity bench``).
Timings need a quiet machine: on 2 cores a second torch process slows both many times over.
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest
import torch
from advparity.harness.bench import BARE_CALLS, BenchConfig, bench_batch, bench_model, measure_pair
from advparity.harness.environment import configure_torch

from advparity import adapters

pytestmark = [pytest.mark.slow, pytest.mark.bench]

CONFIG = BenchConfig(size=64, batch=64)  # the demo and paper presets' attack batch
LIBRARIES = CONFIG.libraries
ATTACKS = ("fgsm", "pgd")
# Budget for what the adapter adds (validation, state snapshot/restore, pass counting, output checks).
MAX_OVERHEAD = 0.05


@pytest.fixture(scope="module")
def batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    configure_torch(CONFIG.device)
    x, y = bench_batch(CONFIG)
    return bench_model(CONFIG), x, y


@pytest.fixture(scope="module")
def reference_seconds(batch: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """The reference adapter's median seconds per call, per attack (measured once per module)."""
    model, x, y = batch
    seconds = {}
    for attack in ATTACKS:
        spec = CONFIG.spec(attack)
        runs, _ = measure_pair(
            lambda spec=spec: adapters.get("reference").run(model, x, y, spec), lambda: None, 3, CONFIG.device
        )
        seconds[attack] = statistics.median(runs)
    return seconds


@pytest.mark.parametrize(("library", "attack"), CONFIG.pairs())
def test_attack_speed(
    benchmark: Any,
    batch: tuple[torch.nn.Module, torch.Tensor, torch.Tensor],
    reference_seconds: dict[str, float],
    library: str,
    attack: str,
) -> None:
    model, x, y = batch
    spec = CONFIG.spec(attack)
    result = benchmark.pedantic(
        adapters.get(library).run, args=(model, x, y, spec), rounds=2, iterations=1, warmup_rounds=1
    )
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {
            "images_per_second": CONFIG.batch / median,
            "forward_per_image": result.stats.forward_passes_per_sample,
            "backward_per_image": result.stats.backward_passes_per_sample,
            "ratio_to_reference": median / reference_seconds[attack],
            "size": CONFIG.size,
            "batch": CONFIG.batch,
        }
    )
    # The passes are counted by hooks; PGD must really take its steps (one gradient each).
    assert result.stats.backward_passes_per_sample == (1 if attack == "fgsm" else CONFIG.pgd_steps)


@pytest.mark.parametrize(("library", "attack"), [(lib, a) for lib, a in CONFIG.pairs() if lib != "reference"])
def test_adapter_overhead(
    batch: tuple[torch.nn.Module, torch.Tensor, torch.Tensor], library: str, attack: str
) -> None:
    model, x, y = batch
    spec = CONFIG.spec(attack)
    adapter = adapters.get(library)
    adapter_runs, bare_runs = measure_pair(
        lambda: adapter.run(model, x, y, spec),
        lambda: BARE_CALLS[library](model, x, y, spec),
        5,
        CONFIG.device,
    )
    # The fastest of 5 alternating calls per side (timeit's advice): on a 2-vCPU machine single calls
    # of the same work vary by ±12 %, so medians of 5 can differ by more than the 5 % budget by chance;
    # the minimum is the call least disturbed by the machine.
    overhead = min(adapter_runs) / min(bare_runs) - 1
    assert overhead <= MAX_OVERHEAD, (
        f"{library} {attack}: adapter {min(adapter_runs):.3f} s vs bare {min(bare_runs):.3f} s per call "
        f"(+{100 * overhead:.1f} %); all calls: adapter {[round(t, 3) for t in adapter_runs]}, "
        f"bare {[round(t, 3) for t in bare_runs]}"
    )
