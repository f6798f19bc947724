# ruff: noqa: SIM102, UP032  (copied library code keeps its own nested ifs and str.format)
"""Planted bugs in CleverHans's torch attacks, for the mutation suite (merged into ``mutants.MUTANTS``).

Same rules as ``mutants.py``: each function body is copied from the installed CleverHans 4.0.0
(``cleverhans/torch/attacks/fast_gradient_method.py``, ``projected_gradient_descent.py``,
``cleverhans/torch/utils.py``) with exactly one plausible change, marked by a ``# MUTATION:`` comment
above it that quotes the original line; the only other edits are mechanical (docstrings dropped, the
project's formatting, ``noqa`` for lint rules the library's own style breaks). Each is patched where the
library looks it up at call time:

* ``fast_gradient_method`` on its own module, which is what the adapter calls for FGSM. PGD calls the
  name its module imported, the unpatched function, so an FGSM mutant leaves PGD alone.
* ``projected_gradient_descent`` on its own module (the adapter's PGD).
* ``optimize_linear`` on the FGM module and ``clip_eta`` on the PGD module, the names those functions
  look up: a mutant there is planted in the L2 branch, so it reaches the L2 variants only (the FGM
  step inside PGD-L2 too; the suite judges it on its own variant).

CleverHans's ``optimize_linear`` asserts that its L2 direction has unit norm, so an L2 normalisation
bug that breaks that raises inside the library; the L2 mutants are bugs its asserts let through.

Import this file through ``mutants`` (``from mutants import MUTANTS``): it takes ``Mutant`` from there,
and ``mutants`` imports it at its end.
"""

from __future__ import annotations

import cleverhans.torch.attacks.fast_gradient_method as fgm_module
import cleverhans.torch.attacks.projected_gradient_descent as pgd_module
import numpy as np
import pytest
import torch
from cleverhans.torch.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.torch.utils import clip_eta, optimize_linear
from mutants import Mutant

# The release the function bodies below were copied from (distribution name -> version).
COPIED_FROM: dict[str, str] = {"cleverhans": "4.0.0"}


# =================================================================================================
# fast_gradient_method and optimize_linear (cleverhans/torch/attacks/fast_gradient_method.py, utils.py)
# =================================================================================================


def _cleverhans_fgsm_sign_reversed(mp: pytest.MonkeyPatch) -> None:
    def fast_gradient_method(  # type: ignore[no-untyped-def]
        model_fn,
        x,
        eps,
        norm,
        clip_min=None,
        clip_max=None,
        y=None,
        targeted=False,
        sanity_checks=False,
    ):
        if norm not in [np.inf, 1, 2]:
            raise ValueError("Norm order must be either np.inf, 1, or 2, got {} instead.".format(norm))
        if eps < 0:
            raise ValueError("eps must be greater than or equal to 0, got {} instead".format(eps))
        if eps == 0:
            return x
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

        # x needs to be a leaf variable, of floating point type and have requires_grad being True for
        # its grad to be computed and stored properly in a backward call
        x = x.clone().detach().to(torch.float).requires_grad_(True)
        if y is None:
            # Using model predictions as ground truth to avoid label leaking
            _, y = torch.max(model_fn(x), 1)

        # Compute loss
        loss_fn = torch.nn.CrossEntropyLoss()
        loss = loss_fn(model_fn(x), y)
        # If attack is targeted, minimize loss of target label rather than maximize loss of correct label
        # MUTATION: was `if targeted:`
        if not targeted:
            loss = -loss

        # Define gradient of loss wrt input
        loss.backward()
        optimal_perturbation = optimize_linear(x.grad, eps, norm)

        # Add perturbation to original example to obtain adversarial example
        adv_x = x + optimal_perturbation

        # If clipping is needed, reset all values outside of [clip_min, clip_max]
        if (clip_min is not None) or (clip_max is not None):
            if clip_min is None or clip_max is None:
                raise ValueError(
                    "One of clip_min and clip_max is None but we don't currently support one-sided clipping"
                )
            adv_x = torch.clamp(adv_x, clip_min, clip_max)

        if sanity_checks:
            assert np.all(asserts)
        return adv_x

    mp.setattr(fgm_module, "fast_gradient_method", fast_gradient_method)


