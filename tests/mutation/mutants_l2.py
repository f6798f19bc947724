# ruff: noqa: SIM102, SIM108  (copied library code keeps its own if/else style)
"""Planted bugs in the L2 variants (FGM-L2, PGD-L2) of ART, torchattacks and Foolbox (rules: mutants.py).

Same releases and the same rules as mutants.py: each replaced function is copied from the installed
source with exactly one plausible change, marked by a ``# MUTATION:`` comment quoting the original line,
and patched where the library looks it up. Every mutant here has ``norm="l2"``: the suite runs only its
variant's cells (the L2 entries of ``suite.L2_ATTACKS``).

Where the libraries compute L2:

* torchattacks has one class, ``PGDL2`` (``torchattacks/attacks/pgdl2.py``); the adapter's FGM-L2 is
  ``PGDL2`` with one step of alpha = eps and no random start, so a bug in ``PGDL2.forward`` reaches both.
  The FGM mutants are bugs that show in that one step (a projection bug cannot: its one step has length
  eps), the PGD ones bugs of the start and of the iterate.
* ART's FGM is ``FastGradientMethod`` in NumPy (``_compute_perturbation``'s ``_apply_norm``); its PGD is
  ``ProjectedGradientDescentPyTorch`` in torch (``_compute_perturbation_pytorch``, ``_projection``, and
  ``random_sphere`` as that module imported it).
* Foolbox's ``L2FastGradientAttack`` and ``L2ProjectedGradientDescentAttack`` share
  ``L2BaseGradientDescent`` (``foolbox/attacks/gradient_descent_base.py``); each mutant is set on the
  subclass of the attack it belongs to, as in mutants.py.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from mutants import Mutant, _art_fgm_logger, _art_pgd_logger
from torch import nn

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import eagerpy as ep  # noqa: E402
from art.attacks.evasion import FastGradientMethod  # noqa: E402
from art.attacks.evasion.projected_gradient_descent import projected_gradient_descent_pytorch  # noqa: E402
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (  # noqa: E402
    ProjectedGradientDescentPyTorch,
)
from torchattacks.attacks.pgdl2 import PGDL2  # noqa: E402

with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8 (as in adapters/foolbox.py).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    from foolbox.attacks.base import get_criterion, raise_if_kwargs, verify_input_bounds
    from foolbox.attacks.fast_gradient_method import L2FastGradientAttack
    from foolbox.attacks.gradient_descent_base import normalize_lp_norms, uniform_l2_n_spheres
    from foolbox.attacks.projected_gradient_descent import L2ProjectedGradientDescentAttack
    from foolbox.criteria import Misclassification
    from foolbox.devutils import atleast_kd, flatten

# =================================================================================================
# torchattacks 3.5.1 (torchattacks/attacks/pgdl2.py): PGDL2.forward
# =================================================================================================


def _torchattacks_fgsm_l2_l1_normalised(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        adv_images = images.clone().detach()
        batch_size = len(images)

        if self.random_start:
            # Starting at a uniformly random point
            delta = torch.empty_like(adv_images).normal_()
            d_flat = delta.view(adv_images.size(0), -1)
            n = d_flat.norm(p=2, dim=1).view(adv_images.size(0), 1, 1, 1)
            r = torch.zeros_like(n).uniform_(0, 1)
            delta *= r / n * self.eps
            adv_images = torch.clamp(adv_images + delta, min=0, max=1).detach()

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
            grad_norms = (
                # MUTATION: was `torch.norm(grad.view(batch_size, -1), p=2, dim=1)`
                torch.norm(grad.view(batch_size, -1), p=1, dim=1) + self.eps_for_division
            )  # nopep8
            grad = grad / grad_norms.view(batch_size, 1, 1, 1)
            adv_images = adv_images.detach() + self.alpha * grad

            delta = adv_images - images
            delta_norms = torch.norm(delta.view(batch_size, -1), p=2, dim=1)
            factor = self.eps / delta_norms
            factor = torch.min(factor, torch.ones_like(delta_norms))
            delta = delta * factor.view(-1, 1, 1, 1)

            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGDL2, "forward", forward)


def _torchattacks_fgsm_l2_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        adv_images = images.clone().detach()
        batch_size = len(images)

        if self.random_start:
            # Starting at a uniformly random point
            delta = torch.empty_like(adv_images).normal_()
            d_flat = delta.view(adv_images.size(0), -1)
            n = d_flat.norm(p=2, dim=1).view(adv_images.size(0), 1, 1, 1)
            r = torch.zeros_like(n).uniform_(0, 1)
            delta *= r / n * self.eps
            adv_images = torch.clamp(adv_images + delta, min=0, max=1).detach()

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
            grad_norms = torch.norm(grad.view(batch_size, -1), p=2, dim=1) + self.eps_for_division  # nopep8
            grad = grad / grad_norms.view(batch_size, 1, 1, 1)
            # MUTATION: was `adv_images = adv_images.detach() + self.alpha * grad`
            adv_images = adv_images.detach() - self.alpha * grad

            delta = adv_images - images
            delta_norms = torch.norm(delta.view(batch_size, -1), p=2, dim=1)
            factor = self.eps / delta_norms
            factor = torch.min(factor, torch.ones_like(delta_norms))
            delta = delta * factor.view(-1, 1, 1, 1)

            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGDL2, "forward", forward)


def _torchattacks_pgd_l2_no_sqrt(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        adv_images = images.clone().detach()
        batch_size = len(images)

        if self.random_start:
            # Starting at a uniformly random point
            delta = torch.empty_like(adv_images).normal_()
            d_flat = delta.view(adv_images.size(0), -1)
            n = d_flat.norm(p=2, dim=1).view(adv_images.size(0), 1, 1, 1)
            r = torch.zeros_like(n).uniform_(0, 1)
            delta *= r / n * self.eps
            adv_images = torch.clamp(adv_images + delta, min=0, max=1).detach()

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
            grad_norms = (
                # MUTATION: was `torch.norm(grad.view(batch_size, -1), p=2, dim=1)`
                (grad.view(batch_size, -1) ** 2).sum(dim=1) + self.eps_for_division
            )  # nopep8
            grad = grad / grad_norms.view(batch_size, 1, 1, 1)
            adv_images = adv_images.detach() + self.alpha * grad

            delta = adv_images - images
            delta_norms = torch.norm(delta.view(batch_size, -1), p=2, dim=1)
            factor = self.eps / delta_norms
            factor = torch.min(factor, torch.ones_like(delta_norms))
            delta = delta * factor.view(-1, 1, 1, 1)

            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGDL2, "forward", forward)


def _torchattacks_pgd_l2_start_on_sphere(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        adv_images = images.clone().detach()
        batch_size = len(images)

        if self.random_start:
            # Starting at a uniformly random point
            delta = torch.empty_like(adv_images).normal_()
            d_flat = delta.view(adv_images.size(0), -1)
            n = d_flat.norm(p=2, dim=1).view(adv_images.size(0), 1, 1, 1)
            r = torch.zeros_like(n).uniform_(0, 1)  # noqa: F841  (drawn, then unused: the bug)
            # MUTATION: was `delta *= r / n * self.eps`
            delta *= 1 / n * self.eps
            adv_images = torch.clamp(adv_images + delta, min=0, max=1).detach()

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
            grad_norms = torch.norm(grad.view(batch_size, -1), p=2, dim=1) + self.eps_for_division  # nopep8
            grad = grad / grad_norms.view(batch_size, 1, 1, 1)
            adv_images = adv_images.detach() + self.alpha * grad

            delta = adv_images - images
            delta_norms = torch.norm(delta.view(batch_size, -1), p=2, dim=1)
            factor = self.eps / delta_norms
            factor = torch.min(factor, torch.ones_like(delta_norms))
            delta = delta * factor.view(-1, 1, 1, 1)

            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGDL2, "forward", forward)


def _torchattacks_pgd_l2_projection_always_rescales(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        r"""
        Overridden.
        """

        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        adv_images = images.clone().detach()
        batch_size = len(images)

        if self.random_start:
            # Starting at a uniformly random point
            delta = torch.empty_like(adv_images).normal_()
            d_flat = delta.view(adv_images.size(0), -1)
            n = d_flat.norm(p=2, dim=1).view(adv_images.size(0), 1, 1, 1)
            r = torch.zeros_like(n).uniform_(0, 1)
            delta *= r / n * self.eps
            adv_images = torch.clamp(adv_images + delta, min=0, max=1).detach()

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
            grad_norms = torch.norm(grad.view(batch_size, -1), p=2, dim=1) + self.eps_for_division  # nopep8
            grad = grad / grad_norms.view(batch_size, 1, 1, 1)
            adv_images = adv_images.detach() + self.alpha * grad

            delta = adv_images - images
            delta_norms = torch.norm(delta.view(batch_size, -1), p=2, dim=1)
            factor = self.eps / delta_norms
            # MUTATION: was `factor = torch.min(factor, torch.ones_like(delta_norms))` (dropped)
            delta = delta * factor.view(-1, 1, 1, 1)

            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGDL2, "forward", forward)


# =================================================================================================
# ART 1.20.1: FastGradientMethod._compute_perturbation (NumPy, FGM); ProjectedGradientDescentPyTorch
# (torch, PGD) and the random_sphere it imported.
# =================================================================================================


def _art_fgsm_l2_l1_normalised(mp: pytest.MonkeyPatch) -> None:
    def _compute_perturbation(self, x, y, mask, decay=None, momentum=None):  # type: ignore[no-untyped-def]
        # Get gradient wrt loss; invert it if attack is targeted
        grad = self.estimator.loss_gradient(x, y) * (1 - 2 * int(self.targeted))

        # Write summary
        if self.summary_writer is not None:  # pragma: no cover
            self.summary_writer.update(
                batch_id=self._batch_id,
                global_step=self._i_max_iter,
                grad=grad,
                patch=None,
                estimator=self.estimator,
                x=x,
                y=y,
                targeted=self.targeted,
            )

        # Check for NaN before normalisation and replace with 0
        if grad.dtype != object and np.isnan(grad).any():  # pragma: no cover
            _art_fgm_logger.warning("Elements of the loss gradient are NaN and have been replaced with 0.0.")
            grad = np.where(np.isnan(grad), 0.0, grad)
        else:
            for i, _ in enumerate(grad):
                grad_i_array = grad[i].astype(np.float32)
                if np.isnan(grad_i_array).any():
                    grad[i] = np.where(np.isnan(grad_i_array), 0.0, grad_i_array).astype(object)

        # Apply mask
        if mask is not None:
            grad = np.where(mask == 0.0, 0.0, grad)

        # Apply norm bound
        def _apply_norm(norm, grad, object_type=False):  # type: ignore[no-untyped-def]
            """Returns an x maximizing <grad, x> subject to ||x||_norm<=1."""
            if (grad.dtype != object and np.isinf(grad).any()) or np.isnan(  # pragma: no cover
                grad.astype(np.float32)
            ).any():
                _art_fgm_logger.info(
                    "The loss gradient array contains at least one positive or negative infinity."
                )

            grad_2d = grad.reshape(1 if object_type else len(grad), -1)
            if norm in [np.inf, "inf"]:
                grad_2d = np.ones_like(grad_2d)
            elif norm == 1:
                i_max = np.argmax(np.abs(grad_2d), axis=1)
                grad_2d = np.zeros_like(grad_2d)
                grad_2d[range(len(grad_2d)), i_max] = 1
            elif norm > 1:
                conjugate = norm / (norm - 1)
                # MUTATION: was `q_norm = np.linalg.norm(grad_2d, ord=conjugate, axis=1, keepdims=True)`
                q_norm = np.linalg.norm(grad_2d, ord=1, axis=1, keepdims=True)
                grad_2d = (np.abs(grad_2d) / np.where(q_norm, q_norm, np.inf)) ** (conjugate - 1)
            grad = grad_2d.reshape(grad.shape) * np.sign(grad)
            return grad

        # Compute gradient momentum
        if decay is not None and momentum is not None:
            if x.dtype == object:
                raise NotImplementedError(
                    "Momentum Iterative Method not yet implemented for object type input."
                )
            # Update momentum in-place (important).
            # The L1 normalization for accumulation is an arbitrary choice of the paper.
            grad_2d = grad.reshape(len(grad), -1)
            norm1 = np.linalg.norm(grad_2d, ord=1, axis=1, keepdims=True)
            normalized_grad = (grad_2d / np.where(norm1, norm1, np.inf)).reshape(grad.shape)
            momentum *= decay
            momentum += normalized_grad
            # Use the momentum to compute the perturbation, instead of the gradient
            grad = momentum

        if x.dtype == object:
            for i_sample in range(x.shape[0]):
                grad[i_sample] = _apply_norm(self.norm, grad[i_sample], object_type=True)
                assert x[i_sample].shape == grad[i_sample].shape
        else:
            grad = _apply_norm(self.norm, grad)

        assert x.shape == grad.shape

        return grad

    mp.setattr(FastGradientMethod, "_compute_perturbation", _compute_perturbation)


def _art_fgsm_l2_sign_applied_twice(mp: pytest.MonkeyPatch) -> None:
    def _compute_perturbation(self, x, y, mask, decay=None, momentum=None):  # type: ignore[no-untyped-def]
        # Get gradient wrt loss; invert it if attack is targeted
        grad = self.estimator.loss_gradient(x, y) * (1 - 2 * int(self.targeted))

        # Write summary
        if self.summary_writer is not None:  # pragma: no cover
            self.summary_writer.update(
                batch_id=self._batch_id,
                global_step=self._i_max_iter,
                grad=grad,
                patch=None,
                estimator=self.estimator,
                x=x,
                y=y,
                targeted=self.targeted,
            )

        # Check for NaN before normalisation and replace with 0
        if grad.dtype != object and np.isnan(grad).any():  # pragma: no cover
            _art_fgm_logger.warning("Elements of the loss gradient are NaN and have been replaced with 0.0.")
            grad = np.where(np.isnan(grad), 0.0, grad)
        else:
            for i, _ in enumerate(grad):
                grad_i_array = grad[i].astype(np.float32)
                if np.isnan(grad_i_array).any():
                    grad[i] = np.where(np.isnan(grad_i_array), 0.0, grad_i_array).astype(object)

        # Apply mask
        if mask is not None:
            grad = np.where(mask == 0.0, 0.0, grad)

        # Apply norm bound
        def _apply_norm(norm, grad, object_type=False):  # type: ignore[no-untyped-def]
            """Returns an x maximizing <grad, x> subject to ||x||_norm<=1."""
            if (grad.dtype != object and np.isinf(grad).any()) or np.isnan(  # pragma: no cover
                grad.astype(np.float32)
            ).any():
                _art_fgm_logger.info(
                    "The loss gradient array contains at least one positive or negative infinity."
                )

            grad_2d = grad.reshape(1 if object_type else len(grad), -1)
            if norm in [np.inf, "inf"]:
                grad_2d = np.ones_like(grad_2d)
            elif norm == 1:
                i_max = np.argmax(np.abs(grad_2d), axis=1)
                grad_2d = np.zeros_like(grad_2d)
                grad_2d[range(len(grad_2d)), i_max] = 1
            elif norm > 1:
                conjugate = norm / (norm - 1)
                q_norm = np.linalg.norm(grad_2d, ord=conjugate, axis=1, keepdims=True)
                # MUTATION: was `grad_2d = (np.abs(grad_2d) / np.where(q_norm, q_norm, np.inf)) ** (conjugate - 1)`
                grad_2d = (grad_2d / np.where(q_norm, q_norm, np.inf)) ** (conjugate - 1)
            grad = grad_2d.reshape(grad.shape) * np.sign(grad)
            return grad

        # Compute gradient momentum
        if decay is not None and momentum is not None:
            if x.dtype == object:
                raise NotImplementedError(
                    "Momentum Iterative Method not yet implemented for object type input."
                )
            # Update momentum in-place (important).
            # The L1 normalization for accumulation is an arbitrary choice of the paper.
            grad_2d = grad.reshape(len(grad), -1)
            norm1 = np.linalg.norm(grad_2d, ord=1, axis=1, keepdims=True)
            normalized_grad = (grad_2d / np.where(norm1, norm1, np.inf)).reshape(grad.shape)
            momentum *= decay
            momentum += normalized_grad
            # Use the momentum to compute the perturbation, instead of the gradient
            grad = momentum

        if x.dtype == object:
            for i_sample in range(x.shape[0]):
                grad[i_sample] = _apply_norm(self.norm, grad[i_sample], object_type=True)
                assert x[i_sample].shape == grad[i_sample].shape
        else:
            grad = _apply_norm(self.norm, grad)

        assert x.shape == grad.shape

        return grad

    mp.setattr(FastGradientMethod, "_compute_perturbation", _compute_perturbation)


def _art_pgd_l2_start_on_sphere(mp: pytest.MonkeyPatch) -> None:
    # art.utils.random_sphere, patched where ProjectedGradientDescentPyTorch looks it up.
    def random_sphere(nb_points, nb_dims, radius, norm):  # type: ignore[no-untyped-def]
        if norm == 1:
            if isinstance(radius, np.ndarray):
                raise NotImplementedError(
                    "The parameter `radius` of type `np.ndarray` is not supported to use with norm 1."
                )

            var_u = np.random.uniform(size=(nb_points, nb_dims))
            var_v = np.sort(var_u)
            v_pre = np.concatenate((np.zeros((nb_points, 1)), var_v[:, : nb_dims - 1]), axis=-1)
            x = var_v - v_pre
            res = radius * x * np.random.choice([-1, 1], (nb_points, nb_dims))

        elif norm == 2:
            if isinstance(radius, np.ndarray):
                raise NotImplementedError(
                    "The parameter `radius` of type `np.ndarray` is not supported to use with norm 2."
                )

            a_tmp = np.random.randn(nb_points, nb_dims)
            s_2 = np.sum(a_tmp**2, axis=1)
            # MUTATION: was `base = gammainc(nb_dims / 2.0, s_2 / 2.0) ** (1 / nb_dims) * radius / np.sqrt(s_2)`
            base = radius / np.sqrt(s_2)
            res = a_tmp * (np.tile(base, (nb_dims, 1))).T

        elif norm in [np.inf, "inf"]:
            if isinstance(radius, np.ndarray):
                radius = radius * np.ones(shape=(nb_points, nb_dims))

            res = np.random.uniform(-radius, radius, (nb_points, nb_dims))

        else:
            raise NotImplementedError(f"Norm {norm} not supported")

        return res

    mp.setattr(projected_gradient_descent_pytorch, "random_sphere", random_sphere)


def _art_pgd_l2_projection_always_rescales(mp: pytest.MonkeyPatch) -> None:
    # ProjectedGradientDescentPyTorch._projection (a staticmethod).
    def _projection(values, eps, norm_p, *, suboptimal=True):  # type: ignore[no-untyped-def]
        import torch

        norm = np.inf if norm_p == "inf" else float(norm_p)
        assert norm > 0

        values_tmp = values.reshape(len(values), -1)  # (n_samples, d)

        eps = np.broadcast_to(eps, values.shape)
        eps = eps.reshape(len(eps), -1)  # (n_samples, d)
        assert np.all(eps >= 0)
        if norm != np.inf and not np.all(eps == eps[:, [0]]):
            raise NotImplementedError(
                "Projection onto the weighted L_p ball is currently not supported with finite `norm_p`."
            )

        if (suboptimal or norm == 2) and norm != np.inf:  # Simple rescaling
            values_norm = torch.linalg.norm(values_tmp, ord=norm, dim=1, keepdim=True)  # (n_samples, 1)
            values_tmp = values_tmp * values_norm.where(
                values_norm == 0,
                # MUTATION: was `torch.minimum(torch.ones(1).to(values_tmp.device), torch.tensor(eps).to(values_tmp.device) / values_norm),`
                torch.tensor(eps).to(values_tmp.device) / values_norm,
            )
        else:  # Optimal
            if norm == np.inf:  # Easy exact case
                values_tmp = values_tmp.sign() * torch.minimum(
                    values_tmp.abs(), torch.tensor(eps).to(values_tmp.device)
                )
            elif norm >= 1:  # Convex optim
                raise NotImplementedError(
                    "Finite values of `norm_p >= 1` are currently not supported with `suboptimal=False`."
                )
            else:  # Non-convex optim
                raise NotImplementedError(
                    "Values of `norm_p < 1` are currently not supported with `suboptimal=False`"
                )

        values = values_tmp.reshape(values.shape).to(values.dtype)

        return values

    mp.setattr(ProjectedGradientDescentPyTorch, "_projection", staticmethod(_projection))


def _art_pgd_l2_no_sqrt(mp: pytest.MonkeyPatch) -> None:
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
            # MUTATION: was `q_norm = torch.linalg.norm(grad_2d, ord=conjugate, dim=1, keepdim=True)`
            q_norm = (grad_2d.abs() ** conjugate).sum(dim=1, keepdim=True)
            grad_2d = (grad_2d.abs() * q_norm.where(q_norm == 0, 1 / q_norm)) ** (conjugate - 1)

        grad = grad_2d.reshape(grad.shape) * grad.sign()

        assert x.shape == grad.shape

        return grad

    mp.setattr(
        ProjectedGradientDescentPyTorch, "_compute_perturbation_pytorch", _compute_perturbation_pytorch
    )


# =================================================================================================
# Foolbox 3.3.4: L2BaseGradientDescent (and BaseGradientDescent.run), set on the subclass the bug
# belongs to.
# =================================================================================================


def _foolbox_fgsm_l2_l1_normalised(mp: pytest.MonkeyPatch) -> None:
    # L2BaseGradientDescent.normalize, set on L2FastGradientAttack.
    def normalize(self, gradients, *, x, bounds):  # type: ignore[no-untyped-def]
        # MUTATION: was `return normalize_lp_norms(gradients, p=2)`
        return normalize_lp_norms(gradients, p=1)

    mp.setattr(L2FastGradientAttack, "normalize", normalize)


def _foolbox_fgsm_l2_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    # BaseGradientDescent.run, set on L2FastGradientAttack in place of its own run, which only refuses
    # a targeted criterion (the adapter's is Misclassification) before calling this one.
    def run(self, model, inputs, criterion, *, epsilon, **kwargs):  # type: ignore[no-untyped-def]
        raise_if_kwargs(kwargs)
        x0, restore_type = ep.astensor_(inputs)
        criterion_ = get_criterion(criterion)
        del inputs, criterion, kwargs

        verify_input_bounds(x0, model)

        # perform a gradient ascent (targeted attack) or descent (untargeted attack)
        if isinstance(criterion_, Misclassification):
            # MUTATION: was `gradient_step_sign = 1.0`
            gradient_step_sign = -1.0
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

        for _ in range(self.steps):
            _, gradients = self.value_and_grad(loss_fn, x)
            gradients = self.normalize(gradients, x=x, bounds=model.bounds)
            x = x + gradient_step_sign * optimizer(gradients)
            x = self.project(x, x0, epsilon)
            x = ep.clip(x, *model.bounds)

        return restore_type(x)

    mp.setattr(L2FastGradientAttack, "run", run)


def _foolbox_pgd_l2_start_on_sphere(mp: pytest.MonkeyPatch) -> None:
    # L2BaseGradientDescent.get_random_start, set on L2ProjectedGradientDescentAttack.
    def get_random_start(self, x0, epsilon):  # type: ignore[no-untyped-def]
        batch_size, n = flatten(x0).shape
        # MUTATION: was `r = uniform_l2_n_balls(x0, batch_size, n).reshape(x0.shape)`
        r = uniform_l2_n_spheres(x0, batch_size, n - 1).reshape(x0.shape)
        return x0 + epsilon * r

    mp.setattr(L2ProjectedGradientDescentAttack, "get_random_start", get_random_start)


def _foolbox_pgd_l2_projection_always_rescales(mp: pytest.MonkeyPatch) -> None:
    # gradient_descent_base.clip_lp_norms, called from L2BaseGradientDescent.project (copied below as
    # it is), set on L2ProjectedGradientDescentAttack.
    def clip_lp_norms(x, *, norm, p):  # type: ignore[no-untyped-def]
        assert 0 < p < ep.inf
        norms = flatten(x).norms.lp(p=p, axis=-1)
        norms = ep.maximum(norms, 1e-12)  # avoid divsion by zero
        # MUTATION: was `factor = ep.minimum(1, norm / norms)  # clipping -> decreasing but not increasing`
        factor = norm / norms
        factor = atleast_kd(factor, x.ndim)
        return x * factor

    def project(self, x, x0, epsilon):  # type: ignore[no-untyped-def]
        return x0 + clip_lp_norms(x - x0, norm=epsilon, p=2)

    mp.setattr(L2ProjectedGradientDescentAttack, "project", project)


# =================================================================================================

MUTANTS: tuple[Mutant, ...] = (
    # --- torchattacks (PGDL2, also the adapter's FGM-L2) ---
    Mutant(
        "torchattacks-fgsm-l2-l1-normalised",
        "torchattacks",
        "fgsm",
        "normalisation",
        "torchattacks PGDL2 (the FGM-L2 step) divides the gradient by its L1 norm instead of its L2 norm, so the step is shorter than eps.",
        _torchattacks_fgsm_l2_l1_normalised,
        norm="l2",
    ),
    Mutant(
        "torchattacks-fgsm-l2-sign-reversed",
        "torchattacks",
        "fgsm",
        "sign",
        "torchattacks PGDL2 (the FGM-L2 step) steps against the gradient (x - alpha·∇/‖∇‖₂), lowering the loss.",
        _torchattacks_fgsm_l2_sign_reversed,
        norm="l2",
    ),
    Mutant(
        "torchattacks-pgd-l2-no-sqrt",
        "torchattacks",
        "pgd",
        "normalisation",
        "torchattacks PGDL2 divides the gradient by its squared L2 norm (no square root), so each step is alpha/‖∇‖₂ long instead of alpha.",
        _torchattacks_pgd_l2_no_sqrt,
        norm="l2",
    ),
    Mutant(
        "torchattacks-pgd-l2-start-on-sphere",
        "torchattacks",
        "pgd",
        "start distribution",
        "torchattacks PGDL2 drops the uniform radius of its random start: every start lies on the eps-sphere instead of inside the ball.",
        _torchattacks_pgd_l2_start_on_sphere,
        norm="l2",
        where=(("random_start", True),),
    ),
    Mutant(
        "torchattacks-pgd-l2-projection-always-rescales",
        "torchattacks",
        "pgd",
        "projection",
        "torchattacks PGDL2 rescales the perturbation by eps/‖δ‖₂ instead of min(eps/‖δ‖₂, 1), pushing every iterate out onto the eps-sphere.",
        _torchattacks_pgd_l2_projection_always_rescales,
        norm="l2",
        where=(("random_start", False),),
    ),
    # --- ART ---
    Mutant(
        "art-fgsm-l2-l1-normalised",
        "art",
        "fgsm",
        "normalisation",
        "ART FGM (L2) normalises the gradient by its L1 norm instead of its (conjugate) L2 norm, so the step is shorter than eps.",
        _art_fgsm_l2_l1_normalised,
        norm="l2",
    ),
    Mutant(
        "art-fgsm-l2-sign-applied-twice",
        "art",
        "fgsm",
        "sign",
        "ART FGM (L2) drops the abs() before normalising, so the gradient's sign is applied twice and every pixel steps up (|∇|/‖∇‖₂).",
        _art_fgsm_l2_sign_applied_twice,
        norm="l2",
    ),
    Mutant(
        "art-pgd-l2-start-on-sphere",
        "art",
        "pgd",
        "start distribution",
        "ART PGD's random start (random_sphere, L2) drops the gammainc radius factor: every start lies on the eps-sphere instead of uniformly in the ball.",
        _art_pgd_l2_start_on_sphere,
        norm="l2",
        where=(("random_start", True),),
    ),
    Mutant(
        "art-pgd-l2-projection-always-rescales",
        "art",
        "pgd",
        "projection",
        "ART PGD's L2 _projection rescales by eps/‖δ‖₂ instead of min(1, eps/‖δ‖₂), pushing every iterate out onto the eps-sphere.",
        _art_pgd_l2_projection_always_rescales,
        norm="l2",
        where=(("random_start", False),),
    ),
    Mutant(
        "art-pgd-l2-no-sqrt",
        "art",
        "pgd",
        "normalisation",
        "ART PGD (L2) normalises the gradient by the sum of its squares (no square root), so each step is eps_step/‖∇‖₂ long instead of eps_step.",
        _art_pgd_l2_no_sqrt,
        norm="l2",
    ),
    # --- Foolbox ---
    Mutant(
        "foolbox-fgsm-l2-l1-normalised",
        "foolbox",
        "fgsm",
        "normalisation",
        "Foolbox L2FastGradientAttack normalises the gradient by its L1 norm instead of its L2 norm, so the step is shorter than eps.",
        _foolbox_fgsm_l2_l1_normalised,
        norm="l2",
    ),
    Mutant(
        "foolbox-fgsm-l2-sign-reversed",
        "foolbox",
        "fgsm",
        "sign",
        "Foolbox L2FastGradientAttack takes gradient_step_sign = -1 for an untargeted criterion, stepping down the loss.",
        _foolbox_fgsm_l2_sign_reversed,
        norm="l2",
    ),
    Mutant(
        "foolbox-pgd-l2-start-on-sphere",
        "foolbox",
        "pgd",
        "start distribution",
        "Foolbox L2PGD draws its random start on the unit sphere (uniform_l2_n_spheres) instead of in the ball (uniform_l2_n_balls), so every start is eps from x.",
        _foolbox_pgd_l2_start_on_sphere,
        norm="l2",
        where=(("random_start", True),),
    ),
    Mutant(
        "foolbox-pgd-l2-projection-always-rescales",
        "foolbox",
        "pgd",
        "projection",
        "Foolbox L2PGD's clip_lp_norms rescales by eps/‖δ‖₂ instead of min(1, eps/‖δ‖₂), pushing every iterate out onto the eps-sphere.",
        _foolbox_pgd_l2_projection_always_rescales,
        norm="l2",
        where=(("random_start", False),),
    ),
)
