# ruff: noqa: SIM102, SIM108  (copied library code keeps its own if/else style)
"""Planted bugs ("mutants") in the real attack libraries, for the mutation suite.

Each :class:`Mutant` plants one plausible implementation bug *inside* an installed library (ART,
torchattacks, Foolbox, or an optional library in ``mutants_<module>.py``) with ``monkeypatch.setattr``; the
project's adapters stay untouched. The cross-check must then flag that library's cells for the
mutant's attack.

Where a method is replaced, its body is copied from the installed source (ART 1.20.1, torchattacks
3.5.1, Foolbox 3.3.4) with exactly one plausible change, marked by a ``# MUTATION:`` comment on the
line above it that quotes the original line. The only other edits are mechanical: ``super()``
spelled with its class (a function defined outside the class has no ``__class__`` cell), annotations
dropped, the modules' ``logger`` renamed, ``noqa`` for lint rules the libraries' own style breaks.
Every name is patched where the library looks it up: a module-level function in the module that
imported it (``random_sphere``), a method on the class the adapters instantiate (set on the subclass
when FGSM and PGD share a base, so each attack can be mutated alone; monkeypatch deletes the added
attribute again on undo).

Mutants with state across calls (the last-partial-batch ones) keep it in a dict created inside
``apply``: a new test gets a new dict, and nothing leaks when monkeypatch undoes the patch.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import eagerpy as ep  # noqa: E402
from art.attacks.evasion import FastGradientMethod  # noqa: E402
from art.attacks.evasion.projected_gradient_descent import projected_gradient_descent_pytorch  # noqa: E402
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (  # noqa: E402
    ProjectedGradientDescentPyTorch,
)
from art.estimators.classification import PyTorchClassifier  # noqa: E402
from art.estimators.classification.classifier import ClassifierMixin  # noqa: E402
from art.utils import (  # noqa: E402
    check_and_transform_label_format,
    compute_success,
    get_labels_np_array,
)
from scipy.special import gammainc  # noqa: E402
from torchattacks.attacks.fgsm import FGSM  # noqa: E402
from torchattacks.attacks.pgd import PGD  # noqa: E402

with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8 (as in adapters/foolbox.py).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    from foolbox.attacks.base import get_criterion, raise_if_kwargs, verify_input_bounds
    from foolbox.attacks.fast_gradient_method import LinfFastGradientAttack
    from foolbox.attacks.projected_gradient_descent import LinfProjectedGradientDescentAttack
    from foolbox.criteria import Misclassification

# The ART modules' own loggers, so copied ART code logs under the same names.
_art_fgm_logger = logging.getLogger("art.attacks.evasion.fast_gradient")
_art_pgd_logger = logging.getLogger(projected_gradient_descent_pytorch.__name__)

# The releases the method bodies below were copied from (distribution name -> version).
COPIED_FROM: dict[str, str] = {
    "adversarial-robustness-toolbox": "1.20.1",
    "torchattacks": "3.5.1",
    "foolbox": "3.3.4",
}


def installed_differs() -> str:
    """'' when the installed libraries are the releases the mutated methods were copied from, else which
    differ: a copy of another release's method would plant its bug into code that no longer exists."""
    import importlib.metadata

    installed = {dist: importlib.metadata.version(dist) for dist in COPIED_FROM}
    return ", ".join(
        f"{d} {installed[d]} (copied from {v})" for d, v in COPIED_FROM.items() if installed[d] != v
    )


BUGS: tuple[str, ...] = (
    "step size",
    "step count",
    "skipped start",
    "one-sided start",
    "sign",
    "projection",
    "clipping",
    "loss",
    "labels",
    "model mode",
    "model state",
    "no-op",
    "last partial batch",
    "normalisation",  # the L2 step's norm: the wrong order, a missing square root
    "start distribution",  # an L2 random start on the sphere instead of in the ball
    "input write",  # the library writes into the arrays it was given (the caller's)
)


