"""Forward/backward passes per sample and zero-gradient counts, as measured by the guard's hooks.

The paper's budget is FGSM = 1 forward + 1 backward per sample and PGD = ``steps`` of each. What each
library really spends was measured, and is asserted here so a library update that changes it shows:
ART's PGD predicts the clean and the adversarial batch once more to log a success rate (+2 forwards,
even with logging off); Foolbox runs the model once more on its output to report success (+1), and so
does secml-torch's FGSM, which is Foolbox's (its native PGD spends exactly ``steps`` of each);
DeepRobust's PGD runs the model on the clean batch first to count errors it never returns (+1).
CleverHans spends exactly the textbook count: given the true labels, it predicts none.
"""

from __future__ import annotations

import pytest
import torch
from advparity.adapters import AttackSpec, run_attack
from support.adapter_checks import offering, runs_spec
from support.small_nets import attack_spec
from torch import nn

from advparity import adapters

# PGD without a random start: what a library that always draws one refuses.
NO_START = AttackSpec("pgd", 2 / 255, steps=1, random_start=False)

Batch = tuple[torch.Tensor, torch.Tensor]

# (forwards, backwards) per sample; PGD as a function of steps.
EXPECTED = {
    ("reference", "fgsm"): lambda steps: (1, 1),
    ("reference", "pgd"): lambda steps: (steps, steps),
    ("torchattacks", "fgsm"): lambda steps: (1, 1),
    ("torchattacks", "pgd"): lambda steps: (steps, steps),
    ("art", "fgsm"): lambda steps: (1, 1),
    ("art", "pgd"): lambda steps: (steps + 2, steps),
    ("foolbox", "fgsm"): lambda steps: (2, 1),
    ("foolbox", "pgd"): lambda steps: (steps + 1, steps),
    ("deeprobust", "fgsm"): lambda steps: (1, 1),
    ("deeprobust", "pgd"): lambda steps: (steps + 1, steps),
    ("secml-torch", "fgsm"): lambda steps: (2, 1),
    ("secml-torch", "pgd"): lambda steps: (steps, steps),
    ("adv-lib", "pgd"): lambda steps: (steps, steps),
    ("cleverhans", "fgsm"): lambda steps: (1, 1),
    ("cleverhans", "pgd"): lambda steps: (steps, steps),
}
STEPS = 3
# Every adapter, attack and start it computes (DeepRobust refuses no-start PGD).
CASES = [
    (name, attack, random_start)
    for name in adapters.runnable()
    for attack in ("fgsm", "pgd")
    for random_start in (False, True)
    if runs_spec(name, attack_spec(attack, 2 / 255, steps=STEPS, random_start=random_start))
]


@pytest.mark.parametrize(("name", "attack", "random_start"), CASES)
def test_passes_per_sample_are_as_measured(
    name: str, attack: str, random_start: bool, small_net: nn.Module, small_batch: Batch
) -> None:
    steps = STEPS
    result = run_attack(
        adapters.get(name),
        small_net,
        *small_batch,
        attack_spec(attack, 2 / 255, steps=steps, random_start=random_start),
    )
    forwards, backwards = EXPECTED[(name, attack)](steps)
    assert result.stats.backward_passes_per_sample == backwards
    assert result.stats.forward_passes_per_sample == forwards
    assert result.stats.library == name and result.stats.n_samples == 16
    assert adapters.get(name).last_stats is result.stats


@pytest.mark.parametrize("name", offering(AttackSpec("pgd", 1 / 255, steps=4)))
def test_passes_are_counted_for_a_sequential_model(name: str, small_batch: Batch) -> None:
    """ART unrolls nn.Sequential child by child; a hook on the top module would count nothing."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12 * 16, 3)).eval()
    stats = run_attack(adapters.get(name), model, *small_batch, AttackSpec("pgd", 1 / 255, steps=4)).stats
    assert stats.backward_passes_per_sample == 4
    assert stats.forward_passes_per_sample == EXPECTED[(name, "pgd")](4)[0]


class _LeftHalf(nn.Module):
    """Looks only at the left half of the image: the right half's gradient is exactly 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(12 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x[..., :8].flatten(1))


@pytest.mark.parametrize("name", offering(AttackSpec("pgd", 2 / 255, steps=3)))
def test_zero_gradient_components_are_counted_per_sample(name: str, small_batch: Batch) -> None:
    x, y = small_batch
    # The right half's gradient is 0 wherever PGD starts: a library without a start at x gets a random one.
    spec = AttackSpec(
        "pgd", 2 / 255, steps=3, random_start=not adapters.get(name).declaration.accepts(NO_START)
    )
    stats = run_attack(adapters.get(name), _LeftHalf().eval(), x, y, spec).stats
    ignored = 1 * 12 * 8
    assert stats.elements_per_sample == 12 * 16
    assert stats.zero_grad_elements.tolist() == [ignored] * 16
    assert stats.zero_grad_elements_all_steps.tolist() == [3 * ignored] * 16


def test_zero_gradient_components_do_not_move(small_batch: Batch) -> None:
    x, y = small_batch
    x_adv = adapters.get("reference").generate(_LeftHalf().eval(), x, y, AttackSpec("fgsm", 8 / 255))
    assert torch.equal(x_adv[..., 8:], x[..., 8:])
    assert bool(((x_adv[..., :8] - x[..., :8]).abs() > 0).any())


def test_trained_densenet_has_no_zero_gradients_at_the_clean_point(
    densenet: nn.Module, densenet_batch: Batch
) -> None:
    stats = run_attack(
        adapters.get("reference"), densenet, *densenet_batch, AttackSpec("fgsm", 1 / 255)
    ).stats
    assert stats.zero_grad_elements.tolist() == [0] * 8
    assert stats.elements_per_sample == 3 * 32 * 32
