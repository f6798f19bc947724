"""Planted bugs ("mutants") in adv-lib, for the mutation suite (see mutants.py for the rules).

adv-lib's ``pgd_linf`` hands every restart to the module-level ``_pgd_linf`` through
``functools.partial``, looked up in ``adv_lib.attacks.projected_gradient_descent`` at each call: the
mutants replace that name there. Each replacement is ``_pgd_linf`` as released in adv-lib 0.2.8 with
exactly one change, marked by a ``# MUTATION:`` comment quoting the original line; the other edits are
mechanical (annotations dropped, the code formatted).

Its ``apgd`` hands every restart to the module-level ``_apgd`` (``adv_lib.attacks.auto_pgd``) likewise.
adv-lib's APGD departs from the original (adapters/adv_lib.py), so its cells disagree before any bug is
planted: its mutants must change what the report says beyond that — an output outside the eps-ball, or
other evidence than the unmutated cells' (test_mutation_suite.py holds them to that). They wrap ``_apgd`` and change one argument, as marked.

The adapter's FGSM is ``pgd_linf`` with one iteration and no random start, which returns x unchanged
whatever happens inside the step (adapters/adv_lib.py): a bug shows in FGSM only where it changes
which points are evaluated, so the FGSM mutant is the one that adds an iteration.
"""

from __future__ import annotations

import warnings
from functools import partial

import pytest
import torch
from mutants import Mutant
from torch import Tensor
from torch.autograd import grad
from torch.nn import functional as F

with warnings.catch_warnings():
    # adv_lib.utils.projections warns on import (distutils' LooseVersion), as in adapters/adv_lib.py.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*distutils.*")
    from adv_lib.attacks import auto_pgd, projected_gradient_descent
    from adv_lib.utils.losses import difference_of_logits, difference_of_logits_ratio
    from adv_lib.utils.projections import clamp_

# The release the function bodies below were copied from (distribution name -> version).
COPIED_FROM: dict[str, str] = {"adv-lib": "0.2.8"}


def _adv_lib_pgd_one_sided_start(mp: pytest.MonkeyPatch) -> None:
    def _pgd_linf(
        model,
        inputs,
        labels,
        ε,
        targeted=False,
        steps=40,
        random_init=True,
        loss_function="ce",
        relative_step_size=0.01 / 0.3,
        absolute_step_size=None,
    ):
        _loss_functions = {
            "ce": (partial(F.cross_entropy, reduction="none"), 1),
            "dl": (difference_of_logits, -1),
            "dlr": (partial(difference_of_logits_ratio, targeted=targeted), -1),
        }

        device = inputs.device
        batch_size = len(inputs)
        batch_view = lambda tensor: tensor.view(batch_size, *[1] * (inputs.ndim - 1))  # noqa: E731
        lower, upper = torch.maximum(-inputs, -batch_view(ε)), torch.minimum(1 - inputs, batch_view(ε))

        loss_func, multiplier = _loss_functions[loss_function.lower()]

        step_size: Tensor = (
            ε * relative_step_size if absolute_step_size is None else torch.full_like(ε, absolute_step_size)
        )
        if targeted:
            step_size *= -1

        δ = torch.zeros_like(inputs, requires_grad=True)
        best_adv = inputs.clone()
        adv_found = torch.zeros(batch_size, dtype=torch.bool, device=device)

        if random_init:
            # MUTATION: was `δ.data.uniform_(-1, 1).mul_(batch_view(ε))`
            δ.data.uniform_(0, 1).mul_(batch_view(ε))
            clamp_(δ, lower=lower, upper=upper)

        for i in range(steps):
            adv_inputs = inputs + δ
            logits = model(adv_inputs)

            if i == 0 and loss_function.lower() in ["dl", "dlr"]:
                labels_infhot = torch.zeros_like(logits).scatter_(1, labels.unsqueeze(1), float("inf"))
                loss_func = partial(loss_func, labels_infhot=labels_infhot)

            loss = multiplier * loss_func(logits, labels)
            δ_grad = grad(loss.sum(), δ, only_inputs=True)[0].sign_()

            is_adv = (logits.argmax(1) == labels) if targeted else (logits.argmax(1) != labels)
            best_adv = torch.where(batch_view(is_adv), adv_inputs.detach(), best_adv)
            adv_found.logical_or_(is_adv)

            δ.data.addcmul_(batch_view(step_size), δ_grad)
            clamp_(δ, lower=lower, upper=upper)

        return adv_found, best_adv

    mp.setattr(projected_gradient_descent, "_pgd_linf", _pgd_linf)


