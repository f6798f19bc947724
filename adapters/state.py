"""The model's state around an attack: snapshot everything a library could disturb, restore it exactly."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter or buffer; None for a stateless model."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return None


@dataclass
class _ParamState:
    param: nn.Parameter
    data: torch.Tensor
    grad: torch.Tensor | None  # the original .grad object: restored by identity, not only by value
    grad_data: torch.Tensor | None
    requires_grad: bool


@dataclass
class ModelState:
    """Everything an attack could disturb: modes, parameters, buffers, ``.grad``, ``requires_grad``."""

    modes: list[tuple[nn.Module, bool]]
    # Which object each parameter/buffer slot held: (module, its _parameters or _buffers dict, name, object).
    slots: list[tuple[nn.Module, dict[str, Any], str, torch.Tensor | None]]
    params: list[_ParamState]
    buffers: list[tuple[torch.Tensor, torch.Tensor]]


def snapshot(model: nn.Module) -> ModelState:
    # One walk over the modules, reading their parameter and buffer dicts directly: the recursive
    # named_parameters()/named_buffers() helpers cost ~20 ms per call on DenseNet-121 (its ~600 modules),
    # which was most of the adapters' overhead on a batch of FGSM.
    modes: list[tuple[nn.Module, bool]] = []
    slots: list[tuple[nn.Module, dict[str, Any], str, torch.Tensor | None]] = []
    params: dict[int, _ParamState] = {}  # by id: a parameter shared by two modules is saved once
    buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in model.modules():
        modes.append((module, module.training))
        for name, p in module._parameters.items():
            slots.append((module, module._parameters, name, p))
            if p is not None and id(p) not in params:
                params[id(p)] = _ParamState(
                    param=p,
                    data=p.detach().clone(),
                    grad=p.grad,
                    grad_data=None if p.grad is None else p.grad.detach().clone(),
                    requires_grad=p.requires_grad,
                )
        for name, b in module._buffers.items():
            slots.append((module, module._buffers, name, b))
            if b is not None and id(b) not in buffers:
                buffers[id(b)] = (b, b.detach().clone())
    return ModelState(modes, slots, list(params.values()), list(buffers.values()))


def restore(model: nn.Module, state: ModelState, library: str) -> list[str]:
    """Put the model back exactly as :func:`snapshot` saw it; warn and return what had changed
    (``"parameters"``, ``"buffers"``)."""
    for module, registry, name, obj in state.slots:
        # A dict lookup, not getattr: nn.Module.__getattr__ costs ~µs each, ~1,100 slots on DenseNet-121.
        if registry.get(name) is not obj:
            setattr(module, name, obj)
    changed: list[str] = []
    with torch.no_grad():
        for ps in state.params:
            if not torch.equal(ps.param, ps.data):
                changed.append("parameters")
                ps.param.copy_(ps.data)
            ps.param.requires_grad_(ps.requires_grad)
            if ps.grad is not None and ps.grad_data is not None:
                # Foolbox's backward() accumulates into the existing .grad tensor in place.
                ps.grad.copy_(ps.grad_data)
            # ART's zero_grad() sets .grad to None; the caller's gradient object comes back.
            if ps.param.grad is not ps.grad:
                ps.param.grad = ps.grad
        for buffer, saved in state.buffers:
            if not torch.equal(buffer, saved):
                changed.append("buffers")
                buffer.copy_(saved)
    for module, training in state.modes:
        if module.training != training:  # nn.Module.__setattr__ is slow: set only what changed
            module.training = training  # per module: train()/eval() would recurse and undo frozen BN
    if changed:
        logger.warning("%s changed the model's %s during the attack; restored", library, sorted(set(changed)))
    return sorted(set(changed))