@dataclass(frozen=True)
class Mutant:
    name: str  # short kebab-case id
    library: str  # adapters.names() spelling: "art", "torchattacks", "foolbox", "secml-torch", ...
    attack: str  # "fgsm" | "pgd": the attack whose cells the bug affects
    bug: str  # one of BUGS
    description: str  # what the library now does wrong, for the README table
    apply: Callable[[pytest.MonkeyPatch], None]  # plants the bug on the real library objects
    # The variant of the attack the bug is planted in and judged on: "linf" (FGSM, PGD) or "l2" (FGM-L2,
    # PGD-L2). The suite runs only that variant's cells (suite.py), whatever else the bug also reaches.
    norm: str = "linf"
    # The suite entries of that variant the bug can show in, by their settings (suite.L2_ATTACKS):
    # ``(("random_start", True),)`` for a bug of the random start; () for every entry. An entry with an
    # option's setting (suite.OPTIONS: restarts, targeted) runs only for a mutant whose ``where`` names
    # that option (``(("restarts", 3),)``): () is every entry of the plain attack.
    where: tuple[tuple[str, object], ...] = ()


# =================================================================================================
# torchattacks 3.5.1 (torchattacks/attacks/pgd.py, fgsm.py, attack.py)
# =================================================================================================


def _torchattacks_pgd_half_step(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True):  # type: ignore[no-untyped-def]
        super(PGD, self).__init__("PGD", model)
        self.eps = eps
        # MUTATION: was `self.alpha = alpha`
        self.alpha = alpha / 2
        self.steps = steps
        self.random_start = random_start
        self.supported_mode = ["default", "targeted"]

    mp.setattr(PGD, "__init__", __init__)


def _torchattacks_pgd_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=True):  # type: ignore[no-untyped-def]
        super(PGD, self).__init__("PGD", model)
        self.eps = eps
        self.alpha = alpha
        # MUTATION: was `self.steps = steps`
        self.steps = steps - 1
        self.random_start = random_start
        self.supported_mode = ["default", "targeted"]

    mp.setattr(PGD, "__init__", __init__)


def _torchattacks_pgd_one_sided_start(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()
        adv_images = images.clone().detach()

        if self.random_start:
            # Starting at a uniformly random point
            adv_images = adv_images + torch.empty_like(adv_images).uniform_(
                # MUTATION: was `-self.eps, self.eps`
                0,
                self.eps,
            )
            adv_images = torch.clamp(adv_images, min=0, max=1).detach()

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

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGD, "forward", forward)


def _torchattacks_pgd_no_projection(mp: pytest.MonkeyPatch) -> None:
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
                cost = -loss(outputs, target_labels)
            else:
                cost = loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            # MUTATION: was `delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)`
            delta = adv_images - images
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGD, "forward", forward)


def _torchattacks_pgd_loss_negated(mp: pytest.MonkeyPatch) -> None:
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
                cost = -loss(outputs, target_labels)
            else:
                # MUTATION: was `cost = loss(outputs, labels)`
                cost = -loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGD, "forward", forward)


def _torchattacks_pgd_small_batch_unattacked(mp: pytest.MonkeyPatch) -> None:
    state: dict[str, int] = {}  # per apply(): reset for every test

    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        # MUTATION (added): remembers the first batch size
        first_batch = state.setdefault("batch_size", len(images))

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()
        adv_images = images.clone().detach()

        if self.random_start:
            # Starting at a uniformly random point
            adv_images = adv_images + torch.empty_like(adv_images).uniform_(-self.eps, self.eps)
            adv_images = torch.clamp(adv_images, min=0, max=1).detach()

        # MUTATION: was `for _ in range(self.steps):`
        for _ in range(self.steps if len(images) >= first_batch else 0):
            adv_images.requires_grad = True
            outputs = self.get_logits(adv_images)

            # Calculate loss
            if self.targeted:
                cost = -loss(outputs, target_labels)
            else:
                cost = loss(outputs, labels)

            # Update adversarial images
            grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]

            adv_images = adv_images.detach() + self.alpha * grad.sign()
            delta = torch.clamp(adv_images - images, min=-self.eps, max=self.eps)
            adv_images = torch.clamp(images + delta, min=0, max=1).detach()

        return adv_images

    mp.setattr(PGD, "forward", forward)


def _torchattacks_fgsm_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        images.requires_grad = True
        outputs = self.get_logits(images)

        # Calculate loss
        if self.targeted:
            cost = -loss(outputs, target_labels)
        else:
            cost = loss(outputs, labels)

        # Update adversarial images
        grad = torch.autograd.grad(cost, images, retain_graph=False, create_graph=False)[0]

        # MUTATION: was `adv_images = images + self.eps * grad.sign()`
        adv_images = images - self.eps * grad.sign()
        adv_images = torch.clamp(adv_images, min=0, max=1).detach()

        return adv_images

    mp.setattr(FGSM, "forward", forward)


