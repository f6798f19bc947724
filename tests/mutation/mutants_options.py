# ruff: noqa: SIM102, SIM108, UP031, UP032  (copied library code keeps its own if/else style, % and str.format)
"""Planted bugs in PGD's options, random restarts and targeted attacks (rules: mutants.py).

Same releases and the same rules as mutants.py: each replaced function is copied from the installed
source with exactly one plausible change, marked by a ``# MUTATION:`` comment quoting the original line,
and patched where the library looks it up. Every mutant here names its option in ``where``, so the suite
runs it on that option's entry alone (``suite.RESTART_ATTACKS``: random-start PGD-3 at 2/255 with 3
restarts; ``suite.TARGETED_ATTACKS``: random-start PGD-3 at 4/255 towards the least-likely class), and
the mutants of the plain attack do not run those entries (``suite.OPTIONS``).

* **Restarts**: ART alone offers them (``num_random_init = k``).
  ``ProjectedGradientDescentPyTorch.generate`` keeps restart 0's x_adv and overwrites it, per sample,
  with each later restart's where ``compute_success_array`` (``art/utils.py``) says that restart
  succeeded (a prediction changed from the clean one). The bugs are of that selection. On the suite's
  entry no restart succeeds (``suite.RESTART_ATTACKS``), so the two bugs that keep a later restart show
  in x_adv, and the one that runs a restart fewer in the passes ART spends.
* **Targeted**: the harness passes the targets as the labels, and each library descends the loss to
  them: ART ``targeted=True`` (``_compute_perturbation_pytorch`` inverts the gradient), torchattacks
  ``set_mode_targeted_by_label`` (``cost = -loss(outputs, target_labels)`` in ``PGD.forward``), Foolbox
  ``TargetedMisclassification`` (``gradient_step_sign = -1.0`` in ``BaseGradientDescent.run``), CleverHans
  ``targeted=True`` (``projected_gradient_descent`` hands it to each ``fast_gradient_method`` step, which
  negates the loss). The bugs are of the direction (the target's loss ascended), of the targeted flag
  (lost on its way, so the attack runs untargeted on the targets) and of the class aimed at.

The CleverHans mutant is merged only where CleverHans can run (an optional library), as
``mutants_cleverhans.py``'s are; it imports CleverHans when applied.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from mutants import Mutant, _art_pgd_logger
from torch import nn
from tqdm.auto import tqdm

from advparity import adapters

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import eagerpy as ep  # noqa: E402
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (  # noqa: E402
    ProjectedGradientDescentPyTorch,
)
from art.config import ART_NUMPY_DTYPE  # noqa: E402
from art.utils import (  # noqa: E402
    check_and_transform_label_format,
    compute_success,
    compute_success_array,
    get_labels_np_array,
)
from torchattacks.attack import wrapper_method  # noqa: E402
from torchattacks.attacks.pgd import PGD  # noqa: E402

with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8 (as in adapters/foolbox.py).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    from foolbox.attacks.base import get_criterion, raise_if_kwargs, verify_input_bounds
    from foolbox.attacks.projected_gradient_descent import LinfProjectedGradientDescentAttack
    from foolbox.criteria import Misclassification

# The kinds of bug this module adds to mutants.BUGS (merged there).
BUGS: tuple[str, ...] = (
    "restart selection",  # which restart's x_adv a sample keeps
    "targeted mode",  # a targeted attack run as an untargeted one
)

# The releases copied from beyond mutants.COPIED_FROM's (merged there where their mutants are).
COPIED_FROM: dict[str, str] = {}

RESTARTS = (("restarts", 3),)  # suite.RESTART_ATTACKS
TARGETED = (("targeted", "least-likely"),)  # suite.TARGETED_ATTACKS


# =================================================================================================
# ART 1.20.1 (art/attacks/evasion/projected_gradient_descent/projected_gradient_descent_pytorch.py,
# projected_gradient_descent_numpy.py): ProjectedGradientDescentPyTorch.generate, the restarts' loop
# =================================================================================================


def _art_pgd_restarts_overwrite_failures(mp: pytest.MonkeyPatch) -> None:
    def generate(self, x, y=None, **kwargs):  # type: ignore[no-untyped-def]
        mask = self._get_mask(x, **kwargs)

        # Ensure eps is broadcastable
        self._check_compatibility_input_and_eps(x=x)

        # Check whether random eps is enabled
        self._random_eps()

        # Set up targets
        targets = self._set_targets(x, y)

        # Create dataset
        if mask is not None:
            # Here we need to make a distinction: if the masks are different for each input, we need to index
            # those for the current batch. Otherwise, (i.e. mask is meant to be broadcasted), keep it as it is.
            if len(mask.shape) == len(x.shape):
                dataset = torch.utils.data.TensorDataset(
                    torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(mask.astype(ART_NUMPY_DTYPE)),
                )

            else:
                dataset = torch.utils.data.TensorDataset(
                    torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(np.array([mask.astype(ART_NUMPY_DTYPE)] * x.shape[0])),
                )

        else:
            dataset = torch.utils.data.TensorDataset(
                torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
            )

        data_loader = torch.utils.data.DataLoader(
            dataset=dataset, batch_size=self.batch_size, shuffle=False, drop_last=False
        )

        # Start to compute adversarial examples
        adv_x = x.astype(ART_NUMPY_DTYPE)

        # Compute perturbation with batching
        for batch_id, batch_all in enumerate(
            tqdm(data_loader, desc="PGD - Batches", leave=False, disable=not self.verbose)
        ):
            self._batch_id = batch_id

            if mask is not None:
                (batch, batch_labels, mask_batch) = batch_all[0], batch_all[1], batch_all[2]
            else:
                (batch, batch_labels, mask_batch) = batch_all[0], batch_all[1], None

            batch_index_1, batch_index_2 = batch_id * self.batch_size, (batch_id + 1) * self.batch_size

            # Compute batch_eps and batch_eps_step
            if isinstance(self.eps, np.ndarray) and isinstance(self.eps_step, np.ndarray):
                if len(self.eps.shape) == len(x.shape) and self.eps.shape[0] == x.shape[0]:
                    batch_eps = self.eps[batch_index_1:batch_index_2]
                    batch_eps_step = self.eps_step[batch_index_1:batch_index_2]

                else:
                    batch_eps = self.eps
                    batch_eps_step = self.eps_step

            else:
                batch_eps = self.eps
                batch_eps_step = self.eps_step

            for rand_init_num in range(max(1, self.num_random_init)):
                if rand_init_num == 0:
                    # first iteration: use the adversarial examples as they are the only ones we have now
                    adv_x[batch_index_1:batch_index_2] = self._generate_batch(
                        x=batch, targets=batch_labels, mask=mask_batch, eps=batch_eps, eps_step=batch_eps_step
                    )
                else:
                    adversarial_batch = self._generate_batch(
                        x=batch, targets=batch_labels, mask=mask_batch, eps=batch_eps, eps_step=batch_eps_step
                    )

                    # return the successful adversarial examples
                    attack_success = compute_success_array(
                        self.estimator,
                        batch,
                        batch_labels,
                        adversarial_batch,
                        self.targeted,
                        batch_size=self.batch_size,
                    )
                    # MUTATION: was `adv_x[batch_index_1:batch_index_2][attack_success] = adversarial_batch[attack_success]`
                    adv_x[batch_index_1:batch_index_2][~attack_success] = adversarial_batch[~attack_success]

        _art_pgd_logger.info(
            "Success rate of attack: %.2f%%",
            100
            * compute_success(self.estimator, x, targets, adv_x, self.targeted, batch_size=self.batch_size),
        )

        if self.summary_writer is not None:
            self.summary_writer.reset()

        return adv_x

    mp.setattr(ProjectedGradientDescentPyTorch, "generate", generate)


def _art_pgd_restarts_overwrite_all(mp: pytest.MonkeyPatch) -> None:
    def generate(self, x, y=None, **kwargs):  # type: ignore[no-untyped-def]
        mask = self._get_mask(x, **kwargs)

        # Ensure eps is broadcastable
        self._check_compatibility_input_and_eps(x=x)

        # Check whether random eps is enabled
        self._random_eps()

        # Set up targets
        targets = self._set_targets(x, y)

        # Create dataset
        if mask is not None:
            # Here we need to make a distinction: if the masks are different for each input, we need to index
            # those for the current batch. Otherwise, (i.e. mask is meant to be broadcasted), keep it as it is.
            if len(mask.shape) == len(x.shape):
                dataset = torch.utils.data.TensorDataset(
                    torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(mask.astype(ART_NUMPY_DTYPE)),
                )

            else:
                dataset = torch.utils.data.TensorDataset(
                    torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(np.array([mask.astype(ART_NUMPY_DTYPE)] * x.shape[0])),
                )

        else:
            dataset = torch.utils.data.TensorDataset(
                torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
            )

        data_loader = torch.utils.data.DataLoader(
            dataset=dataset, batch_size=self.batch_size, shuffle=False, drop_last=False
        )

        # Start to compute adversarial examples
        adv_x = x.astype(ART_NUMPY_DTYPE)

        # Compute perturbation with batching
        for batch_id, batch_all in enumerate(
            tqdm(data_loader, desc="PGD - Batches", leave=False, disable=not self.verbose)
        ):
            self._batch_id = batch_id

            if mask is not None:
                (batch, batch_labels, mask_batch) = batch_all[0], batch_all[1], batch_all[2]
            else:
                (batch, batch_labels, mask_batch) = batch_all[0], batch_all[1], None

            batch_index_1, batch_index_2 = batch_id * self.batch_size, (batch_id + 1) * self.batch_size

            # Compute batch_eps and batch_eps_step
            if isinstance(self.eps, np.ndarray) and isinstance(self.eps_step, np.ndarray):
                if len(self.eps.shape) == len(x.shape) and self.eps.shape[0] == x.shape[0]:
                    batch_eps = self.eps[batch_index_1:batch_index_2]
                    batch_eps_step = self.eps_step[batch_index_1:batch_index_2]

                else:
                    batch_eps = self.eps
                    batch_eps_step = self.eps_step

            else:
                batch_eps = self.eps
                batch_eps_step = self.eps_step

            for rand_init_num in range(max(1, self.num_random_init)):
                if rand_init_num == 0:
                    # first iteration: use the adversarial examples as they are the only ones we have now
                    adv_x[batch_index_1:batch_index_2] = self._generate_batch(
                        x=batch, targets=batch_labels, mask=mask_batch, eps=batch_eps, eps_step=batch_eps_step
                    )
                else:
                    adversarial_batch = self._generate_batch(
                        x=batch, targets=batch_labels, mask=mask_batch, eps=batch_eps, eps_step=batch_eps_step
                    )

                    # return the successful adversarial examples
                    attack_success = compute_success_array(  # noqa: F841 (the mutation no longer reads it)
                        self.estimator,
                        batch,
                        batch_labels,
                        adversarial_batch,
                        self.targeted,
                        batch_size=self.batch_size,
                    )
                    # MUTATION: was `adv_x[batch_index_1:batch_index_2][attack_success] = adversarial_batch[attack_success]`
                    adv_x[batch_index_1:batch_index_2] = adversarial_batch

        _art_pgd_logger.info(
            "Success rate of attack: %.2f%%",
            100
            * compute_success(self.estimator, x, targets, adv_x, self.targeted, batch_size=self.batch_size),
        )

        if self.summary_writer is not None:
            self.summary_writer.reset()

        return adv_x

    mp.setattr(ProjectedGradientDescentPyTorch, "generate", generate)


def _art_pgd_restarts_one_fewer(mp: pytest.MonkeyPatch) -> None:
    def generate(self, x, y=None, **kwargs):  # type: ignore[no-untyped-def]
        mask = self._get_mask(x, **kwargs)

        # Ensure eps is broadcastable
        self._check_compatibility_input_and_eps(x=x)

        # Check whether random eps is enabled
        self._random_eps()

        # Set up targets
        targets = self._set_targets(x, y)

        # Create dataset
        if mask is not None:
            # Here we need to make a distinction: if the masks are different for each input, we need to index
            # those for the current batch. Otherwise, (i.e. mask is meant to be broadcasted), keep it as it is.
            if len(mask.shape) == len(x.shape):
                dataset = torch.utils.data.TensorDataset(
                    torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(mask.astype(ART_NUMPY_DTYPE)),
                )

            else:
                dataset = torch.utils.data.TensorDataset(
                    torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
                    torch.from_numpy(np.array([mask.astype(ART_NUMPY_DTYPE)] * x.shape[0])),
                )

        else:
            dataset = torch.utils.data.TensorDataset(
                torch.from_numpy(x.astype(ART_NUMPY_DTYPE)),
                torch.from_numpy(targets.astype(ART_NUMPY_DTYPE)),
            )

        data_loader = torch.utils.data.DataLoader(
            dataset=dataset, batch_size=self.batch_size, shuffle=False, drop_last=False
        )

        # Start to compute adversarial examples
        adv_x = x.astype(ART_NUMPY_DTYPE)

        # Compute perturbation with batching
        for batch_id, batch_all in enumerate(
            tqdm(data_loader, desc="PGD - Batches", leave=False, disable=not self.verbose)
        ):
            self._batch_id = batch_id

            if mask is not None:
                (batch, batch_labels, mask_batch) = batch_all[0], batch_all[1], batch_all[2]
            else:
                (batch, batch_labels, mask_batch) = batch_all[0], batch_all[1], None

            batch_index_1, batch_index_2 = batch_id * self.batch_size, (batch_id + 1) * self.batch_size

            # Compute batch_eps and batch_eps_step
            if isinstance(self.eps, np.ndarray) and isinstance(self.eps_step, np.ndarray):
                if len(self.eps.shape) == len(x.shape) and self.eps.shape[0] == x.shape[0]:
                    batch_eps = self.eps[batch_index_1:batch_index_2]
                    batch_eps_step = self.eps_step[batch_index_1:batch_index_2]

                else:
                    batch_eps = self.eps
                    batch_eps_step = self.eps_step

            else:
                batch_eps = self.eps
                batch_eps_step = self.eps_step

            # MUTATION: was `for rand_init_num in range(max(1, self.num_random_init)):`
            for rand_init_num in range(max(1, self.num_random_init - 1)):
                if rand_init_num == 0:
                    # first iteration: use the adversarial examples as they are the only ones we have now
                    adv_x[batch_index_1:batch_index_2] = self._generate_batch(
                        x=batch, targets=batch_labels, mask=mask_batch, eps=batch_eps, eps_step=batch_eps_step
                    )
                else:
                    adversarial_batch = self._generate_batch(
                        x=batch, targets=batch_labels, mask=mask_batch, eps=batch_eps, eps_step=batch_eps_step
                    )

                    # return the successful adversarial examples
                    attack_success = compute_success_array(
                        self.estimator,
                        batch,
                        batch_labels,
                        adversarial_batch,
                        self.targeted,
                        batch_size=self.batch_size,
                    )
                    adv_x[batch_index_1:batch_index_2][attack_success] = adversarial_batch[attack_success]

        _art_pgd_logger.info(
            "Success rate of attack: %.2f%%",
            100
            * compute_success(self.estimator, x, targets, adv_x, self.targeted, batch_size=self.batch_size),
        )

        if self.summary_writer is not None:
            self.summary_writer.reset()

        return adv_x

    mp.setattr(ProjectedGradientDescentPyTorch, "generate", generate)


# =================================================================================================
# ART 1.20.1: targeted PGD (ProjectedGradientDescentPyTorch._compute_perturbation_pytorch,
# ProjectedGradientDescentCommon._set_targets)
# =================================================================================================


def _art_pgd_targeted_gradient_not_inverted(mp: pytest.MonkeyPatch) -> None:
    def _compute_perturbation_pytorch(self, x, y, mask, momentum):  # type: ignore[no-untyped-def]
        # Get gradient wrt loss; invert it if attack is targeted
        # MUTATION: was `grad = self.estimator.loss_gradient(x=x, y=y) * (-1 if self.targeted else 1)`
        grad = self.estimator.loss_gradient(x=x, y=y)

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
            q_norm = torch.linalg.norm(grad_2d, ord=conjugate, dim=1, keepdim=True)
            grad_2d = (grad_2d.abs() * q_norm.where(q_norm == 0, 1 / q_norm)) ** (conjugate - 1)

        grad = grad_2d.reshape(grad.shape) * grad.sign()

        assert x.shape == grad.shape

        return grad

    mp.setattr(
        ProjectedGradientDescentPyTorch, "_compute_perturbation_pytorch", _compute_perturbation_pytorch
    )


def _art_pgd_targeted_predicted_targets(mp: pytest.MonkeyPatch) -> None:
    # ProjectedGradientDescentCommon._set_targets, set on the PyTorch subclass.
    def _set_targets(self, x, y, classifier_mixin=True):  # type: ignore[no-untyped-def]
        if classifier_mixin:
            if y is not None:
                y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)

        if y is None:
            # Throw error if attack is targeted, but no targets are provided
            if self.targeted:  # pragma: no cover
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")

            # Use model predictions as correct outputs
            if classifier_mixin:
                targets = get_labels_np_array(self.estimator.predict(x, batch_size=self.batch_size))
            else:
                targets = self.estimator.predict(x, batch_size=self.batch_size)

        else:
            # MUTATION: was `targets = y`
            targets = get_labels_np_array(self.estimator.predict(x, batch_size=self.batch_size))

        return targets

    mp.setattr(ProjectedGradientDescentPyTorch, "_set_targets", _set_targets)


# =================================================================================================
# torchattacks 3.5.1 (torchattacks/attacks/pgd.py, attack.py): PGD.forward, Attack._set_mode_targeted
# =================================================================================================


def _torchattacks_pgd_targeted_loss_not_negated(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()
        adv_images = images.clone().detach()

        if self.random_start:
            # Starting at a uniformly random point
            adv_images = adv_images + torch.empty_like(adv_images).uniform_(-self.eps, self.eps)
            adv_images = torch.clamp(adv_images, min=0, max=1).detach()

        for _ in range(self.steps):
            adv_images.requires_grad = True
            outputs = self.get_logits(adv_images)

            # Calculate loss
            if self.targeted:
                # MUTATION: was `cost = -loss(outputs, target_labels)`
                cost = loss(outputs, target_labels)
            else:
                cost = loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGD, "forward", forward)


def _torchattacks_pgd_targeted_mode_ignored(mp: pytest.MonkeyPatch) -> None:
    # Attack._set_mode_targeted (what set_mode_targeted_by_label calls), set on PGD.
    @wrapper_method
    def _set_mode_targeted(self, mode, quiet):  # type: ignore[no-untyped-def]
        if "targeted" not in self.supported_mode:
            raise ValueError("Targeted mode is not supported.")
        # MUTATION: was `self.targeted = True` (dropped)
        self.attack_mode = mode
        if not quiet:
            print("Attack mode is changed to '%s'." % mode)

    mp.setattr(PGD, "_set_mode_targeted", _set_mode_targeted)


# =================================================================================================
# Foolbox 3.3.4 (foolbox/attacks/gradient_descent_base.py): BaseGradientDescent.run, set on LinfPGD
# =================================================================================================


def _foolbox_pgd_targeted_ascends(mp: pytest.MonkeyPatch) -> None:
    # BaseGradientDescent.run, set on LinfPGD.
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
            # MUTATION: was `gradient_step_sign = -1.0`
            gradient_step_sign = 1.0
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

    mp.setattr(LinfProjectedGradientDescentAttack, "run", run)


def _foolbox_pgd_targeted_predicted_class(mp: pytest.MonkeyPatch) -> None:
    # BaseGradientDescent.run, set on LinfPGD.
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
            # MUTATION: was `classes = criterion_.target_classes`
            classes = model(x0).argmax(axis=-1)
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

    mp.setattr(LinfProjectedGradientDescentAttack, "run", run)


# =================================================================================================
# CleverHans 4.0.0 (cleverhans/torch/attacks/projected_gradient_descent.py): projected_gradient_descent
# =================================================================================================


def _cleverhans_pgd_targeted_flag_dropped(mp: pytest.MonkeyPatch) -> None:
    import cleverhans.torch.attacks.projected_gradient_descent as pgd_module
    from cleverhans.torch.attacks.fast_gradient_method import fast_gradient_method
    from cleverhans.torch.utils import clip_eta

    def projected_gradient_descent(  # type: ignore[no-untyped-def]
        model_fn,
        x,
        eps,
        eps_iter,
        nb_iter,
        norm,
        clip_min=None,
        clip_max=None,
        y=None,
        targeted=False,
        rand_init=True,
        rand_minmax=None,
        sanity_checks=True,
    ):
        if norm == 1:
            raise NotImplementedError(
                "It's not clear that FGM is a good inner loop"
                " step for PGD when norm=1, because norm=1 FGM "
                " changes only one pixel at a time. We need "
                " to rigorously test a strong norm=1 PGD "
                "before enabling this feature."
            )
        if norm not in [np.inf, 2]:
            raise ValueError("Norm order must be either np.inf or 2.")
        if eps < 0:
            raise ValueError("eps must be greater than or equal to 0, got {} instead".format(eps))
        if eps == 0:
            return x
        if eps_iter < 0:
            raise ValueError("eps_iter must be greater than or equal to 0, got {} instead".format(eps_iter))
        if eps_iter == 0:
            return x

        assert eps_iter <= eps, (eps_iter, eps)
        if clip_min is not None and clip_max is not None:
            if clip_min > clip_max:
                raise ValueError(
                    "clip_min must be less than or equal to clip_max, got clip_min={} and clip_max={}".format(
                        clip_min, clip_max
                    )
                )

        asserts = []

        # If a data range was specified, check that the input was in that range
        if clip_min is not None:
            assert_ge = torch.all(torch.ge(x, torch.tensor(clip_min, device=x.device, dtype=x.dtype)))
            asserts.append(assert_ge)

        if clip_max is not None:
            assert_le = torch.all(torch.le(x, torch.tensor(clip_max, device=x.device, dtype=x.dtype)))
            asserts.append(assert_le)

        # Initialize loop variables
        if rand_init:
            if rand_minmax is None:
                rand_minmax = eps
            eta = torch.zeros_like(x).uniform_(-rand_minmax, rand_minmax)
        else:
            eta = torch.zeros_like(x)

        # Clip eta
        eta = clip_eta(eta, norm, eps)
        adv_x = x + eta
        if clip_min is not None or clip_max is not None:
            adv_x = torch.clamp(adv_x, clip_min, clip_max)

        if y is None:
            # Using model predictions as ground truth to avoid label leaking
            _, y = torch.max(model_fn(x), 1)

        i = 0
        while i < nb_iter:
            adv_x = fast_gradient_method(
                model_fn,
                adv_x,
                eps_iter,
                norm,
                clip_min=clip_min,
                clip_max=clip_max,
                y=y,
                # MUTATION: was `targeted=targeted,` (dropped: each step runs untargeted)
            )

            # Clipping perturbation eta to norm norm ball
            eta = adv_x - x
            eta = clip_eta(eta, norm, eps)
            adv_x = x + eta

            # Redo the clipping.
            # FGM already did it, but subtracting and re-adding eta can add some
            # small numerical error.
            if clip_min is not None or clip_max is not None:
                adv_x = torch.clamp(adv_x, clip_min, clip_max)
            i += 1

        asserts.append(eps_iter <= eps)
        if norm == np.inf and clip_min is not None:
            # TODO necessary to cast clip_min and clip_max to x.dtype?
            asserts.append(eps + clip_min <= clip_max)

        if sanity_checks:
            assert np.all(asserts)
        return adv_x

    mp.setattr(pgd_module, "projected_gradient_descent", projected_gradient_descent)


# =================================================================================================

MUTANTS: tuple[Mutant, ...] = (
    # --- ART PGD, 3 restarts: which restart each sample keeps ---
    Mutant(
        "art-pgd-restarts-overwrite-failures",
        "art",
        "pgd",
        "restart selection",
        "ART PGD overwrites a sample's x_adv with a later restart's where that restart failed (the success mask inverted), not where it succeeded.",
        _art_pgd_restarts_overwrite_failures,
        where=RESTARTS,
    ),
    Mutant(
        "art-pgd-restarts-overwrite-all",
        "art",
        "pgd",
        "restart selection",
        "ART PGD overwrites every sample's x_adv with each later restart's, successful or not: it returns the last restart.",
        _art_pgd_restarts_overwrite_all,
        where=RESTARTS,
    ),
    Mutant(
        "art-pgd-restarts-one-fewer",
        "art",
        "pgd",
        "restart selection",
        "ART PGD runs num_random_init - 1 restarts, so a success only the last restart finds is never kept.",
        _art_pgd_restarts_one_fewer,
        where=RESTARTS,
    ),
    # --- ART PGD, targeted ---
    Mutant(
        "art-pgd-targeted-gradient-not-inverted",
        "art",
        "pgd",
        "sign",
        "ART PGD does not invert the loss gradient when targeted, so it ascends the target's loss (away from the target).",
        _art_pgd_targeted_gradient_not_inverted,
        where=TARGETED,
    ),
    Mutant(
        "art-pgd-targeted-predicted-targets",
        "art",
        "pgd",
        "labels",
        "ART PGD replaces the labels it is given (the targets, when targeted) with the model's predictions at x, as for y=None: targeted, it descends the loss of the clean prediction.",
        _art_pgd_targeted_predicted_targets,
        where=TARGETED,
    ),
    # --- torchattacks PGD, targeted ---
    Mutant(
        "torchattacks-pgd-targeted-loss-not-negated",
        "torchattacks",
        "pgd",
        "sign",
        "torchattacks PGD steps on +loss(outputs, target_labels) when targeted, ascending the target's loss.",
        _torchattacks_pgd_targeted_loss_not_negated,
        where=TARGETED,
    ),
    Mutant(
        "torchattacks-pgd-targeted-mode-ignored",
        "torchattacks",
        "pgd",
        "targeted mode",
        "torchattacks set_mode_targeted_by_label records the mode but leaves self.targeted False, so PGD runs untargeted on the targets, ascending their loss.",
        _torchattacks_pgd_targeted_mode_ignored,
        where=TARGETED,
    ),
    # --- Foolbox LinfPGD, targeted ---
    Mutant(
        "foolbox-pgd-targeted-ascends",
        "foolbox",
        "pgd",
        "sign",
        "Foolbox LinfPGD keeps gradient_step_sign = +1 for a TargetedMisclassification, ascending the target's loss.",
        _foolbox_pgd_targeted_ascends,
        where=TARGETED,
    ),
    Mutant(
        "foolbox-pgd-targeted-predicted-class",
        "foolbox",
        "pgd",
        "labels",
        "Foolbox LinfPGD, given a TargetedMisclassification, descends the loss of the model's prediction at x instead of the target classes.",
        _foolbox_pgd_targeted_predicted_class,
        where=TARGETED,
    ),
)

# CleverHans is optional: its mutant only where it can run (mutants.OPTIONAL_MUTANT_MODULES's rule).
if "cleverhans" in adapters.runnable():
    COPIED_FROM["cleverhans"] = "4.0.0"
    MUTANTS = (
        *MUTANTS,
        Mutant(
            "cleverhans-pgd-targeted-flag-dropped",
            "cleverhans",
            "pgd",
            "targeted mode",
            "CleverHans projected_gradient_descent does not hand targeted to its fast_gradient_method steps, so each step ascends the target's loss, untargeted.",
            _cleverhans_pgd_targeted_flag_dropped,
            where=TARGETED,
        ),
    )
