"""State safety: an attack leaves the model, the inputs and the global RNGs exactly as they were.

Each library breaks something on its own (measured): ART sets the whole model to eval and never
restores it, and sets every ``.grad`` to None; torchattacks restores with ``model.train()``, undoing a
BatchNorm frozen in eval; Foolbox and DeepRobust never call eval() (train-mode BatchNorm would update
its running stats) and accumulate into ``.grad``. None of that may survive the shared guard.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np
import pytest
import torch
from advparity.adapters import AttackSpec
from advparity.adapters.base import run_guarded
from support.adapter_checks import one_step_spec, runs_spec
from support.small_nets import attack_spec
from torch import nn

from advparity import adapters

# PGD without a random start: what a library that always draws one refuses.
NO_START = AttackSpec("pgd", 2 / 255, steps=1, random_start=False)

Batch = tuple[torch.Tensor, torch.Tensor]


def _awkward_copy(model: nn.Module) -> nn.Module:
    """Train mode with one BatchNorm frozen in eval, some .grad set, one parameter frozen."""
    model = copy.deepcopy(model).train()
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    batchnorms[0].eval()
    params = list(model.parameters())
    g = torch.Generator().manual_seed(0)
    for i, p in enumerate(params):
        p.grad = torch.randn(p.shape, generator=g) if i % 2 == 0 else None
    params[1].requires_grad_(False)
    return model


def _state(model: nn.Module) -> dict[str, object]:
    return {
        "modes": [(name, m.training) for name, m in model.named_modules()],
        "values": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [(id(p.grad), None if p.grad is None else p.grad.clone()) for p in model.parameters()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "param_ids": [id(p) for p in model.parameters()],
    }


def _assert_same_state(before: dict[str, object], after: dict[str, object], who: str) -> None:
    assert after["modes"] == before["modes"], f"{who}: training flags changed"
    assert after["requires_grad"] == before["requires_grad"], f"{who}: requires_grad changed"
    assert after["param_ids"] == before["param_ids"], f"{who}: parameters replaced"
    values_before, values_after = before["values"], after["values"]
    assert isinstance(values_before, dict) and isinstance(values_after, dict)
    for key, value in values_before.items():
        assert torch.equal(values_after[key], value), f"{who}: {key} changed"
    for (id_b, g_b), (id_a, g_a) in zip(before["grads"], after["grads"], strict=True):  # type: ignore[call-overload]
        assert id_a == id_b, f"{who}: a .grad object was replaced"
        assert (g_a is None and g_b is None) or torch.equal(g_a, g_b), f"{who}: a .grad changed"


@pytest.mark.parametrize(
    ("name", "attack"),
    [(name, attack) for name in adapters.runnable() for attack in adapters.get(name).declaration.attacks],
)
def test_model_state_is_restored_exactly(
    name: str, attack: str, small_net: nn.Module, small_batch: Batch
) -> None:
    model = _awkward_copy(small_net)
    x, y = small_batch
    x_before, y_before = x.clone(), y.clone()
    before = _state(model)
    with torch.no_grad():  # libraries fail here on their own; the guard enables gradients
        x_adv = adapters.get(name).generate(model, x, y, attack_spec(attack, 4 / 255, steps=2))
        assert not torch.is_grad_enabled()
    _assert_same_state(before, _state(model), name)
    assert torch.equal(x, x_before) and torch.equal(y, y_before), "inputs were modified"
    assert not x_adv.requires_grad


@pytest.mark.parametrize("name", adapters.runnable())
def test_densenet_state_is_restored_exactly(name: str, densenet: nn.Module, densenet_batch: Batch) -> None:
    model = _awkward_copy(densenet)
    before = _state(model)
    # One-step PGD with a random start (one pass like FGSM), or APGD where that is all a library has.
    adapters.get(name).generate(model, *densenet_batch, one_step_spec(name))
    _assert_same_state(before, _state(model), name)


@pytest.mark.parametrize("name", adapters.runnable())
def test_attack_runs_in_eval_mode_whatever_the_callers_mode(
    name: str, small_net: nn.Module, small_batch: Batch
) -> None:
    """A train-mode model gives the same x_adv as the eval-mode one: BatchNorm used running stats."""
    # Both calls draw the same seeded start, so a library without a start at x can take one.
    spec = (
        AttackSpec("pgd", 4 / 255, steps=3, random_start=not adapters.get(name).declaration.accepts(NO_START))
        if runs_spec(name, AttackSpec("pgd", 4 / 255))
        else AttackSpec("apgd", 4 / 255, steps=3, seed=3)
    )
    x_eval = adapters.get(name).generate(small_net, *small_batch, spec)
    x_train = adapters.get(name).generate(_awkward_copy(small_net), *small_batch, spec)
    assert torch.equal(x_eval, x_train)


@pytest.mark.parametrize("name", adapters.runnable())
def test_global_rng_states_are_untouched(name: str, small_net: nn.Module, small_batch: Batch) -> None:
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    adapters.get(name).generate(small_net, *small_batch, one_step_spec(name, 4 / 255, seed=3))
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert (
        after[0] == numpy_state[0]
        and np.array_equal(after[1], numpy_state[1])
        and after[2:] == numpy_state[2:]
    )


def _hostile(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, k: int) -> torch.Tensor:
    """Everything a careless library could do: train mode, BatchNorm update, weight edits, .grad."""
    model.train()
    model(x)  # train-mode forward: running stats move
    for p in model.parameters():
        p.requires_grad_(True)
        with torch.no_grad():
            p.add_(1.0)
        if p.grad is not None:
            p.grad.mul_(2.0)  # in place, as backward() accumulates: the caller's object is modified
        else:
            p.grad = torch.ones_like(p)
    return x


def test_guard_undoes_a_hostile_library(
    small_net: nn.Module, small_batch: Batch, caplog: pytest.LogCaptureFixture
) -> None:
    model = _awkward_copy(small_net)
    before = _state(model)
    hostile = dataclasses.replace(adapters.get("reference"), name="hostile", attack_fn=_hostile)
    with caplog.at_level(logging.WARNING, logger="advparity.adapters.state"):
        hostile.generate(model, *small_batch, AttackSpec("fgsm", 1 / 255))
    _assert_same_state(before, _state(model), "hostile")
    assert "hostile changed the model's ['buffers', 'parameters']" in caplog.text


def test_guard_restores_state_when_the_library_raises(small_net: nn.Module, small_batch: Batch) -> None:
    model = _awkward_copy(small_net)
    before = _state(model)

    def crash(m: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, k: int) -> torch.Tensor:
        _hostile(m, x, y, spec, k)
        raise RuntimeError("library bug")

    with pytest.raises(RuntimeError, match="library bug"):
        run_guarded("crashing", crash, model, *small_batch, AttackSpec("fgsm", 1 / 255))
    _assert_same_state(before, _state(model), "crashing")


def test_unguarded_foolbox_would_corrupt_batchnorm(small_net: nn.Module, small_batch: Batch) -> None:
    """Proves the state test can fail: the same Foolbox call without the guard moves running stats."""
    from advparity.adapters.foolbox import ADAPTER

    fgsm = ADAPTER.declaration.offer("fgsm").call
    model = copy.deepcopy(small_net).train()
    running_mean = model.features[1].running_mean.clone()
    with pytest.warns(UserWarning, match="training mode"):  # Foolbox only warns
        fgsm(model, *small_batch, AttackSpec("fgsm", 1 / 255), 3)
    assert not torch.equal(model.features[1].running_mean, running_mean)


def test_a_library_that_writes_into_its_input_is_flagged(
    small_net: nn.Module, small_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The library gets copies of x and y; one it writes into (the caller's tensors, were they passed)
    is named in the stats' state changes, which make its cell invalid; the caller's tensors are intact."""
    from advparity.adapters import AttackSpec, run_attack
    from advparity.adapters.base import GuardedAdapter
    from advparity.adapters.declaration import Declaration, Offer

    def writes(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        x_adv = (x + spec.eps).clamp(0, 1)
        x.copy_(x_adv)  # the bug: in place, into what it was given
        y.zero_()
        return x_adv

    adapter = GuardedAdapter(
        name="writer",
        attack_fn=None,
        declaration=Declaration(offers={"fgsm": Offer(call=writes, loss_reduction="sum")}),
    )
    x, y = small_batch
    before_x, before_y = x.clone(), y.clone()
    changes = run_attack(adapter, small_net, x, y, AttackSpec("fgsm", 2 / 255)).stats.state_changes
    assert any(c.startswith("wrote into its input x in place (") for c in changes), changes
    assert any(c.startswith("wrote into its input y in place (") for c in changes), changes
    assert torch.equal(x, before_x) and torch.equal(y, before_y)