def _torchattacks_fgsm_no_clip(mp: pytest.MonkeyPatch) -> None:
    def forward(self, images, labels):  # type: ignore[no-untyped-def]
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)

        if self.targeted:
            target_labels = self.get_target_label(images, labels)

        loss = nn.CrossEntropyLoss()

        images.requires_grad = True
        outputs = self.get_logits(images)

        # Calculate loss
        if self.targeted:
            cost = -loss(outputs, target_labels)
        else:
            cost = loss(outputs, labels)

        # Update adversarial images
        grad = torch.autograd.grad(cost, images, retain_graph=False, create_graph=False)[0]

        adv_images = images + self.eps * grad.sign()
        # MUTATION: was `adv_images = torch.clamp(adv_images, min=0, max=1).detach()`
        adv_images = adv_images.detach()

        return adv_images

    mp.setattr(FGSM, "forward", forward)


def _torchattacks_fgsm_train_mode(mp: pytest.MonkeyPatch) -> None:
    # Attack._change_model_mode (wrapped by wrapper_method, a no-op here: FGSM has no sub-attacks),
    # set on FGSM only so PGD keeps the library's own.
    def _change_model_mode(self, given_training):  # type: ignore[no-untyped-def]
        if self._model_training:
            self.model.train()
            for _, m in self.model.named_modules():
                if not self._batchnorm_training:  # noqa: SIM102
                    if "BatchNorm" in m.__class__.__name__:
                        m = m.eval()
                if not self._dropout_training:  # noqa: SIM102
                    if "Dropout" in m.__class__.__name__:
                        m = m.eval()
        else:
            # MUTATION: was `self.model.eval()`
            self.model.train()

    mp.setattr(FGSM, "_change_model_mode", _change_model_mode)


# =================================================================================================
# ART 1.20.1: ProjectedGradientDescent dispatches to ProjectedGradientDescentPyTorch for a
# PyTorchClassifier; FGSM is FastGradientMethod's numpy path.
# =================================================================================================


def _art_pgd_skipped_start(mp: pytest.MonkeyPatch) -> None:
    def _generate_batch(self, x, targets, mask, eps, eps_step):  # type: ignore[no-untyped-def]
        import torch

        inputs = x.to(self.estimator.device)
        targets = targets.to(self.estimator.device)
        adv_x = torch.clone(inputs)
        momentum = torch.zeros(inputs.shape).to(self.estimator.device)

        if mask is not None:
            mask = mask.to(self.estimator.device)

        for i_max_iter in range(self.max_iter):
            self._i_max_iter = i_max_iter
            adv_x = self._compute_pytorch(
                adv_x,
                inputs,
                targets,
                mask,
                eps,
                eps_step,
                # MUTATION: was `self.num_random_init > 0 and i_max_iter == 0`
                self.num_random_init > 1 and i_max_iter == 0,
                momentum,
            )

        return adv_x.cpu().detach().numpy()

    mp.setattr(ProjectedGradientDescentPyTorch, "_generate_batch", _generate_batch)


def _art_pgd_one_sided_start(mp: pytest.MonkeyPatch) -> None:
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
            base = gammainc(nb_dims / 2.0, s_2 / 2.0) ** (1 / nb_dims) * radius / np.sqrt(s_2)
            res = a_tmp * (np.tile(base, (nb_dims, 1))).T

        elif norm in [np.inf, "inf"]:
            if isinstance(radius, np.ndarray):
                radius = radius * np.ones(shape=(nb_points, nb_dims))

            # MUTATION: was `np.random.uniform(-radius, radius, (nb_points, nb_dims))`
            res = np.random.uniform(0, radius, (nb_points, nb_dims))

        else:
            raise NotImplementedError(f"Norm {norm} not supported")

        return res

    mp.setattr(projected_gradient_descent_pytorch, "random_sphere", random_sphere)


