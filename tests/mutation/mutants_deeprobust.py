# ruff: noqa: E711  (copied library code keeps its own `== None`)
"""Planted bugs in DeepRobust's image attacks, for the mutation suite (merged into ``mutants.MUTANTS``).

Same rules as ``mutants.py``: each function body is copied from the installed DeepRobust 0.2.11
(``deeprobust/image/attack/pgd.py``, ``fgsm.py``) with exactly one plausible change, marked by a
``# MUTATION:`` comment above it that quotes the original line; the only other edits are the
project's formatting (quotes, spacing, line breaks) and ``noqa`` for lint rules the library's own
style breaks. ``PGD.generate`` and ``FGSM.generate`` look up the module-level ``pgd_attack`` and
``fgm`` in their own modules at call time, so that is where those are patched; ``parse_params`` is
patched on the class the adapter instantiates.

Import this file through ``mutants`` (``from mutants import MUTANTS``): it takes ``Mutant`` from there,
and ``mutants`` imports it at its end.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.optim as optim
from advparity.adapters.deeprobust import attack_module
from mutants import Mutant
from numpy import linalg as LA

# The release the function bodies below were copied from (distribution name -> version).
COPIED_FROM: dict[str, str] = {"deeprobust": "0.2.11"}

_pgd_module = attack_module("pgd")
_fgsm_module = attack_module("fgsm")
PGD = _pgd_module.PGD


def _deeprobust_pgd_half_step(mp: pytest.MonkeyPatch) -> None:
    def parse_params(  # type: ignore[no-untyped-def]
        self,
        epsilon=0.03,
        num_steps=40,
        step_size=0.01,
        clip_max=1.0,
        clip_min=0.0,
        print_process=False,
        bound="linf",
    ):
        self.epsilon = epsilon
        self.num_steps = num_steps
        # MUTATION: was `self.step_size = step_size`
        self.step_size = step_size / 2
        self.clip_max = clip_max
        self.clip_min = clip_min
        self.print_process = print_process
        self.bound = bound
        return True

    mp.setattr(PGD, "parse_params", parse_params)


def _deeprobust_pgd_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    def pgd_attack(  # type: ignore[no-untyped-def]
        model, X, y, epsilon, clip_max, clip_min, num_steps, step_size, print_process, bound="linf"
    ):
        out = model(X)
        err = (out.data.max(1)[1] != y.data).float().sum()  # noqa: F841
        # TODO: find a other way
        device = X.device
        imageArray = X.detach().cpu().numpy()
        X_random = np.random.uniform(-epsilon, epsilon, X.shape)
        imageArray = np.clip(imageArray + X_random, 0, 1.0)

        X_pgd = torch.tensor(imageArray).to(device).float()
        X_pgd.requires_grad = True
        eta = torch.zeros_like(X)
        eta.requires_grad = True
        # MUTATION: was `for i in range(num_steps):`
        for i in range(num_steps - 1):
            pred = model(X_pgd)
            loss = nn.CrossEntropyLoss()(pred, y)

            if print_process:
                print("iteration {:.0f}, loss:{:.4f}".format(i, loss))  # noqa: UP032

            loss.backward()

            if bound == "linf":
                eta = step_size * X_pgd.grad.data.sign()
                X_pgd = X_pgd + eta
                eta = torch.clamp(X_pgd.data - X.data, -epsilon, epsilon)

                X_pgd = X.data + eta

                X_pgd = torch.clamp(X_pgd, clip_min, clip_max)

                X_pgd = X_pgd.detach()
                X_pgd.requires_grad_()
                X_pgd.retain_grad()

            if bound == "l2":
                output = model(X + eta)
                incorrect = output.max(1)[1] != y
                correct = (~incorrect).unsqueeze(1).unsqueeze(1).unsqueeze(1).float()
                # Finding the correct examples so as to attack only them
                loss = nn.CrossEntropyLoss()(model(X + eta), y)
                loss.backward()

                eta.data += correct * step_size * eta.grad.detach() / torch.norm(eta.grad.detach())
                eta.data *= epsilon / torch.norm(eta.detach()).clamp(min=epsilon)
                eta.data = torch.min(torch.max(eta.detach(), -X), 1 - X)  # clip X+delta to [0,1]
                eta.grad.zero_()
                X_pgd = X + eta

        return X_pgd

    mp.setattr(_pgd_module, "pgd_attack", pgd_attack)


def _deeprobust_pgd_one_sided_start(mp: pytest.MonkeyPatch) -> None:
    def pgd_attack(  # type: ignore[no-untyped-def]
        model, X, y, epsilon, clip_max, clip_min, num_steps, step_size, print_process, bound="linf"
    ):
        out = model(X)
        err = (out.data.max(1)[1] != y.data).float().sum()  # noqa: F841
        # TODO: find a other way
        device = X.device
        imageArray = X.detach().cpu().numpy()
        # MUTATION: was `X_random = np.random.uniform(-epsilon, epsilon, X.shape)`
        X_random = np.random.uniform(0, epsilon, X.shape)
        imageArray = np.clip(imageArray + X_random, 0, 1.0)

        X_pgd = torch.tensor(imageArray).to(device).float()
        X_pgd.requires_grad = True
        eta = torch.zeros_like(X)
        eta.requires_grad = True
        for i in range(num_steps):
            pred = model(X_pgd)
            loss = nn.CrossEntropyLoss()(pred, y)

            if print_process:
                print("iteration {:.0f}, loss:{:.4f}".format(i, loss))  # noqa: UP032

            loss.backward()

            if bound == "linf":
                eta = step_size * X_pgd.grad.data.sign()
                X_pgd = X_pgd + eta
                eta = torch.clamp(X_pgd.data - X.data, -epsilon, epsilon)

                X_pgd = X.data + eta

                X_pgd = torch.clamp(X_pgd, clip_min, clip_max)

                X_pgd = X_pgd.detach()
                X_pgd.requires_grad_()
                X_pgd.retain_grad()

            if bound == "l2":
                output = model(X + eta)
                incorrect = output.max(1)[1] != y
                correct = (~incorrect).unsqueeze(1).unsqueeze(1).unsqueeze(1).float()
                # Finding the correct examples so as to attack only them
                loss = nn.CrossEntropyLoss()(model(X + eta), y)
                loss.backward()

                eta.data += correct * step_size * eta.grad.detach() / torch.norm(eta.grad.detach())
                eta.data *= epsilon / torch.norm(eta.detach()).clamp(min=epsilon)
                eta.data = torch.min(torch.max(eta.detach(), -X), 1 - X)  # clip X+delta to [0,1]
                eta.grad.zero_()
                X_pgd = X + eta

        return X_pgd

    mp.setattr(_pgd_module, "pgd_attack", pgd_attack)


def _deeprobust_pgd_no_projection(mp: pytest.MonkeyPatch) -> None:
    def pgd_attack(  # type: ignore[no-untyped-def]
        model, X, y, epsilon, clip_max, clip_min, num_steps, step_size, print_process, bound="linf"
    ):
        out = model(X)
        err = (out.data.max(1)[1] != y.data).float().sum()  # noqa: F841
        # TODO: find a other way
        device = X.device
        imageArray = X.detach().cpu().numpy()
        X_random = np.random.uniform(-epsilon, epsilon, X.shape)
        imageArray = np.clip(imageArray + X_random, 0, 1.0)

        X_pgd = torch.tensor(imageArray).to(device).float()
        X_pgd.requires_grad = True
        eta = torch.zeros_like(X)
        eta.requires_grad = True
        for i in range(num_steps):
            pred = model(X_pgd)
            loss = nn.CrossEntropyLoss()(pred, y)

            if print_process:
                print("iteration {:.0f}, loss:{:.4f}".format(i, loss))  # noqa: UP032

            loss.backward()

            if bound == "linf":
                eta = step_size * X_pgd.grad.data.sign()
                X_pgd = X_pgd + eta
                # MUTATION: was `eta = torch.clamp(X_pgd.data - X.data, -epsilon, epsilon)`
                eta = X_pgd.data - X.data

                X_pgd = X.data + eta

                X_pgd = torch.clamp(X_pgd, clip_min, clip_max)

                X_pgd = X_pgd.detach()
                X_pgd.requires_grad_()
                X_pgd.retain_grad()

            if bound == "l2":
                output = model(X + eta)
                incorrect = output.max(1)[1] != y
                correct = (~incorrect).unsqueeze(1).unsqueeze(1).unsqueeze(1).float()
                # Finding the correct examples so as to attack only them
                loss = nn.CrossEntropyLoss()(model(X + eta), y)
                loss.backward()

                eta.data += correct * step_size * eta.grad.detach() / torch.norm(eta.grad.detach())
                eta.data *= epsilon / torch.norm(eta.detach()).clamp(min=epsilon)
                eta.data = torch.min(torch.max(eta.detach(), -X), 1 - X)  # clip X+delta to [0,1]
                eta.grad.zero_()
                X_pgd = X + eta

        return X_pgd

    mp.setattr(_pgd_module, "pgd_attack", pgd_attack)


def _deeprobust_fgsm_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    def fgm(model, image, label, epsilon, order, clip_min, clip_max, device):  # type: ignore[no-untyped-def]
        imageArray = image.cpu().detach().numpy()
        X_fgsm = torch.tensor(imageArray).to(device)

        # print(image.data)

        X_fgsm.requires_grad = True

        opt = optim.SGD([X_fgsm], lr=1e-3)
        opt.zero_grad()

        loss = nn.CrossEntropyLoss()(model(X_fgsm), label)

        loss.backward()
        # print(X_fgsm)
        # print(X_fgsm.grad)
        if order == np.inf:
            # MUTATION: was `d = epsilon * X_fgsm.grad.data.sign()`
            d = -epsilon * X_fgsm.grad.data.sign()
        elif order == 2:
            gradient = X_fgsm.grad
            d = torch.zeros(gradient.shape, device=device)
            for i in range(gradient.shape[0]):
                norm_grad = gradient[i].data / LA.norm(gradient[i].data.cpu().numpy())
                d[i] = norm_grad * epsilon
        else:
            raise ValueError("Other p norms may need other algorithms")

        x_adv = X_fgsm + d

        if clip_max == None and clip_min == None:
            clip_max = np.inf
            clip_min = -np.inf

        x_adv = torch.clamp(x_adv, clip_min, clip_max)

        return x_adv

    mp.setattr(_fgsm_module, "fgm", fgm)


def _deeprobust_fgsm_no_clip(mp: pytest.MonkeyPatch) -> None:
    def fgm(model, image, label, epsilon, order, clip_min, clip_max, device):  # type: ignore[no-untyped-def]
        imageArray = image.cpu().detach().numpy()
        X_fgsm = torch.tensor(imageArray).to(device)

        # print(image.data)

        X_fgsm.requires_grad = True

        opt = optim.SGD([X_fgsm], lr=1e-3)
        opt.zero_grad()

        loss = nn.CrossEntropyLoss()(model(X_fgsm), label)

        loss.backward()
        # print(X_fgsm)
        # print(X_fgsm.grad)
        if order == np.inf:
            d = epsilon * X_fgsm.grad.data.sign()
        elif order == 2:
            gradient = X_fgsm.grad
            d = torch.zeros(gradient.shape, device=device)
            for i in range(gradient.shape[0]):
                norm_grad = gradient[i].data / LA.norm(gradient[i].data.cpu().numpy())
                d[i] = norm_grad * epsilon
        else:
            raise ValueError("Other p norms may need other algorithms")

        x_adv = X_fgsm + d

        if clip_max == None and clip_min == None:
            clip_max = np.inf
            clip_min = -np.inf

        # MUTATION: was `x_adv = torch.clamp(x_adv,clip_min, clip_max)`
        pass

        return x_adv

    mp.setattr(_fgsm_module, "fgm", fgm)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "deeprobust-pgd-half-step",
        "deeprobust",
        "pgd",
        "step size",
        "DeepRobust PGD's parse_params stores half the step_size it is given.",
        _deeprobust_pgd_half_step,
    ),
    Mutant(
        "deeprobust-pgd-one-step-fewer",
        "deeprobust",
        "pgd",
        "step count",
        "DeepRobust pgd_attack runs num_steps-1 iterations.",
        _deeprobust_pgd_one_step_fewer,
    ),
    Mutant(
        "deeprobust-pgd-one-sided-start",
        "deeprobust",
        "pgd",
        "one-sided start",
        "DeepRobust pgd_attack draws its random start from U(0, eps) instead of U(-eps, eps).",
        _deeprobust_pgd_one_sided_start,
    ),
    Mutant(
        "deeprobust-pgd-no-projection",
        "deeprobust",
        "pgd",
        "projection",
        "DeepRobust pgd_attack never projects onto the eps-ball (only clips to [clip_min, clip_max]); the guard rejects the output (AttackOutputError, eps-ball).",
        _deeprobust_pgd_no_projection,
    ),
    Mutant(
        "deeprobust-fgsm-sign-reversed",
        "deeprobust",
        "fgsm",
        "sign",
        "DeepRobust FGSM (fgm, L∞) steps against the gradient (x - eps·sign(∇)), lowering the loss.",
        _deeprobust_fgsm_sign_reversed,
    ),
    Mutant(
        "deeprobust-fgsm-no-clip",
        "deeprobust",
        "fgsm",
        "clipping",
        "DeepRobust FGSM (fgm) does not clip to [clip_min, clip_max]; the guard rejects the output (AttackOutputError, [0, 1] box).",
        _deeprobust_fgsm_no_clip,
    ),
)
