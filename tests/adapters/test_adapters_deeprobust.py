"""What is particular to DeepRobust: a PGD that always starts at a random point, a start added in
float64, and attack modules loaded without the package's ``__init__`` (adapters/deeprobust.py)."""

from __future__ import annotations

import copy
import importlib.metadata
import sys
from pathlib import Path

import pytest
import torch
from advparity.adapters import AttackSpec
from advparity.adapters.expected import expectation
from support.adapter_checks import offering, require_runnable, synthetic_batch
from support.small_nets import attack_spec
from torch import nn

from advparity import adapters

require_runnable("deeprobust")  # before importing its adapter
from advparity.adapters.deeprobust import _attack, attack_module  # noqa: E402

Batch = tuple[torch.Tensor, torch.Tensor]


def test_pgd_without_random_start_is_refused_before_deeprobust_runs(
    small_net: nn.Module, small_batch: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    pgd_class = attack_module("pgd").PGD
    real_generate = pgd_class.generate

    def spy(self: object, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return real_generate(self, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(pgd_class, "generate", spy)
    adapter = adapters.get("deeprobust")
    with pytest.raises(ValueError, match=r"deeprobust offers no PGD without a random start"):
        adapter.generate(small_net, *small_batch, AttackSpec("pgd", 4 / 255, steps=2, random_start=False))
    assert calls == []
    # The spy does see a call the adapter does make, so the empty list above is evidence.
    adapter.generate(small_net, *small_batch, AttackSpec("pgd", 4 / 255, steps=2, random_start=True))
    assert calls == [1]


@pytest.mark.parametrize("name", offering(AttackSpec("pgd", 4 / 255)))
def test_only_libraries_that_declare_it_refuse_pgd_without_start(
    name: str, small_net: nn.Module, small_batch: Batch
) -> None:
    """Keeps the offers' ``refuses``, which runs and the other adapter tests consult, true to the
    adapters: DeepRobust alone refuses PGD without a random start."""
    spec = AttackSpec("pgd", 4 / 255, steps=1, random_start=False)
    declaration = adapters.get(name).declaration
    assert declaration.accepts(spec) == (name != "deeprobust")
    if not declaration.accepts(spec):
        with pytest.raises(ValueError, match="offers no PGD without a random start"):
            adapters.get(name).generate(small_net, *small_batch, spec)
    else:
        adapters.get(name).generate(small_net, *small_batch, spec)


def test_start_adds_the_noise_in_float64_which_arts_start_does_not(small_net: nn.Module) -> None:
    """ART and DeepRobust draw the same NumPy uniforms for a seed; ART rounds them to float32 before
    adding, DeepRobust adds in float64 and rounds once (measured: 18 of 2,496 components one float32 ulp
    apart). That one rounding is visible in x_adv, so only the declared float64 start matches it."""
    x, y = synthetic_batch(13, seed=21)
    spec = AttackSpec("pgd", 4 / 255, steps=3, seed=5)
    deeprobust, art = adapters.get("deeprobust"), adapters.get("art")
    assert deeprobust.declaration.start is not None and art.declaration.start is not None
    ours, arts = deeprobust.declaration.start(x, spec), art.declaration.start(x, spec)
    apart = ours != arts
    assert 0 < int(apart.sum()) < 0.05 * x.numel()
    one_ulp = (torch.nextafter(arts, ours) - arts).abs()
    assert torch.equal((ours - arts).abs()[apart], one_ulp[apart])

    x_adv = deeprobust.generate(small_net, x, y, spec)
    assert torch.equal(x_adv, expectation(small_net, x, y, spec, deeprobust.declaration).x_adv)
    from_arts_start = expectation(small_net, x, y, spec, deeprobust.declaration, start=arts).x_adv
    assert not torch.equal(x_adv, from_arts_start)


def test_attack_modules_are_the_installed_files_and_no_stand_in_package_is_left() -> None:
    dist = importlib.metadata.distribution("deeprobust")
    for name in ("base_attack", "pgd", "fgsm"):
        module = attack_module(name)
        assert module is sys.modules[f"deeprobust.image.attack.{name}"]
        assert attack_module(name) is module  # loaded once
        installed = Path(str(dist.locate_file(f"deeprobust/image/attack/{name}.py")))
        assert Path(str(module.__file__)).resolve() == installed.resolve()
    # The empty parent packages stood in only during the import: a real ``import deeprobust.image``
    # later still runs the package's own __init__ (or fails as it would have, on SciPy >= 1.8).
    for package in ("deeprobust.image", "deeprobust.image.attack"):
        loaded = sys.modules.get(package)
        assert loaded is None or getattr(loaded, "__file__", None) is not None, package


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_unguarded_deeprobust_would_corrupt_batchnorm_and_grads(
    attack: str, small_net: nn.Module, small_batch: Batch
) -> None:
    """Proves the state tests can fail for DeepRobust: called without the guard on a train-mode model,
    it runs BatchNorm in train mode (running stats move) and its backward() fills every ``.grad``."""
    model = copy.deepcopy(small_net).train()
    running_mean = model.features[1].running_mean.clone()
    _attack(model, *small_batch, attack_spec(attack, 1 / 255, steps=2), 3)
    assert not torch.equal(model.features[1].running_mean, running_mean)
    assert model.training
    assert all(p.grad is not None for p in model.parameters())