def _art_pgd_predicted_labels(mp: pytest.MonkeyPatch) -> None:
    # ProjectedGradientDescentCommon._set_targets, set on the PyTorch subclass.
    def _set_targets(self, x, y, classifier_mixin=True):  # type: ignore[no-untyped-def]
        if classifier_mixin:  # noqa: SIM102
            if y is not None:
                y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)

        # MUTATION: was `if y is None:`
        if y is None or not self.targeted:
            # Throw error if attack is targeted, but no targets are provided
            if self.targeted:  # pragma: no cover
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")

            # Use model predictions as correct outputs
            if classifier_mixin:
                targets = get_labels_np_array(self.estimator.predict(x, batch_size=self.batch_size))
            else:
                targets = self.estimator.predict(x, batch_size=self.batch_size)

        else:
            targets = y

        return targets

    mp.setattr(ProjectedGradientDescentPyTorch, "_set_targets", _set_targets)


def _art_pgd_train_mode_gradients(mp: pytest.MonkeyPatch) -> None:
    def _compute_perturbation_pytorch(self, x, y, mask, momentum):  # type: ignore[no-untyped-def]
        import torch

        # Get gradient wrt loss; invert it if attack is targeted
        # MUTATION: was `self.estimator.loss_gradient(x=x, y=y) * (-1 if self.targeted else 1)`
        grad = self.estimator.loss_gradient(x=x, y=y, training_mode=True) * (-1 if self.targeted else 1)

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


def _art_pgd_predict_updates_batchnorm(mp: pytest.MonkeyPatch) -> None:
    # PyTorchClassifier.predict with one default flipped. ART PGD predicts the clean and the adversarial
    # batch after the attack to log a success rate; in train mode those forwards update BatchNorm's
    # running statistics. (Replaces ART's InputFilter wrapper of predict too; it only converts
    # non-ndarray x, and ART passes ndarrays.)
    # MUTATION: was `training_mode: bool = False`
    def predict(self, x, batch_size=128, training_mode=True, **kwargs):  # type: ignore[no-untyped-def]
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        # Set model mode
        self._model.train(mode=training_mode)

        # Apply preprocessing
        x_preprocessed, _ = self._apply_preprocessing(x, y=None, fit=False)

        # Create dataloader
        x_tensor = torch.from_numpy(x_preprocessed)
        dataset = TensorDataset(x_tensor)
        dataloader = DataLoader(dataset=dataset, batch_size=batch_size, shuffle=False)

        results_list = []
        for (x_batch,) in dataloader:
            # Move inputs to device
            x_batch = x_batch.to(self._device)

            # Run prediction
            with torch.no_grad():
                model_outputs = self._model(x_batch)
            output = model_outputs[-1]
            output = output.detach().cpu().numpy().astype(np.float32)
            if len(output.shape) == 1:
                output = np.expand_dims(output, axis=1).astype(np.float32)

            results_list.append(output)

        results = np.vstack(results_list)

        # Apply postprocessing
        predictions = self._apply_postprocessing(preds=results, fit=False)

        return predictions

    mp.setattr(PyTorchClassifier, "predict", predict)


