# ruff: noqa: SIM102, SIM108  (copied library code keeps its own if/else style)
"""Planted bugs in BIM (I-FGSM) and MI-FGSM of ART, torchattacks and Foolbox (rules: mutants.py).

Same releases and the same rules as mutants.py: each replaced function is copied from the installed
source with exactly one plausible change, marked by a ``# MUTATION:`` comment quoting the original line,
and patched where the library looks it up. The suite runs these attacks' entries of
``suite.ITERATIVE_ATTACKS`` (BIM-3 and MI-FGSM-3 at 2/255, steps of eps/4, MI-FGSM with decay 1.0).
Three steps of eps/4 never leave the eps-ball, so a bug of the projection onto it cannot show there:
the bugs below are of the step, its sign, the step count, and the momentum.

Where the libraries compute them:

* ART's ``BasicIterativeMethod`` (``art/attacks/evasion/iterative_method.py``) is
  ``ProjectedGradientDescent`` with ``norm=np.inf, num_random_init=0``, built in its ``__init__`` (so a
  bug there reaches BIM alone); MI-FGSM is ``ProjectedGradientDescent(decay=...)``, whose momentum is
  computed only when ``decay`` is set (``ProjectedGradientDescentPyTorch._compute_perturbation_pytorch``),
  so a bug in that block reaches MI-FGSM alone.
* torchattacks has a class per attack, ``BIM`` (``torchattacks/attacks/bim.py``) and ``MIFGSM``
  (``mifgsm.py``).
* Foolbox's ``LinfBasicIterativeAttack`` is ``LinfBaseGradientDescent`` (``BaseGradientDescent.run``);
  each mutant is set on that subclass, as in mutants.py, so that PGD and FGSM keep the library's own.
  Foolbox's MI-FGSM has no mutants: it is a declared departure (it accumulates the gradients' signs,
  ``adapters/foolbox.py``), so its cells already disagree with the reference unmutated, and a planted
  bug could not be shown to be *caught*.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from mutants import Mutant, _art_pgd_logger
from torch import nn

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import eagerpy as ep  # noqa: E402
from art.attacks.evasion import BasicIterativeMethod  # noqa: E402
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (  # noqa: E402
    ProjectedGradientDescentPyTorch,
)
from torchattacks.attacks.bim import BIM  # noqa: E402
from torchattacks.attacks.mifgsm import MIFGSM  # noqa: E402

with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8 (as in adapters/foolbox.py).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    from foolbox.attacks.base import get_criterion, raise_if_kwargs, verify_input_bounds
    from foolbox.attacks.basic_iterative_method import LinfBasicIterativeAttack
    from foolbox.criteria import Misclassification

# The kinds of bug this module adds to mutants.BUGS (merged there).
BUGS: tuple[str, ...] = ("momentum",)  # MI-FGSM's accumulation: its decay, what it keeps across steps


# =================================================================================================
# torchattacks 3.5.1 (torchattacks/attacks/bim.py): BIM.__init__, BIM.forward
# =================================================================================================


def _torchattacks_bim_half_step(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10):  # type: ignore[no-untyped-def]
        super(BIM, self).__init__("BIM", model)
        self.eps = eps
        # MUTATION: was `self.alpha = alpha`
        self.alpha = alpha / 2
        if steps == 0:
            self.steps = int(min(eps * 255 + 4, 1.25 * eps * 255))
        else:
            self.steps = steps
        self.supported_mode = ["default", "targeted"]

    mp.setattr(BIM, "__init__", __init__)


def _torchattacks_bim_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10):  # type: ignore[no-untyped-def]
        super(BIM, self).__init__("BIM", model)
        self.eps = eps
        self.alpha = alpha
        if steps == 0:
            self.steps = int(min(eps * 255 + 4, 1.25 * eps * 255))
        else:
            # MUTATION: was `self.steps = steps`
            self.steps = steps - 1
        self.supported_mode = ["default", "targeted"]

    mp.setattr(BIM, "__init__", __init__)


def _torchattacks_bim_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        ori_images = images.clone().detach()

        for _ in range(self.steps):
            images.requires_grad = True
            outputs = self.get_logits(images)

            # Calculate loss
            if self.targeted:
                cost = -loss(outputs, target_labels)
            else:
                cost = loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, images, retain_graph=False, create_graph=False)[0]

            # MUTATION: was `adv_images = images + self.alpha * grad.sign()`
            adv_images = images - self.alpha * grad.sign()
            a = torch.clamp(ori_images - self.eps, min=0)
            b = (adv_images >= a).float() * adv_images + (adv_images < a).float() * a  # nopep8
            c = (b > ori_images + self.eps).float() * (ori_images + self.eps) + (
                b <= ori_images + self.eps
            ).float() * b  # nopep8
            images = torch.clamp(c, max=1).detach()

        return images

    mp.setattr(BIM, "forward", forward)


# =================================================================================================
# torchattacks 3.5.1 (torchattacks/attacks/mifgsm.py): MIFGSM.__init__, MIFGSM.forward
# =================================================================================================


def _torchattacks_mifgsm_half_step(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10, decay=1.0):  # type: ignore[no-untyped-def]
        super(MIFGSM, self).__init__("MIFGSM", model)
        self.eps = eps
        self.steps = steps
        self.decay = decay
        # MUTATION: was `self.alpha = alpha`
        self.alpha = alpha / 2
        self.supported_mode = ["default", "targeted"]

    mp.setattr(MIFGSM, "__init__", __init__)


def _torchattacks_mifgsm_signed_mean(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        momentum = torch.zeros_like(images).detach().to(self.device)

        loss = nn.CrossEntropyLoss()

        adv_images = images.clone().detach()

        for _ in range(self.steps):
            adv_images.requires_grad = True
            outputs = self.get_logits(adv_images)

            # Calculate loss
            if self.targeted:
                cost = -loss(outputs, target_labels)
            else:
                cost = loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]

            # MUTATION: was `grad = grad / torch.mean(torch.abs(grad), dim=(1, 2, 3), keepdim=True)`
            grad = grad / torch.mean(grad, dim=(1, 2, 3), keepdim=True)
            grad = grad + momentum * self.decay
            momentum = grad

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(MIFGSM, "forward", forward)


def _torchattacks_mifgsm_momentum_overweighted(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        momentum = torch.zeros_like(images).detach().to(self.device)

        loss = nn.CrossEntropyLoss()

        adv_images = images.clone().detach()

        for _ in range(self.steps):
            adv_images.requires_grad = True
            outputs = self.get_logits(adv_images)

            # Calculate loss
            if self.targeted:
                cost = -loss(outputs, target_labels)
            else:
                cost = loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]

            grad = grad / torch.mean(torch.abs(grad), dim=(1, 2, 3), keepdim=True)
            # MUTATION: was `grad = grad + momentum * self.decay`
            grad = grad + momentum * (1 + self.decay)
            momentum = grad

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(MIFGSM, "forward", forward)


# =================================================================================================
# ART 1.20.1: BasicIterativeMethod.__init__ (iterative_method.py); MI-FGSM's momentum in
# ProjectedGradientDescentPyTorch._compute_perturbation_pytorch (reached only with decay set).
# =================================================================================================


def _art_bim_half_step(mp: pytest.MonkeyPatch) -> None:
    def __init__(  # type: ignore[no-untyped-def]
        self,
        estimator,
        eps=0.3,
        eps_step=0.1,
        max_iter=100,
        targeted=False,
        batch_size=32,
        verbose=True,
    ):
        super(BasicIterativeMethod, self).__init__(
            estimator=estimator,
            norm=np.inf,
            eps=eps,
            # MUTATION: was `eps_step=eps_step,`
            eps_step=eps_step / 2,
            max_iter=max_iter,
            targeted=targeted,
            num_random_init=0,
            batch_size=batch_size,
            verbose=verbose,
        )

    mp.setattr(BasicIterativeMethod, "__init__", __init__)


def _art_bim_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    def __init__(  # type: ignore[no-untyped-def]
        self,
        estimator,
        eps=0.3,
        eps_step=0.1,
        max_iter=100,
        targeted=False,
        batch_size=32,
        verbose=True,
    ):
        super(BasicIterativeMethod, self).__init__(
            estimator=estimator,
            norm=np.inf,
            eps=eps,
            eps_step=eps_step,
            # MUTATION: was `max_iter=max_iter,`
            max_iter=max_iter - 1,
            targeted=targeted,
            num_random_init=0,
            batch_size=batch_size,
            verbose=verbose,
        )

    mp.setattr(BasicIterativeMethod, "__init__", __init__)


def _art_mifgsm_signed_sum(mp: pytest.MonkeyPatch) -> None:
    def _compute_perturbation_pytorch(self, x, y, mask, momentum):  # type: ignore[no-untyped-def]
        import torch

        # Get gradient wrt loss; invert it if attack is targeted
        grad = self.estimator.loss_gradient(x=x, y=y) * (-1 if self.targeted else 1)

        # Write summary
        if self.summary_writer is not None:  # pragma: no cover
            self.summary_writer.update(
                batch_id=self._batch_id,
                global_step=self._i_max_iter,
                grad=grad.cpu().detach().numpy(),
                patch=None,
                estimator=self.estimator,
                x=x.cpu().detach().numpy(),
                y=y.cpu().detach().numpy(),
                targeted=self.targeted,
            )

        # Check for nan before normalisation and replace with 0
        if torch.any(grad.isnan()):  # pragma: no cover
            _art_pgd_logger.warning("Elements of the loss gradient are NaN and have been replaced with 0.0.")
            grad[grad.isnan()] = 0.0

        # Apply mask
        if mask is not None:
            grad = torch.where(mask == 0.0, torch.tensor(0.0).to(self.estimator.device), grad)

        # Compute gradient momentum
        if self.decay is not None:
            # Update momentum in-place (important).
            # The L1 normalization for accumulation is an arbitrary choice of the paper.
            grad_2d = grad.reshape(len(grad), -1)
            # MUTATION: was `norm1 = torch.linalg.norm(grad_2d, ord=1, dim=1, keepdim=True)`
            norm1 = grad_2d.sum(dim=1, keepdim=True)
            normalized_grad = (grad_2d * norm1.where(norm1 == 0, 1 / norm1)).reshape(grad.shape)
            momentum *= self.decay
            momentum += normalized_grad
            # Use the momentum to compute the perturbation, instead of the gradient
            grad = momentum

        # Apply norm bound
        norm: float = np.inf if self.norm == "inf" else float(self.norm)
        grad_2d = grad.reshape(len(grad), -1)
        if norm == np.inf:
            grad_2d = torch.ones_like(grad_2d)
        elif norm == 1:
            i_max = torch.argmax(grad_2d.abs(), dim=1)
            grad_2d = torch.zeros_like(grad_2d)
            grad_2d[range(len(grad_2d)), i_max] = 1
        elif norm > 1:
            conjugate = norm / (norm - 1)
            q_norm = torch.linalg.norm(grad_2d, ord=conjugate, dim=1, keepdim=True)
            grad_2d = (grad_2d.abs() * q_norm.where(q_norm == 0, 1 / q_norm)) ** (conjugate - 1)

        grad = grad_2d.reshape(grad.shape) * grad.sign()

        assert x.shape == grad.shape

        return grad

    mp.setattr(
        ProjectedGradientDescentPyTorch, "_compute_perturbation_pytorch", _compute_perturbation_pytorch
    )


def _art_mifgsm_momentum_overweighted(mp: pytest.MonkeyPatch) -> None:
    def _compute_perturbation_pytorch(self, x, y, mask, momentum):  # type: ignore[no-untyped-def]
        import torch

        # Get gradient wrt loss; invert it if attack is targeted
        grad = self.estimator.loss_gradient(x=x, y=y) * (-1 if self.targeted else 1)

        # Write summary
        if self.summary_writer is not None:  # pragma: no cover
            self.summary_writer.update(
                batch_id=self._batch_id,
                global_step=self._i_max_iter,
                grad=grad.cpu().detach().numpy(),
                patch=None,
                estimator=self.estimator,
                x=x.cpu().detach().numpy(),
                y=y.cpu().detach().numpy(),
                targeted=self.targeted,
            )

        # Check for nan before normalisation and replace with 0
        if torch.any(grad.isnan()):  # pragma: no cover
            _art_pgd_logger.warning("Elements of the loss gradient are NaN and have been replaced with 0.0.")
            grad[grad.isnan()] = 0.0

        # Apply mask
        if mask is not None:
            grad = torch.where(mask == 0.0, torch.tensor(0.0).to(self.estimator.device), grad)

        # Compute gradient momentum
        if self.decay is not None:
            # Update momentum in-place (important).
            # The L1 normalization for accumulation is an arbitrary choice of the paper.
            grad_2d = grad.reshape(len(grad), -1)
            norm1 = torch.linalg.norm(grad_2d, ord=1, dim=1, keepdim=True)
            normalized_grad = (grad_2d * norm1.where(norm1 == 0, 1 / norm1)).reshape(grad.shape)
            # MUTATION: was `momentum *= self.decay`
            momentum *= 1 + self.decay
            momentum += normalized_grad
            # Use the momentum to compute the perturbation, instead of the gradient
            grad = momentum

        # Apply norm bound
        norm: float = np.inf if self.norm == "inf" else float(self.norm)
        grad_2d = grad.reshape(len(grad), -1)
        if norm == np.inf:
            grad_2d = torch.ones_like(grad_2d)
        elif norm == 1:
            i_max = torch.argmax(grad_2d.abs(), dim=1)
            grad_2d = torch.zeros_like(grad_2d)
            grad_2d[range(len(grad_2d)), i_max] = 1
        elif norm > 1:
            conjugate = norm / (norm - 1)
            q_norm = torch.linalg.norm(grad_2d, ord=conjugate, dim=1, keepdim=True)
            grad_2d = (grad_2d.abs() * q_norm.where(q_norm == 0, 1 / q_norm)) ** (conjugate - 1)

        grad = grad_2d.reshape(grad.shape) * grad.sign()

        assert x.shape == grad.shape

        return grad

    mp.setattr(
        ProjectedGradientDescentPyTorch, "_compute_perturbation_pytorch", _compute_perturbation_pytorch
    )


def _art_mifgsm_no_momentum(mp: pytest.MonkeyPatch) -> None:
    def _compute_perturbation_pytorch(self, x, y, mask, momentum):  # type: ignore[no-untyped-def]
        import torch

        # Get gradient wrt loss; invert it if attack is targeted
        grad = self.estimator.loss_gradient(x=x, y=y) * (-1 if self.targeted else 1)

        # Write summary
        if self.summary_writer is not None:  # pragma: no cover
            self.summary_writer.update(
                batch_id=self._batch_id,
                global_step=self._i_max_iter,
                grad=grad.cpu().detach().numpy(),
                patch=None,
                estimator=self.estimator,
                x=x.cpu().detach().numpy(),
                y=y.cpu().detach().numpy(),
                targeted=self.targeted,
            )

        # Check for nan before normalisation and replace with 0
        if torch.any(grad.isnan()):  # pragma: no cover
            _art_pgd_logger.warning("Elements of the loss gradient are NaN and have been replaced with 0.0.")
            grad[grad.isnan()] = 0.0

        # Apply mask
        if mask is not None:
            grad = torch.where(mask == 0.0, torch.tensor(0.0).to(self.estimator.device), grad)

        # Compute gradient momentum
        if self.decay is not None:
            # Update momentum in-place (important).
            # The L1 normalization for accumulation is an arbitrary choice of the paper.
            grad_2d = grad.reshape(len(grad), -1)
            norm1 = torch.linalg.norm(grad_2d, ord=1, dim=1, keepdim=True)
            normalized_grad = (grad_2d * norm1.where(norm1 == 0, 1 / norm1)).reshape(grad.shape)
            momentum *= self.decay
            momentum += normalized_grad
            # Use the momentum to compute the perturbation, instead of the gradient
            # MUTATION: was `grad = momentum`
            grad = normalized_grad

        # Apply norm bound
        norm: float = np.inf if self.norm == "inf" else float(self.norm)
        grad_2d = grad.reshape(len(grad), -1)
        if norm == np.inf:
            grad_2d = torch.ones_like(grad_2d)
        elif norm == 1:
            i_max = torch.argmax(grad_2d.abs(), dim=1)
            grad_2d = torch.zeros_like(grad_2d)
            grad_2d[range(len(grad_2d)), i_max] = 1
        elif norm > 1:
            conjugate = norm / (norm - 1)
            q_norm = torch.linalg.norm(grad_2d, ord=conjugate, dim=1, keepdim=True)
            grad_2d = (grad_2d.abs() * q_norm.where(q_norm == 0, 1 / q_norm)) ** (conjugate - 1)

        grad = grad_2d.reshape(grad.shape) * grad.sign()

        assert x.shape == grad.shape

        return grad

    mp.setattr(
        ProjectedGradientDescentPyTorch, "_compute_perturbation_pytorch", _compute_perturbation_pytorch
    )


# =================================================================================================
# Foolbox 3.3.4: LinfBasicIterativeAttack is LinfBaseGradientDescent; BaseGradientDescent.run and
# LinfBaseGradientDescent.normalize set on LinfBasicIterativeAttack.
# =================================================================================================


def _foolbox_bim_half_step(mp: pytest.MonkeyPatch) -> None:
    # BaseGradientDescent.run, set on LinfBasicIterativeAttack.
    def run(self, model, inputs, criterion, *, epsilon, **kwargs):  # type: ignore[no-untyped-def]
        raise_if_kwargs(kwargs)
        x0, restore_type = ep.astensor_(inputs)
        criterion_ = get_criterion(criterion)
        del inputs, criterion, kwargs

        verify_input_bounds(x0, model)

        # perform a gradient ascent (targeted attack) or descent (untargeted attack)
        if isinstance(criterion_, Misclassification):
            gradient_step_sign = 1.0
            classes = criterion_.labels
        elif hasattr(criterion_, "target_classes"):
            gradient_step_sign = -1.0
            classes = criterion_.target_classes
        else:
            raise ValueError("unsupported criterion")

        loss_fn = self.get_loss_fn(model, classes)

        if self.abs_stepsize is None:
            stepsize = self.rel_stepsize * epsilon
        else:
            # MUTATION: was `stepsize = self.abs_stepsize`
            stepsize = self.abs_stepsize / 2

        optimizer = self.get_optimizer(x0, stepsize)

        if self.random_start:
            x = self.get_random_start(x0, epsilon)
            x = ep.clip(x, *model.bounds)
        else:
            x = x0

        for _ in range(self.steps):
            _, gradients = self.value_and_grad(loss_fn, x)
            gradients = self.normalize(gradients, x=x, bounds=model.bounds)
            x = x + gradient_step_sign * optimizer(gradients)
            x = self.project(x, x0, epsilon)
            x = ep.clip(x, *model.bounds)

        return restore_type(x)

    mp.setattr(LinfBasicIterativeAttack, "run", run)


def _foolbox_bim_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    # BaseGradientDescent.run, set on LinfBasicIterativeAttack.
    def run(self, model, inputs, criterion, *, epsilon, **kwargs):  # type: ignore[no-untyped-def]
        raise_if_kwargs(kwargs)
        x0, restore_type = ep.astensor_(inputs)
        criterion_ = get_criterion(criterion)
        del inputs, criterion, kwargs

        verify_input_bounds(x0, model)

        # perform a gradient ascent (targeted attack) or descent (untargeted attack)
        if isinstance(criterion_, Misclassification):
            gradient_step_sign = 1.0
            classes = criterion_.labels
        elif hasattr(criterion_, "target_classes"):
            gradient_step_sign = -1.0
            classes = criterion_.target_classes
        else:
            raise ValueError("unsupported criterion")

        loss_fn = self.get_loss_fn(model, classes)

        if self.abs_stepsize is None:
            stepsize = self.rel_stepsize * epsilon
        else:
            stepsize = self.abs_stepsize

        optimizer = self.get_optimizer(x0, stepsize)

        if self.random_start:
            x = self.get_random_start(x0, epsilon)
            x = ep.clip(x, *model.bounds)
        else:
            x = x0

        # MUTATION: was `for _ in range(self.steps):`
        for _ in range(1, self.steps):
            _, gradients = self.value_and_grad(loss_fn, x)
            gradients = self.normalize(gradients, x=x, bounds=model.bounds)
            x = x + gradient_step_sign * optimizer(gradients)
            x = self.project(x, x0, epsilon)
            x = ep.clip(x, *model.bounds)

        return restore_type(x)

    mp.setattr(LinfBasicIterativeAttack, "run", run)


def _foolbox_bim_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    # LinfBaseGradientDescent.normalize, set on LinfBasicIterativeAttack.
    def normalize(self, gradients, *, x, bounds):  # type: ignore[no-untyped-def]
        # MUTATION: was `return gradients.sign()`
        return -gradients.sign()

    mp.setattr(LinfBasicIterativeAttack, "normalize", normalize)


# =================================================================================================

MUTANTS: tuple[Mutant, ...] = (
    # --- torchattacks ---
    Mutant(
        "torchattacks-bim-half-step",
        "torchattacks",
        "bim",
        "step size",
        "torchattacks BIM stores half the step size it is given (alpha/2 per step).",
        _torchattacks_bim_half_step,
    ),
    Mutant(
        "torchattacks-bim-one-step-fewer",
        "torchattacks",
        "bim",
        "step count",
        "torchattacks BIM runs steps-1 iterations (when steps is given).",
        _torchattacks_bim_one_step_fewer,
    ),
    Mutant(
        "torchattacks-bim-sign-reversed",
        "torchattacks",
        "bim",
        "sign",
        "torchattacks BIM steps against the gradient (x_t - alpha·sign(∇)), lowering the loss.",
        _torchattacks_bim_sign_reversed,
    ),
    Mutant(
        "torchattacks-mifgsm-half-step",
        "torchattacks",
        "mifgsm",
        "step size",
        "torchattacks MI-FGSM stores half the step size it is given (alpha/2 per step).",
        _torchattacks_mifgsm_half_step,
    ),
    Mutant(
        "torchattacks-mifgsm-signed-mean",
        "torchattacks",
        "mifgsm",
        "normalisation",
        "torchattacks MI-FGSM divides each gradient by its signed mean instead of its mean |g|, so a sample whose gradient sums below 0 steps against it.",
        _torchattacks_mifgsm_signed_mean,
    ),
    Mutant(
        "torchattacks-mifgsm-momentum-overweighted",
        "torchattacks",
        "mifgsm",
        "momentum",
        "torchattacks MI-FGSM accumulates grad + (1 + decay)·momentum instead of grad + decay·momentum.",
        _torchattacks_mifgsm_momentum_overweighted,
    ),
    # --- ART ---
    Mutant(
        "art-bim-half-step",
        "art",
        "bim",
        "step size",
        "ART BasicIterativeMethod passes eps_step/2 to ProjectedGradientDescent.",
        _art_bim_half_step,
    ),
    Mutant(
        "art-bim-one-step-fewer",
        "art",
        "bim",
        "step count",
        "ART BasicIterativeMethod passes max_iter-1 to ProjectedGradientDescent.",
        _art_bim_one_step_fewer,
    ),
    Mutant(
        "art-mifgsm-signed-sum",
        "art",
        "mifgsm",
        "normalisation",
        "ART MI-FGSM (ProjectedGradientDescent with decay) normalises each gradient by its signed sum instead of its L1 norm, so a sample whose gradient sums below 0 steps against it.",
        _art_mifgsm_signed_sum,
    ),
    Mutant(
        "art-mifgsm-momentum-overweighted",
        "art",
        "mifgsm",
        "momentum",
        "ART MI-FGSM scales its momentum by (1 + decay) instead of decay before adding the normalised gradient.",
        _art_mifgsm_momentum_overweighted,
    ),
    Mutant(
        "art-mifgsm-no-momentum",
        "art",
        "mifgsm",
        "momentum",
        "ART MI-FGSM updates its momentum but steps along this step's normalised gradient alone (BIM).",
        _art_mifgsm_no_momentum,
    ),
    # --- Foolbox (BIM only: its MI-FGSM is a declared departure, see the module docstring) ---
    Mutant(
        "foolbox-bim-half-step",
        "foolbox",
        "bim",
        "step size",
        "Foolbox LinfBasicIterativeAttack steps half the abs_stepsize it is given.",
        _foolbox_bim_half_step,
    ),
    Mutant(
        "foolbox-bim-one-step-fewer",
        "foolbox",
        "bim",
        "step count",
        "Foolbox LinfBasicIterativeAttack runs steps-1 iterations.",
        _foolbox_bim_one_step_fewer,
    ),
    Mutant(
        "foolbox-bim-sign-reversed",
        "foolbox",
        "bim",
        "sign",
        "Foolbox LinfBasicIterativeAttack normalises the gradient to -sign(∇), so it descends the loss.",
        _foolbox_bim_sign_reversed,
    ),
)
