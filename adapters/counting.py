"""What an attack call spends, measured on the model: forward and input-gradient rows, zero gradients.

The libraries get :class:`PassCounter` instead of the user's model; it also checks every logits width
they see against the model's class count, read once per model (:func:`cached_num_classes`).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class AttackStats:
    """What one attack call spent, measured by hooks on the model (not assumed).

    ``forward_passes_per_sample``: rows that went through the model's forward, divided by N (a
    library that predicts the clean and adversarial batch for logging pays 2 extra here).
    ``backward_passes_per_sample``: rows of input gradient computed, divided by N.
    ``zero_grad_elements``: per sample, input components (of ``elements_per_sample = C·H·W``) whose
    gradient was exactly 0 in the first gradient that sample received — FGSM's only gradient, PGD's
    gradient at its start point; ``sign(0) = 0`` means those components do not move.
    ``zero_grad_elements_all_steps``: the same, summed over every gradient of the attack.
    ``state_changes``: what the library left changed in the model when it returned (modules out of eval
    mode, parameter or buffer values), before the guard restored it; empty when nothing was.
    """

    library: str
    n_samples: int
    forward_passes_per_sample: float
    backward_passes_per_sample: float
    elements_per_sample: int
    zero_grad_elements: np.ndarray
    zero_grad_elements_all_steps: np.ndarray
    seconds: float
    state_changes: tuple[str, ...] = ()


# num_classes per model object and input signature, so only a model's first attack pays the extra
# forward pass (~30 ms on DenseNet-121: 10 % of a 16-image FGSM). PassCounter checks every logits
# width the libraries see against it, so a head changed in place between calls is caught, not trusted.
_NUM_CLASSES: weakref.WeakKeyDictionary[nn.Module, dict[tuple[object, ...], int]] = (
    weakref.WeakKeyDictionary()
)


def _input_signature(x: torch.Tensor) -> tuple[object, ...]:
    return (tuple(x.shape[1:]), x.dtype, x.device)


def cached_num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """:func:`infer_num_classes`, run once per model and input signature."""
    known = _NUM_CLASSES.setdefault(model, {})
    key = _input_signature(x)
    if key not in known:
        known[key] = infer_num_classes(model, x)
    return known[key]


def forget_num_classes(model: nn.Module) -> None:
    _NUM_CLASSES.pop(model, None)


def infer_num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The class count from the model's own output on one image (no assumption about the head)."""
    with torch.no_grad():
        logits = model(x[:1])
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != 1:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"expected the model to return logits of shape [N, num_classes], got {got} for N=1")
    if logits.shape[1] < 2:
        raise ValueError(f"expected at least 2 classes in the model's output, got {logits.shape[1]}")
    return int(logits.shape[1])


class PassCounter(nn.Module):
    """Transparent wrapper handed to the libraries instead of the user's model.

    Counts rows through forward and, via a tensor hook on the input, rows of input gradient through
    backward. A wrapper (rather than a hook on the model) also sees models that ART unrolls: ART calls
    the children of an ``nn.Sequential`` one by one, bypassing the top module's forward hooks.
    """

    def __init__(
        self, model: nn.Module, n_samples: int, elements_per_sample: int, num_classes: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes  # checked on every forward when given
        self.n_samples = n_samples
        self.elements_per_sample = elements_per_sample
        self.forward_rows = 0
        self.backward_rows = 0
        self._cursor = 0  # rows of gradient map to samples in order (libraries keep batch order)
        self._zero_records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_rows += int(x.shape[0])
        if x.requires_grad:
            x.register_hook(self._on_input_grad)
        logits = self.model(x)
        if self.num_classes is not None and (
            not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != self.num_classes
        ):
            forget_num_classes(self.model)
            got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(
                f"expected the model to return logits of shape [N, {self.num_classes}] as on its first attack, "
                f"got {got}; was the model changed in place? (the next attack re-reads its output size)"
            )
        return logits

    def _on_input_grad(self, grad: torch.Tensor) -> None:
        rows = int(grad.shape[0])
        index = (self._cursor + torch.arange(rows, device=grad.device)) % self.n_samples
        self._zero_records.append((index, (grad.reshape(rows, -1) == 0).sum(dim=1)))
        self._cursor = (self._cursor + rows) % self.n_samples
        self.backward_rows += rows

    def stats(self, library: str, seconds: float, state_changes: Sequence[str] = ()) -> AttackStats:
        first = np.zeros(self.n_samples, dtype=np.int64)
        total = np.zeros(self.n_samples, dtype=np.int64)
        seen = np.zeros(self.n_samples, dtype=bool)
        for index, zeros in self._zero_records:
            idx, cnt = index.cpu().numpy(), zeros.cpu().numpy()
            fresh = ~seen[idx]
            first[idx[fresh]] = cnt[fresh]
            seen[idx] = True
            np.add.at(total, idx, cnt)
        return AttackStats(
            library=library,
            n_samples=self.n_samples,
            forward_passes_per_sample=self.forward_rows / self.n_samples,
            backward_passes_per_sample=self.backward_rows / self.n_samples,
            elements_per_sample=self.elements_per_sample,
            zero_grad_elements=first,
            zero_grad_elements_all_steps=total,
            seconds=seconds,
            state_changes=tuple(state_changes),
        )