def _art_fgsm_no_op(mp: pytest.MonkeyPatch) -> None:
    # Replaces ART's InputFilter wrapper of generate too; it only converts non-ndarray x and y, and
    # the adapter passes ndarrays.
    def generate(self, x, y=None, **kwargs):  # type: ignore[no-untyped-def]
        mask = self._get_mask(x, **kwargs)

        # Ensure eps is broadcastable
        self._check_compatibility_input_and_eps(x=x)

        if isinstance(self.estimator, ClassifierMixin):
            if y is not None:
                y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)

            if y is None:
                # Throw error if attack is targeted, but no targets are provided
                if self.targeted:  # pragma: no cover
                    raise ValueError("Target labels `y` need to be provided for a targeted attack.")

                # Use model predictions as correct outputs
                _art_fgm_logger.info("Using model predictions as correct labels for FGM.")
                y_array = get_labels_np_array(self.estimator.predict(x, batch_size=self.batch_size))
            else:
                y_array = y

            if self.estimator.nb_classes > 2:
                y_array = y_array / np.sum(y_array, axis=1, keepdims=True)

            # Return adversarial examples computed with minimal perturbation if option is active
            adv_x_best = x
            if self.minimal:
                _art_fgm_logger.info("Performing minimal perturbation FGM.")
                adv_x_best = self._minimal_perturbation(x, y_array, mask)
                rate_best = 100 * compute_success(
                    self.estimator,
                    x,
                    y_array,
                    adv_x_best,
                    self.targeted,
                    batch_size=self.batch_size,
                )
            else:
                rate_best = 0.0
                # MUTATION: was `for _ in range(max(1, self.num_random_init)):`
                for _ in range(self.num_random_init):
                    adv_x = self._compute(
                        x,
                        x,
                        y_array,
                        mask,
                        self.eps,
                        self.eps,
                        self._project,
                        self.num_random_init > 0,
                    )

                    if self.num_random_init > 1:
                        rate = 100 * compute_success(
                            self.estimator,
                            x,
                            y_array,
                            adv_x,
                            self.targeted,
                            batch_size=self.batch_size,
                        )
                        if rate > rate_best:
                            rate_best = rate
                            adv_x_best = adv_x
                    else:
                        adv_x_best = adv_x

            _art_fgm_logger.info(
                "Success rate of FGM attack: %.2f%%",
                (
                    rate_best
                    if rate_best is not None
                    else 100
                    * compute_success(
                        self.estimator,
                        x,
                        y_array,
                        adv_x_best,
                        self.targeted,
                        batch_size=self.batch_size,
                    )
                ),
            )

        else:
            if self.minimal:  # pragma: no cover
                raise ValueError("Minimal perturbation is only supported for classification.")

            if y is None:
                # Throw error if attack is targeted, but no targets are provided
                if self.targeted:  # pragma: no cover
                    raise ValueError("Target labels `y` need to be provided for a targeted attack.")

                # Use model predictions as correct outputs
                _art_fgm_logger.info("Using model predictions as correct labels for FGM.")
                y_array = self.estimator.predict(x, batch_size=self.batch_size)
            else:
                y_array = y

            adv_x_best = self._compute(
                x,
                x,
                y_array,
                None,
                self.eps,
                self.eps,
                self._project,
                self.num_random_init > 0,
            )

        if self.summary_writer is not None:
            self.summary_writer.reset()

        return adv_x_best

    mp.setattr(FastGradientMethod, "generate", generate)


def _art_fgsm_writes_into_input(mp: pytest.MonkeyPatch) -> None:
    released = FastGradientMethod.generate

    def generate(self, x, y=None, **kwargs):  # type: ignore[no-untyped-def]
        x_adv = released(self, x, y, **kwargs)
        # MUTATION: added — the adversarial example also written into the caller's array, in place
        x[...] = x_adv
        return x_adv

    mp.setattr(FastGradientMethod, "generate", generate)


def _art_fgsm_no_clip(mp: pytest.MonkeyPatch) -> None:
    def _apply_perturbation(self, x, perturbation, eps_step):  # type: ignore[no-untyped-def]
        perturbation_step = eps_step * perturbation
        if perturbation_step.dtype != object:
            perturbation_step[np.isnan(perturbation_step)] = 0
        else:
            for i, _ in enumerate(perturbation_step):
                perturbation_step_i_array = perturbation_step[i].astype(np.float32)
                if np.isnan(perturbation_step_i_array).any():
                    perturbation_step[i] = np.where(
                        np.isnan(perturbation_step_i_array), 0.0, perturbation_step_i_array
                    ).astype(object)

        x = x + perturbation_step
        if self.estimator.clip_values is not None:
            clip_min, clip_max = self.estimator.clip_values
            if x.dtype == object:
                for i_obj in range(x.shape[0]):
                    x[i_obj] = np.clip(x[i_obj], clip_min, clip_max)
            else:
                # MUTATION: was `x = np.clip(x, clip_min, clip_max)`
                pass

        return x

    mp.setattr(FastGradientMethod, "_apply_perturbation", _apply_perturbation)


# =================================================================================================
# Foolbox 3.3.4: LinfFastGradientAttack and LinfProjectedGradientDescentAttack share
# BaseGradientDescent.run and LinfBaseGradientDescent; patched on the subclass the bug belongs to.
# =================================================================================================


def _foolbox_pgd_default_rel_stepsize(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, *, rel_stepsize=0.01 / 0.3, abs_stepsize=None, steps=40, random_start=True):  # type: ignore[no-untyped-def]
        super(LinfProjectedGradientDescentAttack, self).__init__(
            # MUTATION: was `rel_stepsize=rel_stepsize,` and `abs_stepsize=abs_stepsize,` (both dropped)
            rel_stepsize=0.01 / 0.3,
            abs_stepsize=None,
            steps=steps,
            random_start=random_start,
        )

    mp.setattr(LinfProjectedGradientDescentAttack, "__init__", __init__)