def _cleverhans_fgsm_predicted_labels(mp: pytest.MonkeyPatch) -> None:
    def fast_gradient_method(  # type: ignore[no-untyped-def]
        model_fn,
        x,
        eps,
        norm,
        clip_min=None,
        clip_max=None,
        y=None,
        targeted=False,
        sanity_checks=False,
    ):
        if norm not in [np.inf, 1, 2]:
            raise ValueError("Norm order must be either np.inf, 1, or 2, got {} instead.".format(norm))
        if eps < 0:
            raise ValueError("eps must be greater than or equal to 0, got {} instead".format(eps))
        if eps == 0:
            return x
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

        # x needs to be a leaf variable, of floating point type and have requires_grad being True for
        # its grad to be computed and stored properly in a backward call
        x = x.clone().detach().to(torch.float).requires_grad_(True)
        # MUTATION: was `if y is None:`
        if True:
            # Using model predictions as ground truth to avoid label leaking
            _, y = torch.max(model_fn(x), 1)

        # Compute loss
        loss_fn = torch.nn.CrossEntropyLoss()
        loss = loss_fn(model_fn(x), y)
        # If attack is targeted, minimize loss of target label rather than maximize loss of correct label
        if targeted:
            loss = -loss

        # Define gradient of loss wrt input
        loss.backward()
        optimal_perturbation = optimize_linear(x.grad, eps, norm)

        # Add perturbation to original example to obtain adversarial example
        adv_x = x + optimal_perturbation

        # If clipping is needed, reset all values outside of [clip_min, clip_max]
        if (clip_min is not None) or (clip_max is not None):
            if clip_min is None or clip_max is None:
                raise ValueError(
                    "One of clip_min and clip_max is None but we don't currently support one-sided clipping"
                )
            adv_x = torch.clamp(adv_x, clip_min, clip_max)

        if sanity_checks:
            assert np.all(asserts)
        return adv_x

    mp.setattr(fgm_module, "fast_gradient_method", fast_gradient_method)


def _cleverhans_fgsm_no_clip(mp: pytest.MonkeyPatch) -> None:
    def fast_gradient_method(  # type: ignore[no-untyped-def]
        model_fn,
        x,
        eps,
        norm,
        clip_min=None,
        clip_max=None,
        y=None,
        targeted=False,
        sanity_checks=False,
    ):
        if norm not in [np.inf, 1, 2]:
            raise ValueError("Norm order must be either np.inf, 1, or 2, got {} instead.".format(norm))
        if eps < 0:
            raise ValueError("eps must be greater than or equal to 0, got {} instead".format(eps))
        if eps == 0:
            return x
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

        # x needs to be a leaf variable, of floating point type and have requires_grad being True for
        # its grad to be computed and stored properly in a backward call
        x = x.clone().detach().to(torch.float).requires_grad_(True)
        if y is None:
            # Using model predictions as ground truth to avoid label leaking
            _, y = torch.max(model_fn(x), 1)

        # Compute loss
        loss_fn = torch.nn.CrossEntropyLoss()
        loss = loss_fn(model_fn(x), y)
        # If attack is targeted, minimize loss of target label rather than maximize loss of correct label
        if targeted:
            loss = -loss

        # Define gradient of loss wrt input
        loss.backward()
        optimal_perturbation = optimize_linear(x.grad, eps, norm)

        # Add perturbation to original example to obtain adversarial example
        adv_x = x + optimal_perturbation

        # If clipping is needed, reset all values outside of [clip_min, clip_max]
        if (clip_min is not None) or (clip_max is not None):
            if clip_min is None or clip_max is None:
                raise ValueError(
                    "One of clip_min and clip_max is None but we don't currently support one-sided clipping"
                )
            # MUTATION: was `adv_x = torch.clamp(adv_x, clip_min, clip_max)`
            pass

        if sanity_checks:
            assert np.all(asserts)
        return adv_x

    mp.setattr(fgm_module, "fast_gradient_method", fast_gradient_method)