def _adv_lib_pgd_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    def _pgd_linf(
        model,
        inputs,
        labels,
        ε,
        targeted=False,
        steps=40,
        random_init=True,
        loss_function="ce",
        relative_step_size=0.01 / 0.3,
        absolute_step_size=None,
    ):
        _loss_functions = {
            "ce": (partial(F.cross_entropy, reduction="none"), 1),
            "dl": (difference_of_logits, -1),
            "dlr": (partial(difference_of_logits_ratio, targeted=targeted), -1),
        }

        device = inputs.device
        batch_size = len(inputs)
        batch_view = lambda tensor: tensor.view(batch_size, *[1] * (inputs.ndim - 1))  # noqa: E731
        lower, upper = torch.maximum(-inputs, -batch_view(ε)), torch.minimum(1 - inputs, batch_view(ε))

        loss_func, multiplier = _loss_functions[loss_function.lower()]

        step_size: Tensor = (
            ε * relative_step_size if absolute_step_size is None else torch.full_like(ε, absolute_step_size)
        )
        # MUTATION: was `if targeted:`
        if not targeted:
            step_size *= -1

        δ = torch.zeros_like(inputs, requires_grad=True)
        best_adv = inputs.clone()
        adv_found = torch.zeros(batch_size, dtype=torch.bool, device=device)

        if random_init:
            δ.data.uniform_(-1, 1).mul_(batch_view(ε))
            clamp_(δ, lower=lower, upper=upper)

        for i in range(steps):
            adv_inputs = inputs + δ
            logits = model(adv_inputs)

            if i == 0 and loss_function.lower() in ["dl", "dlr"]:
                labels_infhot = torch.zeros_like(logits).scatter_(1, labels.unsqueeze(1), float("inf"))
                loss_func = partial(loss_func, labels_infhot=labels_infhot)

            loss = multiplier * loss_func(logits, labels)
            δ_grad = grad(loss.sum(), δ, only_inputs=True)[0].sign_()

            is_adv = (logits.argmax(1) == labels) if targeted else (logits.argmax(1) != labels)
            best_adv = torch.where(batch_view(is_adv), adv_inputs.detach(), best_adv)
            adv_found.logical_or_(is_adv)

            δ.data.addcmul_(batch_view(step_size), δ_grad)
            clamp_(δ, lower=lower, upper=upper)

        return adv_found, best_adv

    mp.setattr(projected_gradient_descent, "_pgd_linf", _pgd_linf)


def _adv_lib_pgd_no_box(mp: pytest.MonkeyPatch) -> None:
    def _pgd_linf(
        model,
        inputs,
        labels,
        ε,
        targeted=False,
        steps=40,
        random_init=True,
        loss_function="ce",
        relative_step_size=0.01 / 0.3,
        absolute_step_size=None,
    ):
        _loss_functions = {
            "ce": (partial(F.cross_entropy, reduction="none"), 1),
            "dl": (difference_of_logits, -1),
            "dlr": (partial(difference_of_logits_ratio, targeted=targeted), -1),
        }

        device = inputs.device
        batch_size = len(inputs)
        batch_view = lambda tensor: tensor.view(batch_size, *[1] * (inputs.ndim - 1))  # noqa: E731
        # MUTATION: was `lower, upper = torch.maximum(-inputs, -batch_view(ε)), torch.minimum(1 - inputs, batch_view(ε))`
        lower, upper = -batch_view(ε), batch_view(ε)

        loss_func, multiplier = _loss_functions[loss_function.lower()]

        step_size: Tensor = (
            ε * relative_step_size if absolute_step_size is None else torch.full_like(ε, absolute_step_size)
        )
        if targeted:
            step_size *= -1

        δ = torch.zeros_like(inputs, requires_grad=True)
        best_adv = inputs.clone()
        adv_found = torch.zeros(batch_size, dtype=torch.bool, device=device)

        if random_init:
            δ.data.uniform_(-1, 1).mul_(batch_view(ε))
            clamp_(δ, lower=lower, upper=upper)

        for i in range(steps):
            adv_inputs = inputs + δ
            logits = model(adv_inputs)

            if i == 0 and loss_function.lower() in ["dl", "dlr"]:
                labels_infhot = torch.zeros_like(logits).scatter_(1, labels.unsqueeze(1), float("inf"))
                loss_func = partial(loss_func, labels_infhot=labels_infhot)

            loss = multiplier * loss_func(logits, labels)
            δ_grad = grad(loss.sum(), δ, only_inputs=True)[0].sign_()

            is_adv = (logits.argmax(1) == labels) if targeted else (logits.argmax(1) != labels)
            best_adv = torch.where(batch_view(is_adv), adv_inputs.detach(), best_adv)
            adv_found.logical_or_(is_adv)

            δ.data.addcmul_(batch_view(step_size), δ_grad)
            clamp_(δ, lower=lower, upper=upper)

        return adv_found, best_adv

    mp.setattr(projected_gradient_descent, "_pgd_linf", _pgd_linf)


