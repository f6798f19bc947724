"""Targeted attacks (``attacks/targets.py``): the step against closed-form mathematics, the harness's
choice of targets, and every library that offers a targeted mode held to its expected x_adv bit for
bit, with the targets as its labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advparity.adapters import AttackSpec
from advparity.adapters.attacks import targets
from advparity.adapters.attacks.gradients import loss_gradient
from advparity.adapters.expected import compare, expectation
from advparity.harness.config import attack_grid
from advparity.harness.group import targets_for
from support.adapter_checks import LIBRARIES, departs, runs_spec, synthetic_batch
from torch import nn

from advparity import adapters

EPS = 8 / 255
SPECS = {
    "fgsm": AttackSpec("fgsm", EPS, targeted="least-likely"),
    "fgsm-rs": AttackSpec("fgsm", EPS, seed=3, random_start=True, targeted="least-likely"),
    "fgm-l2": AttackSpec("fgsm", 0.5, norm="l2", targeted="random"),
    "pgd": AttackSpec("pgd", EPS, seed=5, steps=3, targeted="least-likely"),
    "pgd-l2": AttackSpec("pgd", 0.5, seed=5, steps=3, norm="l2", targeted="random"),
    "pgd-restarts": AttackSpec("pgd", EPS, seed=5, steps=3, restarts=3, targeted="least-likely"),
    "bim": AttackSpec("bim", EPS, steps=3, targeted="random"),
    "mifgsm": AttackSpec("mifgsm", EPS, steps=3, targeted="least-likely"),
    "pgd-labels": AttackSpec("pgd", EPS, seed=5, steps=3, targeted="labels", target_labels=(2, 0, 1)),
}


def _targets(net: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    target = targets_for(net, spec.params, x, y, np.arange(len(x)))
    assert target is not None
    return target


def test_targeted_fgsm_descends_the_loss_to_the_target(small_net: nn.Module) -> None:
    """x − eps · sign(∇x L(x, t)), clipped: the closed form, and the target's loss goes down."""
    x, y = synthetic_batch(16, seed=3)
    spec = SPECS["fgsm"]
    t = _targets(small_net, x, y, spec)
    x_adv = spec.definition.reference(small_net, x, t, spec.eps, spec.params, x, "sum")[0]
    by_hand = (x - spec.eps * loss_gradient(small_net, x, t, "sum").sign()).clamp(0, 1)
    assert torch.equal(x_adv, by_hand)
    with torch.no_grad():
        before = nn.functional.cross_entropy(small_net(x), t, reduction="none")
        after = nn.functional.cross_entropy(small_net(x_adv), t, reduction="none")
    assert bool((after < before).float().mean() > 0.9)


def test_least_likely_is_the_lowest_logit_and_random_is_another_class_fixed_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 4, generator=g)
    y = torch.randint(0, 4, (40,), generator=g)
    index = torch.arange(100, 140)
    assert torch.equal(targets.choose("least-likely", y, logits, index, 0), logits.argmin(1))
    random = targets.choose("random", y, logits, index, 0)
    assert bool((random != y).all()) and int(random.min()) >= 0 and int(random.max()) <= 3
    # A sample's target depends on its index, not on the batch it came in.
    halves = torch.cat(
        [
            targets.choose("random", y[:15], logits[:15], index[:15], 0),
            targets.choose("random", y[15:], logits[15:], index[15:], 0),
        ]
    )
    assert torch.equal(halves, random)
    # Uniform over the three other classes (chi-square on 3,000 samples).
    many = torch.arange(3000)
    offsets = (
        targets.choose("random", torch.zeros(3000, dtype=torch.int64), torch.zeros(3000, 4), many, 0)
    ).bincount()
    assert offsets[0] == 0 and all(abs(int(c) - 1000) < 120 for c in offsets[1:])


@pytest.mark.parametrize("name", LIBRARIES)
@pytest.mark.parametrize("case", list(SPECS))
def test_a_targeted_library_equals_its_expected_x_adv(small_net: nn.Module, name: str, case: str) -> None:
    spec = SPECS[case]
    if not runs_spec(name, spec):
        pytest.skip(f"{name}: {adapters.get(name).declaration.refusal(spec)}")
    x, y = synthetic_batch(16, seed=3)
    t = _targets(small_net, x, y, spec)
    adapter = adapters.get(name)
    result = adapter.run(small_net, x, t, spec)
    expected = expectation(small_net, x, t, spec, adapter.declaration)
    assert expected.exact
    evidence = compare(result.x_adv, expected)
    if departs(name, spec.attack):
        assert (evidence.pixels_differ > 0).any()
    else:
        assert torch.equal(result.x_adv, expected.x_adv), f"{evidence.pixels_differ.tolist()}"
    assert (result.stats.forward_passes_per_sample, result.stats.backward_passes_per_sample) == (
        adapter.declaration.passes(spec)
    )