def _cleverhans_fgsm_l2_linf_step(mp: pytest.MonkeyPatch) -> None:
    def fast_gradient_method(  # type: ignore[no-untyped-def]
        model_fn,
        x,
        eps,
        norm,
        clip_min=None,
        clip_max=None,
        y=None,
        targeted=False,
        sanity_checks=False,
    ):
        if norm not in [np.inf, 1, 2]:
            raise ValueError("Norm order must be either np.inf, 1, or 2, got {} instead.".format(norm))
        if eps < 0:
            raise ValueError("eps must be greater than or equal to 0, got {} instead".format(eps))
        if eps == 0:
            return x
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

        # x needs to be a leaf variable, of floating point type and have requires_grad being True for
        # its grad to be computed and stored properly in a backward call
        x = x.clone().detach().to(torch.float).requires_grad_(True)
        if y is None:
            # Using model predictions as ground truth to avoid label leaking
            _, y = torch.max(model_fn(x), 1)

        # Compute loss
        loss_fn = torch.nn.CrossEntropyLoss()
        loss = loss_fn(model_fn(x), y)
        # If attack is targeted, minimize loss of target label rather than maximize loss of correct label
        if targeted:
            loss = -loss

        # Define gradient of loss wrt input
        loss.backward()
        # MUTATION: was `optimal_perturbation = optimize_linear(x.grad, eps, norm)`
        optimal_perturbation = optimize_linear(x.grad, eps, np.inf)

        # Add perturbation to original example to obtain adversarial example
        adv_x = x + optimal_perturbation

        # If clipping is needed, reset all values outside of [clip_min, clip_max]
        if (clip_min is not None) or (clip_max is not None):
            if clip_min is None or clip_max is None:
                raise ValueError(
                    "One of clip_min and clip_max is None but we don't currently support one-sided clipping"
                )
            adv_x = torch.clamp(adv_x, clip_min, clip_max)

        if sanity_checks:
            assert np.all(asserts)
        return adv_x

    mp.setattr(fgm_module, "fast_gradient_method", fast_gradient_method)


def _cleverhans_fgsm_l2_abs_gradient(mp: pytest.MonkeyPatch) -> None:
    # optimize_linear as the FGM module imported it (the FGM step of PGD-L2 too).
    def optimize_linear(grad, eps, norm=np.inf):  # type: ignore[no-untyped-def]
        red_ind = list(range(1, len(grad.size())))
        avoid_zero_div = torch.tensor(1e-12, dtype=grad.dtype, device=grad.device)
        if norm == np.inf:
            # Take sign of gradient
            optimal_perturbation = torch.sign(grad)
        elif norm == 1:
            abs_grad = torch.abs(grad)
            sign = torch.sign(grad)
            red_ind = list(range(1, len(grad.size())))
            abs_grad = torch.abs(grad)
            ori_shape = [1] * len(grad.size())
            ori_shape[0] = grad.size(0)

            max_abs_grad, _ = torch.max(abs_grad.view(grad.size(0), -1), 1)
            max_mask = abs_grad.eq(max_abs_grad.view(ori_shape)).to(torch.float)
            num_ties = max_mask
            for red_scalar in red_ind:
                num_ties = torch.sum(num_ties, red_scalar, keepdim=True)
            optimal_perturbation = sign * max_mask / num_ties
            # TODO integrate below to a test file
            # check that the optimal perturbations have been correctly computed
            opt_pert_norm = optimal_perturbation.abs().sum(dim=red_ind)
            assert torch.all(opt_pert_norm == torch.ones_like(opt_pert_norm))
        elif norm == 2:
            square = torch.max(avoid_zero_div, torch.sum(grad**2, red_ind, keepdim=True))
            # MUTATION: was `optimal_perturbation = grad / torch.sqrt(square)`
            optimal_perturbation = torch.abs(grad) / torch.sqrt(square)
            # TODO integrate below to a test file
            # check that the optimal perturbations have been correctly computed
            opt_pert_norm = optimal_perturbation.pow(2).sum(dim=red_ind, keepdim=True).sqrt()
            one_mask = (square <= avoid_zero_div).to(torch.float) * opt_pert_norm + (
                square > avoid_zero_div
            ).to(torch.float)
            assert torch.allclose(opt_pert_norm, one_mask, rtol=1e-05, atol=1e-08)
        else:
            raise NotImplementedError("Only L-inf, L1 and L2 norms are currently implemented.")

        # Scale perturbation to be the solution for the norm=eps rather than
        # norm=1 problem
        scaled_perturbation = eps * optimal_perturbation
        return scaled_perturbation

    mp.setattr(fgm_module, "optimize_linear", optimize_linear)


# =================================================================================================
# projected_gradient_descent and clip_eta (cleverhans/torch/attacks/projected_gradient_descent.py, utils.py)
# =================================================================================================


