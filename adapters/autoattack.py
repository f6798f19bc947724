"""The original AutoAttack code (Croce & Hein; ``pyautoattack`` on PyPI): its APGD, ``APGDAttack``.

``autopgd_base.py`` of pyautoattack 0.2.0 is what ``attacks/apgd.py`` is written from, in its
arithmetic order, so the cross-check holds the original to the reference bit for bit — the check that
the reference is right, run on the user's model, beside the check of every other library's APGD.

What its source does, declared here (``APGDAttack.perturb`` and ``attack_single_run``):

* it attacks only the samples the model classifies correctly at x (one forward on the whole batch
  first) and returns x for the others; each restart attacks only the samples no earlier one fooled,
  as one batch, and a sample keeps its first success; where every sample is fooled, the remaining
  restarts draw nothing. So its passes depend on the run: they are counted on the expectation,
  which is computed in the same batches (:attr:`~.declaration.Offer.passes_follow_expectation`);
* its start, per restart, is ``2 · torch.rand(x_to_fool.shape) − 1`` (L∞) or ``torch.randn`` (L2)
  scaled to norm eps, from torch's global generator, which ``perturb`` reseeds with
  ``torch.random.manual_seed(self.seed)`` (and the CUDA one with ``torch.cuda.random.manual_seed``):
  it resets the caller's global RNG. The call runs inside ``rng.seeded_global_rngs``, which restores
  it; the expectation draws the same numbers from a generator of its own
  (:class:`~.attacks.apgd.SubsetDraws`);
* APGD-T (``APGDAttack_targeted``) runs the same loop once per target class, each of the samples
  still to fool targeting its r-th logit at x (a forward on them first), from starts drawn on
  from the same generator;
* the loss is summed over the batch (``loss_indiv.sum()``); it casts x to float32 (``.float()``) and
  never touches the model's train/eval mode.
"""

from __future__ import annotations

from typing import Any

import torch
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
from torch import nn

from .attacks import apgd
from .base import GuardedAdapter
from .declaration import Declaration, Offer
from .rng import seeded_global_rngs
from .spec import AttackSpec


def make_apgd(model: nn.Module, spec: AttackSpec, device: torch.device) -> APGDAttack:
    """The original's APGD (APGD-T where ``spec.targets`` is set) for ``spec``, every argument set
    (the adapter's and the bench's)."""
    common: dict[str, Any] = dict(
        n_iter=spec.steps,
        norm=apgd.ORIGINAL_NORMS[spec.norm],
        n_restarts=spec.restarts,
        eps=spec.eps,
        seed=spec.seed,
        eot_iter=1,
        rho=spec.rho,
        topk=None,
        verbose=False,
        device=device,
        use_largereps=False,
        is_tf_model=False,
        logger=None,
    )
    if spec.targets is not None:
        return APGDAttack_targeted(model, n_target_classes=spec.targets, **common)
    return APGDAttack(model, loss=spec.loss, **common)


def _apgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    attack = make_apgd(model, spec, x.device)
    with seeded_global_rngs(spec.seed, x.device):  # perturb reseeds the global RNG: restore it after
        # APGDAttack_targeted.perturb has no best_loss; APGDAttack's is set to its default, False.
        best_loss = {} if spec.targets is not None else {"best_loss": False}
        x_adv: torch.Tensor = attack.perturb(x, y, **best_loss)
    return x_adv.detach().to(dtype=x.dtype)


def _start(x: torch.Tensor, spec: AttackSpec) -> apgd.SubsetDraws:
    return apgd.SubsetDraws(spec.seed)


ADAPTER = GuardedAdapter(
    name="autoattack",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "apgd": Offer(
                call=_apgd,
                loss_reduction="sum",
                norms=("linf", "l2"),
                variants=("restarts", "targets"),
                start=_start,
                passes_follow_expectation=True,
            )
        }
    ),
)
