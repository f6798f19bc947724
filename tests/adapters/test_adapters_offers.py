"""Each adapter runs an attack only through its offer for it: no default attack for the rest, and an
attack is one module plus one registry line (a throw-away attack runs end to end here)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

import numpy as np
import pytest
import torch
from advparity.adapters import attacks
from advparity.adapters.attacks.definition import Attack, LossReduction
from advparity.adapters.attacks.gradients import loss_gradient, relative_magnitude
from advparity.adapters.declaration import Declaration, Offer
from advparity.adapters.spec import AttackSpec
from advparity.harness.api import crosscheck
from advparity.harness.config import preset_from_dict
from support.small_nets import SmallNet, synthetic_batch
from torch import nn

from advparity import adapters

READY = [name for name in adapters.names() if adapters.availability(name).state == "ready"]


@pytest.mark.parametrize("name", READY)
def test_no_adapter_branches_on_the_attacks_name(name: str) -> None:
    """Dispatch goes through the offers; a name test in an adapter is how a half-wired attack falls through."""
    source = inspect.getsource(importlib.import_module(adapters._MODULES[name]))
    assert "spec.attack ==" not in source and 'spec.attack != "' not in source, name
    assert set(adapters.get(name).declaration.attacks) <= set(attacks.names())


@pytest.mark.parametrize("name", [n for n in READY if n != "reference"])
def test_an_attack_without_an_offer_is_refused_by_name(name: str) -> None:
    adapter = adapters.get(name)
    attack = adapter.declaration.attacks[0]
    kept = {k: v for k, v in adapter.declaration.offers.items() if k != attack} or {
        "pgd" if attack == "fgsm" else "fgsm": Offer(call=lambda *a: a[1], loss_reduction="sum")
    }
    half_wired = dataclasses.replace(adapter, declaration=Declaration(offers=kept))
    x, y = synthetic_batch(2, seed=0)
    spec = AttackSpec(attack, eps=1 / 255)
    with pytest.raises(ValueError, match=rf"{name} offers no {attack.upper()}"):
        half_wired.generate(SmallNet().eval(), x, y, spec)
    assert not half_wired.declaration.accepts(spec)


def test_a_declaration_of_an_unregistered_attack_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected offers for attacks among \['fgsm', 'pgd'"):
        Declaration(offers={"cw": Offer(call=lambda *a: a[1], loss_reduction="sum")})
    with pytest.raises(ValueError, match="expected loss_reduction in"):
        Offer(call=lambda *a: a[1], loss_reduction="none")  # type: ignore[arg-type]


def test_passes_are_the_textbook_count_plus_what_the_offer_declares() -> None:
    foolbox = adapters.get("foolbox").declaration
    assert foolbox.passes(AttackSpec("fgsm", eps=0.01)) == (2.0, 1.0)
    assert foolbox.passes(AttackSpec("pgd", eps=0.01, steps=3)) == (4.0, 3.0)
    assert adapters.get("reference").declaration.passes(AttackSpec("pgd", eps=0.01, steps=3)) == (3.0, 3.0)


def test_unknown_parameters_name_the_attack_and_its_parameters() -> None:
    with pytest.raises(ValueError, match=r"attack 'pgd' has no parameter\(s\) \['decay'\]; expected some of"):
        AttackSpec("pgd", 1 / 255, decay=1.0)
    with pytest.raises(
        ValueError, match=r"attack 'fgsm' has no parameter\(s\) \['steps'\]; expected some of \['norm'"
    ):
        AttackSpec("fgsm", 1 / 255, steps=3)
    with pytest.raises(ValueError, match=r"expected attack to be one of \['fgsm', 'pgd'"):
        AttackSpec("cw", 1 / 255)


# --- a throw-away attack, registered and run end to end --------------------------------------------


@dataclasses.dataclass(frozen=True)
class _HalfStepParams:
    fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"expected fraction in (0, 1], got {self.fraction!r}")


class _HalfStep(Attack):
    """FGSM's step scaled by ``fraction`` of eps: a different attack with a closed form to test against."""

    name = "halfstep"
    norm = "linf"
    params = _HalfStepParams
    preset_keys = ("fraction",)

    def label(self, params: Any) -> str:
        return f"HALFSTEP-{params.fraction:g}"

    def reference(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        eps: float,
        params: Any,
        start: torch.Tensor,
        reduction: LossReduction,
        arithmetic: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grad = loss_gradient(model, x, y, reduction)
        return (x + params.fraction * eps * grad.sign()).clamp(0, 1).detach(), relative_magnitude(grad)


def _torchattacks_halfstep(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    import torchattacks

    x_adv: torch.Tensor = torchattacks.FGSM(model, eps=spec.params.fraction * spec.eps)(x, y)
    return x_adv


def test_a_throw_away_attack_runs_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """One module's worth of definition, one registry line, one offer: planned, run, judged, reported."""
    torchattacks = adapters.get("torchattacks")
    offers = {
        **torchattacks.declaration.offers,
        "halfstep": Offer(call=_torchattacks_halfstep, loss_reduction="mean"),
    }
    with attacks.registered(_HalfStep()):
        monkeypatch.setattr(torchattacks, "declaration", Declaration(offers=offers))
        x, y = synthetic_batch(6, seed=4)
        model = SmallNet().eval()
        result = crosscheck(
            model,
            x,
            y,
            libraries=["torchattacks"],
            attacks=[{"attack": "halfstep", "fraction": 0.5}],
            eps="4/255",
        )
        verdicts = result.verdicts.set_index("library")
        assert list(verdicts["attack_label"]) == ["HALFSTEP-0.5", "HALFSTEP-0.5"]
        assert (verdicts["verdict"] == "agree").all(), verdicts["reason"].tolist()
        assert verdicts.loc["torchattacks", "judged_on"] == "x_adv"
        # The reference computed the closed form, and the rows say which attack they hold.
        rows = result.results[result.results["library"] == "reference"].sort_values("sample")
        expected = (x + 0.5 * (4 / 255) * loss_gradient(model, x, y).sign()).clamp(0, 1)
        assert np.allclose(rows["linf"], (expected - x).abs().flatten(1).amax(1).double().numpy(), atol=0)
        assert set(rows["norm"]) == {"linf"} and not rows["seeded"].any()
        # A key the attack does not define is refused, naming the attack and its keys.
        with pytest.raises(ValueError, match=r"attack 'halfstep' has no key\(s\) \['steps'\]"):
            preset_from_dict(
                {
                    "name": "bad",
                    "data": {},
                    "train": {},
                    "attack": {},
                    "attacks": [{"attack": "halfstep", "eps": ["4/255"], "steps": 3}],
                }
            )
    assert "halfstep" not in attacks.names()