def _cleverhans_pgd_half_step(mp: pytest.MonkeyPatch) -> None:
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
                # MUTATION: was `eps_iter,` (the step size handed to fast_gradient_method)
                eps_iter / 2,
                norm,
                clip_min=clip_min,
                clip_max=clip_max,
                y=y,
                targeted=targeted,
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


def _cleverhans_pgd_one_step_fewer(mp: pytest.MonkeyPatch) -> None:
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
        # MUTATION: was `while i < nb_iter:`
        while i < nb_iter - 1:
            adv_x = fast_gradient_method(
                model_fn,
                adv_x,
                eps_iter,
                norm,
                clip_min=clip_min,
                clip_max=clip_max,
                y=y,
                targeted=targeted,
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


def _cleverhans_pgd_one_sided_start(mp: pytest.MonkeyPatch) -> None:
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
            # MUTATION: was `eta = torch.zeros_like(x).uniform_(-rand_minmax, rand_minmax)`
            eta = torch.zeros_like(x).uniform_(0, rand_minmax)
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
                targeted=targeted,
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


def _cleverhans_pgd_no_projection(mp: pytest.MonkeyPatch) -> None:
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
                targeted=targeted,
            )

            # Clipping perturbation eta to norm norm ball
            eta = adv_x - x
            # MUTATION: was `eta = clip_eta(eta, norm, eps)`
            pass
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


def _cleverhans_pgd_l2_batch_norm(mp: pytest.MonkeyPatch) -> None:
    # clip_eta as the PGD module imported it: its start and every step's projection.
    def clip_eta(eta, norm, eps):  # type: ignore[no-untyped-def]
        if norm not in [np.inf, 1, 2]:
            raise ValueError("norm must be np.inf, 1, or 2.")

        avoid_zero_div = torch.tensor(1e-12, dtype=eta.dtype, device=eta.device)
        # MUTATION: was `reduc_ind = list(range(1, len(eta.size())))`
        reduc_ind = list(range(len(eta.size())))
        if norm == np.inf:
            eta = torch.clamp(eta, -eps, eps)
        else:
            if norm == 1:
                raise NotImplementedError("L1 clip is not implemented.")
                norm = torch.max(avoid_zero_div, torch.sum(torch.abs(eta), dim=reduc_ind, keepdim=True))
            elif norm == 2:
                norm = torch.sqrt(torch.max(avoid_zero_div, torch.sum(eta**2, dim=reduc_ind, keepdim=True)))
            factor = torch.min(torch.tensor(1.0, dtype=eta.dtype, device=eta.device), eps / norm)
            eta *= factor
        return eta

    mp.setattr(pgd_module, "clip_eta", clip_eta)


def _cleverhans_pgd_l2_no_sqrt(mp: pytest.MonkeyPatch) -> None:
    # clip_eta as the PGD module imported it: its start and every step's projection.
    def clip_eta(eta, norm, eps):  # type: ignore[no-untyped-def]
        if norm not in [np.inf, 1, 2]:
            raise ValueError("norm must be np.inf, 1, or 2.")

        avoid_zero_div = torch.tensor(1e-12, dtype=eta.dtype, device=eta.device)
        reduc_ind = list(range(1, len(eta.size())))
        if norm == np.inf:
            eta = torch.clamp(eta, -eps, eps)
        else:
            if norm == 1:
                raise NotImplementedError("L1 clip is not implemented.")
                norm = torch.max(avoid_zero_div, torch.sum(torch.abs(eta), dim=reduc_ind, keepdim=True))
            elif norm == 2:
                # MUTATION: was `norm = torch.sqrt(torch.max(avoid_zero_div, torch.sum(eta ** 2, dim=reduc_ind, keepdim=True)))`
                norm = torch.max(avoid_zero_div, torch.sum(eta**2, dim=reduc_ind, keepdim=True))
            factor = torch.min(torch.tensor(1.0, dtype=eta.dtype, device=eta.device), eps / norm)
            eta *= factor
        return eta

    mp.setattr(pgd_module, "clip_eta", clip_eta)