def _adv_lib_pgd_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    def _pgd_linf(
        model,
        inputs,
        labels,
        ε,
        targeted=False,
        steps=40,
        random_init=True,
        loss_function="ce",
        relative_step_size=0.01 / 0.3,
        absolute_step_size=None,
    ):
        _loss_functions = {
            "ce": (partial(F.cross_entropy, reduction="none"), 1),
            "dl": (difference_of_logits, -1),
            "dlr": (partial(difference_of_logits_ratio, targeted=targeted), -1),
        }

        device = inputs.device
        batch_size = len(inputs)
        batch_view = lambda tensor: tensor.view(batch_size, *[1] * (inputs.ndim - 1))  # noqa: E731
        lower, upper = torch.maximum(-inputs, -batch_view(ε)), torch.minimum(1 - inputs, batch_view(ε))

        loss_func, multiplier = _loss_functions[loss_function.lower()]

        step_size: Tensor = (
            ε * relative_step_size if absolute_step_size is None else torch.full_like(ε, absolute_step_size)
        )
        if targeted:
            step_size *= -1

        δ = torch.zeros_like(inputs, requires_grad=True)
        best_adv = inputs.clone()
        adv_found = torch.zeros(batch_size, dtype=torch.bool, device=device)

        if random_init:
            δ.data.uniform_(-1, 1).mul_(batch_view(ε))
            clamp_(δ, lower=lower, upper=upper)

        # MUTATION: was `for i in range(steps):`
        for i in range(steps - 1):
            adv_inputs = inputs + δ
            logits = model(adv_inputs)

            if i == 0 and loss_function.lower() in ["dl", "dlr"]:
                labels_infhot = torch.zeros_like(logits).scatter_(1, labels.unsqueeze(1), float("inf"))
                loss_func = partial(loss_func, labels_infhot=labels_infhot)

            loss = multiplier * loss_func(logits, labels)
            δ_grad = grad(loss.sum(), δ, only_inputs=True)[0].sign_()

            is_adv = (logits.argmax(1) == labels) if targeted else (logits.argmax(1) != labels)
            best_adv = torch.where(batch_view(is_adv), adv_inputs.detach(), best_adv)
            adv_found.logical_or_(is_adv)

            δ.data.addcmul_(batch_view(step_size), δ_grad)
            clamp_(δ, lower=lower, upper=upper)

        return adv_found, best_adv

    mp.setattr(projected_gradient_descent, "_pgd_linf", _pgd_linf)


def _adv_lib_apgd_ball_too_large(mp: pytest.MonkeyPatch) -> None:
    released = auto_pgd._apgd

    def _apgd(*args, eps, **kwargs):  # type: ignore[no-untyped-def]
        # MUTATION: was `eps` (apgd's `eps=eps[to_attack]`): a ball half again as large
        return released(*args, eps=1.5 * eps, **kwargs)

    mp.setattr(auto_pgd, "_apgd", _apgd)


def _adv_lib_apgd_one_iteration_short(mp: pytest.MonkeyPatch) -> None:
    released = auto_pgd._apgd

    def _apgd(*args, n_iter, **kwargs):  # type: ignore[no-untyped-def]
        # MUTATION: was `n_iter` (apgd's `n_iter=n_iter`)
        return released(*args, n_iter=n_iter - 1, **kwargs)

    mp.setattr(auto_pgd, "_apgd", _apgd)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "adv-lib-pgd-one-sided-start",
        "adv-lib",
        "pgd",
        "one-sided start",
        "adv-lib PGD draws its random start from U(0, 1)·eps instead of U(-1, 1)·eps.",
        _adv_lib_pgd_one_sided_start,
    ),
    Mutant(
        "adv-lib-pgd-sign-reversed",
        "adv-lib",
        "pgd",
        "sign",
        "adv-lib PGD negates its step when the attack is *not* targeted (`if not targeted`), so it descends the cross-entropy.",
        _adv_lib_pgd_sign_reversed,
    ),
    Mutant(
        "adv-lib-pgd-no-box",
        "adv-lib",
        "pgd",
        "clipping",
        "adv-lib PGD clamps δ to [-eps, eps] only, not to the [0, 1] box; the guard rejects the output (AttackOutputError, [0, 1] box).",
        _adv_lib_pgd_no_box,
    ),
    Mutant(
        "adv-lib-pgd-one-step-fewer",
        "adv-lib",
        "pgd",
        "step count",
        "adv-lib PGD runs steps-1 iterations.",
        _adv_lib_pgd_one_step_fewer,
    ),
    Mutant(
        "adv-lib-apgd-ball-too-large",
        "adv-lib",
        "apgd",
        "projection",
        "adv-lib's APGD draws its start in, and projects onto, a ball of 1.5·eps.",
        _adv_lib_apgd_ball_too_large,
        where=(("loss", "ce"),),
    ),
    Mutant(
        "adv-lib-apgd-one-iteration-short",
        "adv-lib",
        "apgd",
        "step count",
        "adv-lib's APGD runs one iteration fewer than asked.",
        _adv_lib_apgd_one_iteration_short,
        where=(("loss", "dlr"),),
    ),
)