def _foolbox_pgd_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    # BaseGradientDescent.run, set on LinfPGD (LinfFastGradientAttack.run calls the base's).
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

    mp.setattr(LinfProjectedGradientDescentAttack, "run", run)


def _foolbox_pgd_projects_around_iterate(mp: pytest.MonkeyPatch) -> None:
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
            # MUTATION: was `x = self.project(x, x0, epsilon)`
            x = self.project(x, x, epsilon)
            x = ep.clip(x, *model.bounds)

        return restore_type(x)

    mp.setattr(LinfProjectedGradientDescentAttack, "run", run)


def _foolbox_pgd_small_batch_no_start(mp: pytest.MonkeyPatch) -> None:
    state: dict[str, int] = {}  # per apply(): reset for every test

    # LinfBaseGradientDescent.get_random_start, set on LinfPGD.
    def get_random_start(self, x0, epsilon):  # type: ignore[no-untyped-def]
        # MUTATION (added): a batch smaller than the first starts at x
        if len(x0) < state.setdefault("batch_size", len(x0)):
            return x0
        return x0 + ep.uniform(x0, x0.shape, -epsilon, epsilon)

    mp.setattr(LinfProjectedGradientDescentAttack, "get_random_start", get_random_start)


def _foolbox_fgsm_loss_on_softmax(mp: pytest.MonkeyPatch) -> None:
    # BaseGradientDescent.get_loss_fn, set on LinfFastGradientAttack.
    def get_loss_fn(self, model, labels):  # type: ignore[no-untyped-def]
        # can be overridden by users
        def loss_fn(inputs):  # type: ignore[no-untyped-def]
            logits = model(inputs)
            # MUTATION: was `ep.crossentropy(logits, labels).sum()`
            return ep.crossentropy(ep.softmax(logits), labels).sum()

        return loss_fn

    mp.setattr(LinfFastGradientAttack, "get_loss_fn", get_loss_fn)


def _foolbox_fgsm_labels_shifted(mp: pytest.MonkeyPatch) -> None:
    def get_loss_fn(self, model, labels):  # type: ignore[no-untyped-def]
        # can be overridden by users
        def loss_fn(inputs):  # type: ignore[no-untyped-def]
            logits = model(inputs)
            # MUTATION: was `ep.crossentropy(logits, labels).sum()`
            return ep.crossentropy(logits, (labels + 1) % logits.shape[-1]).sum()

        return loss_fn

    mp.setattr(LinfFastGradientAttack, "get_loss_fn", get_loss_fn)


def _foolbox_fgsm_zero_steps(mp: pytest.MonkeyPatch) -> None:
    def __init__(self, *, random_start=False):  # type: ignore[no-untyped-def]
        super(LinfFastGradientAttack, self).__init__(
            rel_stepsize=1.0,
            # MUTATION: was `steps=1,`
            steps=0,
            random_start=random_start,
        )

    mp.setattr(LinfFastGradientAttack, "__init__", __init__)


# =================================================================================================

