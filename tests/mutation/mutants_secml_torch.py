"""Planted bugs in secml-torch, for the mutation suite (appended to ``mutants.MUTANTS``).

As in ``mutants.py``: each replaced method is copied from the installed release (secml-torch 1.5) with
exactly one plausible change, marked by a ``# MUTATION:`` comment that quotes the original line. The
other edits are mechanical: ``super()`` spelled with its class, annotations and docstrings dropped,
``noqa`` for an unused name the copied code keeps.
The adapter uses the native ``PGDNative`` for PGD and ``FGSMFoolbox`` (secml-torch's wrapper around
Foolbox's one-step LinfPGD) for FGSM, so the FGSM bugs are planted in secml-torch's wrapper code, not
in Foolbox's; the wrapper's shared ``BaseFoolboxEvasionAttack._run`` is set on ``FGSMFoolbox`` so
that only FGSM is mutated.

secml-torch's unmutated PGD already differs from the reference (``tests/support/departures.py``), so for its
PGD mutants the end-to-end suite's "caught" verdict says little; what shows each of them is
``test_mutants_live.py``: the mutated x_adv differs from the unmutated library's, or the guard rejects it.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from mutants import Mutant

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

with warnings.catch_warnings():
    # foolbox 3.3.4 imports scipy.ndimage.filters, deprecated in SciPy 1.8 (as in adapters/foolbox.py).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="foolbox")
    from foolbox.criteria import Misclassification, TargetedMisclassification
    from foolbox.models.pytorch import PyTorchModel
    from secmlt.adv.evasion.foolbox_attacks.foolbox_fgsm import FGSMFoolbox
    from secmlt.adv.evasion.modular_attacks.modular_attack import CE_LOSS
    from secmlt.adv.evasion.perturbation_models import LpPerturbationModels
    from secmlt.adv.evasion.pgd import PGDNative
    from secmlt.manipulations.manipulation import AdditiveManipulation
    from secmlt.models.pytorch.base_pytorch_nn import BasePyTorchClassifier
    from secmlt.optimization.constraints import (
        ClipConstraint,
        L1Constraint,
        L2Constraint,
        LInfConstraint,
    )
    from secmlt.optimization.gradient_processing import LinearProjectionGradientProcessing
    from secmlt.optimization.initializer import Initializer, RandomLpInitializer
    from secmlt.optimization.optimizer_factory import OptimizerFactory
    from secmlt.optimization.scheduler_factory import LRSchedulerFactory
    from secmlt.trackers.model_tracker import ModelTracker
    from secmlt.utils.tensor_utils import atleast_kd

# The release the method bodies below were copied from (distribution name -> version).
COPIED_FROM: dict[str, str] = {"secml-torch": "1.5"}


# =================================================================================================
# secml-torch 1.5 (secmlt/adv/evasion/pgd.py, optimization/constraints.py,
# adv/evasion/foolbox_attacks/foolbox_base.py)
# =================================================================================================


def _secml_pgd_half_step(mp: pytest.MonkeyPatch) -> None:
    # PGDNative.__init__. The step the optimiser takes is ModularEvasionAttack.step_size (it creates
    # the SGD with lr=self.step_size), not the lr of the SGD partial.
    def __init__(  # type: ignore[no-untyped-def]
        self,
        perturbation_model,
        epsilon,
        num_steps,
        step_size,
        random_start,
        y_target=None,
        lb=0.0,
        ub=1.0,
        trackers=None,
        **kwargs,
    ):
        perturbation_models = {
            LpPerturbationModels.L1: L1Constraint,
            LpPerturbationModels.L2: L2Constraint,
            LpPerturbationModels.LINF: LInfConstraint,
        }

        if random_start:
            initializer = RandomLpInitializer(
                perturbation_model=perturbation_model,
                radius=epsilon,
            )
        else:
            initializer = Initializer()
        self.epsilon = epsilon
        gradient_processing = LinearProjectionGradientProcessing(perturbation_model)
        perturbation_constraints = [
            perturbation_models[perturbation_model](radius=self.epsilon),
        ]
        domain_constraints = [ClipConstraint(lb=lb, ub=ub)]
        manipulation_function = AdditiveManipulation(
            domain_constraints=domain_constraints,
            perturbation_constraints=perturbation_constraints,
        )
        super(PGDNative, self).__init__(
            y_target=y_target,
            num_steps=num_steps,
            # MUTATION: was `step_size=step_size,`
            step_size=step_size / 2,
            loss_function=CE_LOSS,
            optimizer_cls=OptimizerFactory.create_sgd(step_size),
            scheduler_cls=LRSchedulerFactory.create_no_scheduler(),
            manipulation_function=manipulation_function,
            gradient_processing=gradient_processing,
            initializer=initializer,
            trackers=trackers,
        )

    mp.setattr(PGDNative, "__init__", __init__)


def _secml_pgd_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
    # PGDNative.__init__
    def __init__(  # type: ignore[no-untyped-def]
        self,
        perturbation_model,
        epsilon,
        num_steps,
        step_size,
        random_start,
        y_target=None,
        lb=0.0,
        ub=1.0,
        trackers=None,
        **kwargs,
    ):
        perturbation_models = {
            LpPerturbationModels.L1: L1Constraint,
            LpPerturbationModels.L2: L2Constraint,
            LpPerturbationModels.LINF: LInfConstraint,
        }

        if random_start:
            initializer = RandomLpInitializer(
                perturbation_model=perturbation_model,
                radius=epsilon,
            )
        else:
            initializer = Initializer()
        self.epsilon = epsilon
        gradient_processing = LinearProjectionGradientProcessing(perturbation_model)
        perturbation_constraints = [
            perturbation_models[perturbation_model](radius=self.epsilon),
        ]
        domain_constraints = [ClipConstraint(lb=lb, ub=ub)]
        manipulation_function = AdditiveManipulation(
            domain_constraints=domain_constraints,
            perturbation_constraints=perturbation_constraints,
        )
        super(PGDNative, self).__init__(
            y_target=y_target,
            # MUTATION: was `num_steps=num_steps,`
            num_steps=num_steps - 1,
            step_size=step_size,
            loss_function=CE_LOSS,
            optimizer_cls=OptimizerFactory.create_sgd(step_size),
            scheduler_cls=LRSchedulerFactory.create_no_scheduler(),
            manipulation_function=manipulation_function,
            gradient_processing=gradient_processing,
            initializer=initializer,
            trackers=trackers,
        )

    mp.setattr(PGDNative, "__init__", __init__)


def _secml_pgd_no_projection(mp: pytest.MonkeyPatch) -> None:
    # LInfConstraint.project: also what the random start projects with.
    def project(self, x):  # type: ignore[no-untyped-def]
        radius = atleast_kd(self.radius, k=len(x.shape))  # noqa: F841  (kept from the copied body)
        # MUTATION: was `return x.clamp(min=-radius, max=radius)`
        return x

    mp.setattr(LInfConstraint, "project", project)


def _secml_fgsm_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    # BaseFoolboxEvasionAttack._run, set on FGSMFoolbox.
    def _run(self, model, samples, labels):  # type: ignore[no-untyped-def]
        if not isinstance(model, BasePyTorchClassifier):
            msg = "Model type not supported."
            raise NotImplementedError(msg)
        target = None
        if self.y_target is not None:
            target = (torch.zeros_like(labels) + self.y_target).type(labels.dtype)
        tracking_labels = labels if target is None else target
        # Wrap model with ModelTracker if trackers are set
        model_tracker = None
        if self._trackers:
            model_tracker = ModelTracker(model, trackers=self._trackers)
            model_tracker.init_tracking(x_orig=samples, y=tracking_labels)
            model = model_tracker
        device = model._get_device()
        samples = samples.to(device)
        labels = labels.to(device)
        foolbox_model = PyTorchModel(model.model, (self.lb, self.ub), device=device)
        if self.y_target is None:
            # MUTATION: was `criterion = Misclassification(labels)`
            criterion = TargetedMisclassification(labels)
        else:
            target = target.to(device)
            criterion = TargetedMisclassification(target)
        try:
            _, advx, _ = self.foolbox_attack(
                model=foolbox_model,
                inputs=samples,
                criterion=criterion,
                epsilons=self.epsilon,
            )
        finally:
            if model_tracker is not None:
                model_tracker.end_tracking()
                model_tracker.detach()
        # foolbox deals only with additive perturbations
        delta = advx - samples
        return advx, delta

    mp.setattr(FGSMFoolbox, "_run", _run)


def _secml_fgsm_predicted_labels(mp: pytest.MonkeyPatch) -> None:
    # BaseFoolboxEvasionAttack._run, set on FGSMFoolbox.
    def _run(self, model, samples, labels):  # type: ignore[no-untyped-def]
        if not isinstance(model, BasePyTorchClassifier):
            msg = "Model type not supported."
            raise NotImplementedError(msg)
        target = None
        if self.y_target is not None:
            target = (torch.zeros_like(labels) + self.y_target).type(labels.dtype)
        tracking_labels = labels if target is None else target
        # Wrap model with ModelTracker if trackers are set
        model_tracker = None
        if self._trackers:
            model_tracker = ModelTracker(model, trackers=self._trackers)
            model_tracker.init_tracking(x_orig=samples, y=tracking_labels)
            model = model_tracker
        device = model._get_device()
        samples = samples.to(device)
        labels = labels.to(device)
        foolbox_model = PyTorchModel(model.model, (self.lb, self.ub), device=device)
        if self.y_target is None:
            # MUTATION: was `criterion = Misclassification(labels)`
            criterion = Misclassification(model.predict(samples))
        else:
            target = target.to(device)
            criterion = TargetedMisclassification(target)
        try:
            _, advx, _ = self.foolbox_attack(
                model=foolbox_model,
                inputs=samples,
                criterion=criterion,
                epsilons=self.epsilon,
            )
        finally:
            if model_tracker is not None:
                model_tracker.end_tracking()
                model_tracker.detach()
        # foolbox deals only with additive perturbations
        delta = advx - samples
        return advx, delta

    mp.setattr(FGSMFoolbox, "_run", _run)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "secml-torch-pgd-half-step",
        "secml-torch",
        "pgd",
        "step size",
        "secml-torch's native PGD hands its modular attack half the step size (its SGD learning rate).",
        _secml_pgd_half_step,
    ),
    Mutant(
        "secml-torch-pgd-one-step-fewer",
        "secml-torch",
        "pgd",
        "step count",
        "secml-torch's native PGD runs num_steps-1 iterations.",
        _secml_pgd_one_step_fewer,
    ),
    Mutant(
        "secml-torch-pgd-no-projection",
        "secml-torch",
        "pgd",
        "projection",
        "secml-torch's LInfConstraint does not clamp to the eps-ball (its random start neither); the guard rejects the output (AttackOutputError, eps-ball).",
        _secml_pgd_no_projection,
    ),
    Mutant(
        "secml-torch-fgsm-sign-reversed",
        "secml-torch",
        "fgsm",
        "sign",
        "secml-torch's Foolbox wrapper builds a targeted criterion on the true labels for an untargeted FGSM, so it steps against the gradient.",
        _secml_fgsm_sign_reversed,
    ),
    Mutant(
        "secml-torch-fgsm-predicted-labels",
        "secml-torch",
        "fgsm",
        "labels",
        "secml-torch's Foolbox wrapper attacks the model's predicted labels instead of the true labels it is given.",
        _secml_fgsm_predicted_labels,
    ),
)
