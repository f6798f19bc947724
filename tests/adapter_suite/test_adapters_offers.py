"""Each adapter runs an attack only by its name: one call per offered attack, and no default for the rest."""

from __future__ import annotations

import importlib
import inspect

import pytest
from advparity.adapters.declaration import offered, pass_counts
from advparity.adapters.spec import AttackSpec
from small_nets import SmallNet, synthetic_batch

from advparity import adapters

READY = [name for name in adapters.names() if adapters.availability(name).state == "ready"]


@pytest.mark.parametrize("name", READY)
def test_the_declared_attacks_are_the_adapters_call_table(name: str) -> None:
    """``Declaration.attacks`` is read from the same table the adapter dispatches on, so the two cannot drift."""
    adapter = adapters.get(name)
    module = importlib.import_module(adapters._MODULES[name])
    assert tuple(module._ATTACKS) == adapter.declaration.attacks
    source = inspect.getsource(module)
    assert "spec.attack ==" not in source and 'spec.attack != "' not in source, (
        f"{name} branches on the attack's name instead of looking it up in _ATTACKS"
    )


def test_an_attack_without_a_call_is_refused_by_name() -> None:
    calls = {"pgd": lambda spec: "pgd"}
    with pytest.raises(ValueError, match=r"lib has no call for attack 'fgsm'; it offers \['pgd'\]"):
        offered(calls, AttackSpec("fgsm", eps=1 / 255), "lib")
    assert offered(calls, AttackSpec("pgd", eps=1 / 255), "lib")(None) == "pgd"


@pytest.mark.parametrize("name", READY)
def test_an_attack_the_declaration_lists_but_the_library_has_no_call_for_fails_loudly(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attack wired half-way (declared, no call) raises instead of running another attack."""
    module = importlib.import_module(adapters._MODULES[name])
    attack = adapters.get(name).declaration.attacks[0]
    monkeypatch.setattr(module, "_ATTACKS", {k: v for k, v in module._ATTACKS.items() if k != attack})
    x, y = synthetic_batch(2, seed=0)
    with pytest.raises(ValueError, match=f"has no call for attack '{attack}'"):
        adapters.get(name).generate(SmallNet().eval(), x, y, AttackSpec(attack, eps=1 / 255, steps=1))


def test_pass_counts_know_only_their_attacks() -> None:
    count = pass_counts(fgsm=(2.0, 1.0), pgd_extra_forwards=1)
    assert count(AttackSpec("fgsm", eps=0.01)) == (2.0, 1.0)
    assert count(AttackSpec("pgd", eps=0.01, steps=3)) == (4.0, 3.0)
    spec = AttackSpec("pgd", eps=0.01)
    object.__setattr__(spec, "attack", "apgd")  # an attack added to the spec but not to pass_counts
    with pytest.raises(ValueError, match="no call for attack 'apgd'"):
        count(spec)