MUTANTS: tuple[Mutant, ...] = (
    # --- torchattacks ---
    Mutant(
        "torchattacks-pgd-half-step",
        "torchattacks",
        "pgd",
        "step size",
        "torchattacks PGD stores half the step size it is given (alpha/2 per step).",
        _torchattacks_pgd_half_step,
    ),
    Mutant(
        "torchattacks-pgd-one-step-fewer",
        "torchattacks",
        "pgd",
        "step count",
        "torchattacks PGD runs steps-1 iterations.",
        _torchattacks_pgd_one_step_fewer,
    ),
    Mutant(
        "torchattacks-pgd-one-sided-start",
        "torchattacks",
        "pgd",
        "one-sided start",
        "torchattacks PGD draws its random start from U(0, eps) instead of U(-eps, eps).",
        _torchattacks_pgd_one_sided_start,
    ),
    Mutant(
        "torchattacks-pgd-no-projection",
        "torchattacks",
        "pgd",
        "projection",
        "torchattacks PGD never projects onto the eps-ball (only clips to [0, 1]); the guard rejects the output (AttackOutputError, eps-ball).",
        _torchattacks_pgd_no_projection,
    ),
    Mutant(
        "torchattacks-pgd-loss-negated",
        "torchattacks",
        "pgd",
        "loss",
        "torchattacks PGD negates the untargeted loss, so it descends the cross-entropy.",
        _torchattacks_pgd_loss_negated,
    ),
    Mutant(
        "torchattacks-pgd-small-batch-unattacked",
        "torchattacks",
        "pgd",
        "last partial batch",
        "torchattacks PGD remembers the first batch size it saw and returns only the random start (no steps) for a smaller, last batch.",
        _torchattacks_pgd_small_batch_unattacked,
    ),
    Mutant(
        "torchattacks-fgsm-sign-reversed",
        "torchattacks",
        "fgsm",
        "sign",
        "torchattacks FGSM steps against the gradient (x - eps·sign(∇)), lowering the loss.",
        _torchattacks_fgsm_sign_reversed,
    ),
    Mutant(
        "torchattacks-fgsm-no-clip",
        "torchattacks",
        "fgsm",
        "clipping",
        "torchattacks FGSM does not clip to [0, 1]; the guard rejects the output (AttackOutputError, [0, 1] box).",
        _torchattacks_fgsm_no_clip,
    ),
    Mutant(
        "torchattacks-fgsm-train-mode",
        "torchattacks",
        "fgsm",
        "model mode",
        "torchattacks FGSM puts the model in train mode for the attack: BatchNorm uses batch statistics (and updates its running stats).",
        _torchattacks_fgsm_train_mode,
    ),
    # --- ART ---
    Mutant(
        "art-pgd-skipped-start",
        "art",
        "pgd",
        "skipped start",
        "ART PGD only starts at a random point with num_random_init > 1, so num_random_init=1 starts at x.",
        _art_pgd_skipped_start,
    ),
    Mutant(
        "art-pgd-one-sided-start",
        "art",
        "pgd",
        "one-sided start",
        "ART PGD's random start (random_sphere, L∞) draws U(0, eps) instead of U(-eps, eps).",
        _art_pgd_one_sided_start,
    ),
    Mutant(
        "art-pgd-predicted-labels",
        "art",
        "pgd",
        "labels",
        "ART PGD (untargeted) ignores the true labels it is given and attacks the model's predicted labels, as for y=None.",
        _art_pgd_predicted_labels,
    ),
    Mutant(
        "art-pgd-train-mode-gradients",
        "art",
        "pgd",
        "model mode",
        "ART PGD asks for its loss gradients with training_mode=True: BatchNorm uses batch statistics (and updates its running stats).",
        _art_pgd_train_mode_gradients,
    ),
    Mutant(
        "art-pgd-predict-updates-batchnorm",
        "art",
        "pgd",
        "model state",
        "ART's PyTorchClassifier.predict defaults to training_mode=True, so PGD's success-rate predictions after the attack update BatchNorm's running stats; x_adv is unchanged (the guard restores the model and logs it).",
        _art_pgd_predict_updates_batchnorm,
    ),
    Mutant(
        "art-fgsm-no-op",
        "art",
        "fgsm",
        "no-op",
        "ART FGSM loops over range(num_random_init) instead of range(max(1, num_random_init)): with no random init it returns x unchanged.",
        _art_fgsm_no_op,
    ),
    Mutant(
        "art-fgsm-writes-into-input",
        "art",
        "fgsm",
        "input write",
        "ART FGSM writes its adversarial example into the caller's array as well as returning it.",
        _art_fgsm_writes_into_input,
    ),
    Mutant(
        "art-fgsm-no-clip",
        "art",
        "fgsm",
        "clipping",
        "ART FGSM skips clipping to clip_values=(0, 1) after the step; the guard rejects the output (AttackOutputError, [0, 1] box).",
        _art_fgsm_no_clip,
    ),
    # --- Foolbox ---
    Mutant(
        "foolbox-pgd-default-rel-stepsize",
        "foolbox",
        "pgd",
        "step size",
        "Foolbox LinfPGD drops its step-size arguments and steps with the default rel_stepsize=1/30 of eps instead of abs_stepsize.",
        _foolbox_pgd_default_rel_stepsize,
    ),
    Mutant(
        "foolbox-pgd-one-step-fewer",
        "foolbox",
        "pgd",
        "step count",
        "Foolbox LinfPGD runs steps-1 iterations.",
        _foolbox_pgd_one_step_fewer,
    ),
    Mutant(
        "foolbox-pgd-projects-around-iterate",
        "foolbox",
        "pgd",
        "projection",
        "Foolbox LinfPGD projects each iterate onto the eps-ball around itself (a no-op) instead of around the clean x; Foolbox's final clip_perturbation pulls the output back into the ball, so the guard passes and only x_adv differs.",
        _foolbox_pgd_projects_around_iterate,
    ),
    Mutant(
        "foolbox-pgd-small-batch-no-start",
        "foolbox",
        "pgd",
        "last partial batch",
        "Foolbox LinfPGD remembers the first batch size it saw and starts a smaller, last batch at x instead of a random point.",
        _foolbox_pgd_small_batch_no_start,
    ),
    Mutant(
        "foolbox-fgsm-loss-on-softmax",
        "foolbox",
        "fgsm",
        "loss",
        "Foolbox FGSM takes the cross-entropy of the softmax probabilities instead of the logits.",
        _foolbox_fgsm_loss_on_softmax,
    ),
    Mutant(
        "foolbox-fgsm-labels-shifted",
        "foolbox",
        "fgsm",
        "labels",
        "Foolbox FGSM attacks label y+1 (mod classes) instead of the true label y.",
        _foolbox_fgsm_labels_shifted,
    ),
    Mutant(
        "foolbox-fgsm-zero-steps",
        "foolbox",
        "fgsm",
        "no-op",
        "Foolbox FGSM is built with steps=0, so it returns x unchanged.",
        _foolbox_fgsm_zero_steps,
    ),
)