MUTANTS: tuple[Mutant, ...] = (
    # --- FGSM (L∞) ---
    Mutant(
        "cleverhans-fgsm-sign-reversed",
        "cleverhans",
        "fgsm",
        "sign",
        "CleverHans fast_gradient_method negates the loss when untargeted (`if not targeted`), so it steps against the gradient.",
        _cleverhans_fgsm_sign_reversed,
    ),
    Mutant(
        "cleverhans-fgsm-predicted-labels",
        "cleverhans",
        "fgsm",
        "labels",
        "CleverHans fast_gradient_method replaces the labels it is given with the model's predictions, as it does for y=None (one forward more).",
        _cleverhans_fgsm_predicted_labels,
    ),
    Mutant(
        "cleverhans-fgsm-no-clip",
        "cleverhans",
        "fgsm",
        "clipping",
        "CleverHans fast_gradient_method does not clamp to [clip_min, clip_max]; the guard rejects the output (AttackOutputError, [0, 1] box).",
        _cleverhans_fgsm_no_clip,
    ),
    # --- FGM-L2 ---
    Mutant(
        "cleverhans-fgsm-l2-linf-step",
        "cleverhans",
        "fgsm",
        "normalisation",
        "CleverHans fast_gradient_method hands optimize_linear np.inf whatever the norm: its L2 step is eps·sign(∇), far outside the L2 ball; the guard rejects the output (AttackOutputError, eps-ball).",
        _cleverhans_fgsm_l2_linf_step,
        norm="l2",
    ),
    Mutant(
        "cleverhans-fgsm-l2-abs-gradient",
        "cleverhans",
        "fgsm",
        "sign",
        "CleverHans optimize_linear (L2) normalises |∇| instead of ∇: a unit step that passes its own norm check but brightens every pixel.",
        _cleverhans_fgsm_l2_abs_gradient,
        norm="l2",
    ),
    # --- PGD (L∞) ---
    Mutant(
        "cleverhans-pgd-half-step",
        "cleverhans",
        "pgd",
        "step size",
        "CleverHans projected_gradient_descent hands fast_gradient_method half its eps_iter.",
        _cleverhans_pgd_half_step,
    ),
    Mutant(
        "cleverhans-pgd-one-step-fewer",
        "cleverhans",
        "pgd",
        "step count",
        "CleverHans projected_gradient_descent runs nb_iter-1 iterations.",
        _cleverhans_pgd_one_step_fewer,
    ),
    Mutant(
        "cleverhans-pgd-one-sided-start",
        "cleverhans",
        "pgd",
        "one-sided start",
        "CleverHans projected_gradient_descent draws its random start from U(0, rand_minmax) instead of U(-rand_minmax, rand_minmax).",
        _cleverhans_pgd_one_sided_start,
    ),
    Mutant(
        "cleverhans-pgd-no-projection",
        "cleverhans",
        "pgd",
        "projection",
        "CleverHans projected_gradient_descent never projects its iterates onto the eps-ball (only clamps to the box); the guard rejects the output (AttackOutputError, eps-ball).",
        _cleverhans_pgd_no_projection,
    ),
    # --- PGD-L2 ---
    # --- BIM (the adapter's projected_gradient_descent with rand_init=False): the PGD module's bugs
    # that a start at x and three steps of eps/4 show ---
    Mutant(
        "cleverhans-bim-half-step",
        "cleverhans",
        "bim",
        "step size",
        "CleverHans projected_gradient_descent passes eps_iter / 2 to each FGM step, so BIM steps half as far.",
        _cleverhans_pgd_half_step,
    ),
    Mutant(
        "cleverhans-bim-one-step-fewer",
        "cleverhans",
        "bim",
        "step count",
        "CleverHans projected_gradient_descent stops after nb_iter - 1 steps.",
        _cleverhans_pgd_one_step_fewer,
    ),
    Mutant(
        "cleverhans-pgd-l2-batch-norm",
        "cleverhans",
        "pgd",
        "projection",
        "CleverHans clip_eta (L2) takes one norm over the whole batch instead of one per sample, so every sample's perturbation is scaled by the same factor and lands inside its ball.",
        _cleverhans_pgd_l2_batch_norm,
        norm="l2",
    ),
    Mutant(
        "cleverhans-pgd-l2-no-sqrt",
        "cleverhans",
        "pgd",
        "normalisation",
        "CleverHans clip_eta (L2) divides eps by the squared norm of η (no square root), so its start and its projections land well inside the ball.",
        _cleverhans_pgd_l2_no_sqrt,
        norm="l2",
        where=(("random_start", True),),
    ),
)
