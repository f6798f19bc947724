"""Bad input is a clear ValueError raised before any library runs, for every adapter."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from advparity.adapters import AttackSpec
from advparity.adapters.base import GuardedAdapter
from support.adapter_checks import one_step_spec
from torch import nn

from advparity import adapters

Batch = tuple[torch.Tensor, torch.Tensor]


class _Spy:
    """Stands in for a library: records whether it was reached."""

    def __init__(self) -> None:
        self.called = False

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, k: int
    ) -> torch.Tensor:
        self.called = True
        return x


def _with_spy(name: str) -> tuple[GuardedAdapter, _Spy]:
    spy = _Spy()
    return dataclasses.replace(adapters.get(name), attack_fn=spy), spy


def _nan(b: Batch) -> Batch:
    x = b[0].clone()
    x[0, 0, 0, 0] = float("nan")
    return x, b[1]


BAD_BATCHES: dict[str, tuple[Callable[[Batch], Batch], str]] = {
    "above_one": (lambda b: (b[0] * 255, b[1]), r"expected pixels in \[0, 1\].*got range \[0, 255\]"),
    "below_zero": (lambda b: (b[0] - 0.5, b[1]), r"expected pixels in \[0, 1\]"),
    "nan": (_nan, r"expected finite pixels in x, got 1 NaN/inf values"),
    "three_dims": (lambda b: (b[0][0], b[1]), r"expected x of shape \[N, C, H, W\], got 3 dims"),
    "float64": (lambda b: (b[0].double(), b[1]), r"expected x of dtype torch.float32"),
    "label_count": (lambda b: (b[0], b[1][:-1]), r"expected one label per image: x has 16 images, y has 15"),
    "one_hot_labels": (
        lambda b: (b[0], torch.nn.functional.one_hot(b[1], 3)),
        r"expected y of shape \[N\] \(class indices, not one-hot\)",
    ),
    "int32_labels": (lambda b: (b[0], b[1].int()), r"expected y of dtype torch.int64"),
    "label_out_of_range": (
        lambda b: (b[0], torch.full_like(b[1], 3)),
        r"expected labels in \[0, 3\) \(the model has 3 outputs\), got range \[3, 3\]",
    ),
    "x_not_tensor": (lambda b: (b[0].numpy(), b[1]), r"expected x to be a torch.Tensor, got ndarray"),  # type: ignore[return-value]
}


@pytest.mark.parametrize("name", adapters.runnable())
@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_bad_batch_is_rejected_before_the_library_runs(
    name: str, case: str, small_net: nn.Module, small_batch: Batch
) -> None:
    adapter, spy = _with_spy(name)
    corrupt, message = BAD_BATCHES[case]
    x, y = corrupt(small_batch)
    with pytest.raises(ValueError, match=message):
        adapter.generate(small_net, x, y, one_step_spec(name))
    assert not spy.called


@pytest.mark.parametrize("name", adapters.runnable())
def test_spec_that_is_not_an_attack_spec_is_rejected(
    name: str, small_net: nn.Module, small_batch: Batch
) -> None:
    adapter, spy = _with_spy(name)
    with pytest.raises(ValueError, match="expected spec to be an adapters.AttackSpec, got dict"):
        adapter.generate(small_net, *small_batch, {"attack": "fgsm", "eps": 8})  # type: ignore[arg-type]
    assert not spy.called


def test_bad_eps_never_reaches_an_adapter() -> None:
    # eps, eps <= 0 and steps are checked when the spec is built, so no adapter call can carry them.
    for kwargs in ({"eps": 8}, {"eps": 0.0}, {"eps": -1 / 255}, {"steps": 0}):
        with pytest.raises(ValueError):
            AttackSpec(**{"attack": "pgd", "eps": 1 / 255, **kwargs})  # type: ignore[arg-type]


def test_x_errors_do_not_run_the_model(small_batch: Batch) -> None:
    calls = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(12 * 16, 3))
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    x, y = small_batch
    with pytest.raises(ValueError):
        adapters.get("reference").generate(model, x * 2, y, AttackSpec("fgsm", 1 / 255))
    assert calls == []


def test_model_that_does_not_return_class_logits_is_rejected(small_batch: Batch) -> None:
    adapter, spy = _with_spy("art")
    with pytest.raises(ValueError, match=r"expected the model to return logits of shape \[N, num_classes\]"):
        adapter.generate(nn.Identity(), *small_batch, AttackSpec("fgsm", 1 / 255))
    assert not spy.called


def test_the_class_count_is_read_once_per_model_and_rechecked_on_every_forward(small_batch: Batch) -> None:
    """The extra forward that reads num_classes runs on a model's first attack only; a head changed in
    place afterwards is caught by the check on the logits the library sees, and re-read next time."""
    x, y = small_batch
    head = nn.Linear(12 * 16, 3)
    model = nn.Sequential(nn.Flatten(), head)
    rows: list[int] = []
    model.register_forward_pre_hook(lambda module, args: rows.append(int(args[0].shape[0])))
    spec = AttackSpec("fgsm", 1 / 255)
    reference = adapters.get("reference")
    reference.generate(model, x, y, spec)
    assert rows == [1, len(x)]  # the one-image probe, then the attack's forward
    reference.generate(model, x, y, spec)
    assert rows == [1, len(x), len(x)]  # no probe the second time
    # Labels are still checked against the (cached) class count before any library runs.
    with pytest.raises(ValueError, match=r"expected labels in \[0, 3\)"):
        reference.generate(model, x, torch.full_like(y, 3), spec)

    model[1] = nn.Linear(12 * 16, 5)  # the head swapped in place: 5 outputs now
    with pytest.raises(
        ValueError, match=r"expected the model to return logits of shape \[N, 3\] as on its first"
    ):
        reference.generate(model, x, y, spec)
    reference.generate(model, x, y, spec)  # re-read: works with the new head
    assert rows[-2:] == [1, len(x)]