# The L2 variants' mutants of the three libraries above (same releases) live in mutants_l2.py, which
# imports Mutant from here.
import mutants_l2  # noqa: E402

MUTANTS = (*MUTANTS, *mutants_l2.MUTANTS)

# BIM's and MI-FGSM's mutants of the same three libraries live in mutants_iterative.py, which imports
# Mutant from here and adds the kinds of bug it plants (the momentum's) to BUGS.
import mutants_iterative  # noqa: E402

MUTANTS = (*MUTANTS, *mutants_iterative.MUTANTS)
BUGS = (*BUGS, *mutants_iterative.BUGS)

# The optional libraries' mutants live in mutants_<module>.py, which import Mutant from here: merged
# last, and only where the library can run (an optional library may not be installed).
import importlib  # noqa: E402

from advparity import adapters  # noqa: E402

OPTIONAL_MUTANT_MODULES: dict[str, str] = {
    "secml-torch": "mutants_secml_torch",
    "adv-lib": "mutants_adv_lib",
    "deeprobust": "mutants_deeprobust",
    "cleverhans": "mutants_cleverhans",
    "autoattack": "mutants_autoattack",
}
for _library, _module_name in OPTIONAL_MUTANT_MODULES.items():
    if _library in adapters.runnable():
        _module = importlib.import_module(_module_name)
        COPIED_FROM.update(_module.COPIED_FROM)
        MUTANTS = (*MUTANTS, *_module.MUTANTS)

# The mutants of PGD's options (restarts, targeted) live in mutants_options.py, which imports Mutant from
# here and adds the kinds of bug it plants to BUGS; its CleverHans mutant only where CleverHans can run.
import mutants_options  # noqa: E402

COPIED_FROM.update(mutants_options.COPIED_FROM)
MUTANTS = (*MUTANTS, *mutants_options.MUTANTS)
BUGS = (*BUGS, *mutants_options.BUGS)

# The mutants of the core libraries' APGD (torchattacks') live in mutants_apgd.py, likewise.
import mutants_apgd  # noqa: E402

COPIED_FROM.update(mutants_apgd.COPIED_FROM)
MUTANTS = (*MUTANTS, *mutants_apgd.MUTANTS)

# The mutants only the invariants (and the passes) need catch live in mutants_invariants.py, likewise.
import mutants_invariants  # noqa: E402

COPIED_FROM.update(mutants_invariants.COPIED_FROM)
MUTANTS = (*MUTANTS, *mutants_invariants.MUTANTS)
BUGS = (*BUGS, *mutants_invariants.BUGS)

# The suite plants bugs in the releases `make install` pins (ATTACK_LIBS in the Makefile); under other
# releases (tox's libs-oldest, a newer release) it says so instead of failing on stale copies. Defined
# after the merge above, so that the optional libraries' releases are checked too.
needs_copied_releases = pytest.mark.skipif(
    bool(installed_differs()), reason=f"mutants copied from other releases: {installed_differs()}"
)