def torchattacks_attack() -> type:
    import torchattacks

    return torchattacks.attack.Attack


def test_the_targeted_mode_is_offered_where_the_sources_have_it() -> None:
    offered = {(name, case) for name in LIBRARIES for case, spec in SPECS.items() if runs_spec(name, spec)}
    for name in ("art", "torchattacks", "foolbox", "cleverhans"):
        if name in LIBRARIES:
            # torchattacks' set_mode_targeted_by_label arrived in 3.4.0: before, no targeted cells.
            has_mode = name != "torchattacks" or hasattr(torchattacks_attack(), "set_mode_targeted_by_label")
            assert ((name, "pgd") in offered and (name, "pgd-l2") in offered) == has_mode
    # adv-lib's pgd_linf takes per-sample targets (targeted=True, the targets as labels).
    if "adv-lib" in LIBRARIES:
        assert ("adv-lib", "pgd") in offered
    # Foolbox's FGM raises "unsupported criterion" for a targeted criterion: refused, not run.
    if "foolbox" in LIBRARIES:
        assert (("foolbox", "fgsm") not in offered) and "targeted" in adapters.get(
            "foolbox"
        ).declaration.refusal(SPECS["fgsm"])
    # A targeted spec is never run untargeted by a library that has no per-sample targeted mode
    # (secml-torch's y_target is one class for the whole batch).
    for name in ("secml-torch", "deeprobust"):
        if name in LIBRARIES:
            assert not any(n == name for n, _ in offered)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"attack": "pgd", "eps": ["1/255"], "targeted": "labels"}, "needs target_labels"),
        ({"attack": "pgd", "eps": ["1/255"], "targeted": "random", "target_labels": [1, 0]}, "only for"),
        (
            {"attack": "bim", "eps": ["1/255"], "targeted": "labels", "target_labels": [1, 1, 0]},
            "towards itself",
        ),
        (
            {"attack": "fgsm", "eps": ["1/255"], "targeted": "labels", "target_labels": [1, 4, 0]},
            "names class 4",
        ),
        (
            {"attack": "mifgsm", "eps": ["1/255"], "targeted": "labels", "target_labels": [1, True]},
            "class indices",
        ),
        (
            {"attack": "pgd", "eps": ["1/255"], "targeted": "labels", "target_labels": "Normal"},
            "class indices",
        ),
        ({"attack": "fgsm", "eps": ["1/255"], "targeted": True}, "targeted to be one of"),
        ({"attack": "mifgsm", "eps": ["1/255"], "targeted": "most-likely"}, "targeted to be one of"),
    ],
)
def test_an_unknown_targeted_mode_names_the_modes(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grid = attack_grid(table)
        grid.params(grid.eps[0])


def test_labels_push_each_true_class_to_its_named_target() -> None:
    y = torch.tensor([0, 1, 2, 3, 2, 0])
    logits = torch.zeros(6, 4)
    chosen = targets.choose("labels", y, logits, torch.arange(6), 0, labels=(2, 2, 0, 2))
    assert chosen.tolist() == [2, 2, 0, 2, 0, 2]
    with pytest.raises(ValueError, match="lists 3 classes, but the model has 4"):
        targets.choose("labels", y, logits, torch.arange(6), 0, labels=(1, 2, 0))
    # The preset grammar: a list in TOML, a tuple in the parameters, in the cell's name and file key.
    grid = attack_grid(
        {"attack": "pgd", "eps": ["1/255"], "targeted": "labels", "target_labels": [2, 2, 0, 2]}
    )
    params = grid.params(grid.eps[0])
    assert params.target_labels == (2, 2, 0, 2)
    spec = AttackSpec("pgd", EPS, params=params)
    assert spec.label == "PGD-10 → labels 2,2,0,2"
    assert spec.definition.cell_key(spec.params).endswith("__targeted-labels-2-2-0-2")
    bim = AttackSpec("bim", EPS, targeted="labels", target_labels=[1, 0])
    assert "targeted-labels" not in bim.definition.cell_key(bim.params)  # the default key: every field
    assert "target_labels1-0" in bim.definition.cell_key(bim.params)


def test_targeted_cells_have_their_own_names_and_untargeted_keys_stay() -> None:
    spec = SPECS["pgd"]
    assert spec.label == "PGD-3 → least-likely"
    assert spec.definition.cell_key(spec.params).endswith("__targeted-least-likely")
    assert "targeted" not in AttackSpec("bim", EPS).definition.cell_key(AttackSpec("bim", EPS).params)
    assert (
        targets_for(None, AttackSpec("pgd", EPS).params, torch.zeros(1), torch.zeros(1), np.arange(1)) is None
    )  # type: ignore[arg-type]
