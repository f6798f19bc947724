"""adv-lib (Jérôme Rony's adversarial-library): ``pgd_linf``.

adv-lib has no FGSM, and the adapter offers none: a run plans no FGSM cells
for it. Its one-step form would not serve: ``pgd_linf`` with ``steps=1`` returns x unchanged (see
below). Every argument of ``pgd_linf`` is set: ``ε``,
``targeted`` (True for a targeted spec, whose targets are passed as the labels: ``step_size *= -1``
and ``is_adv = logits.argmax(1) == labels``), ``steps``, ``random_init``, ``restarts=1``, ``loss_function="ce"``,
``absolute_step_size`` (which takes precedence) and ``relative_step_size`` set to the same step so
neither is a default (``40`` steps of ``0.01/0.3·ε`` otherwise), ``callback=None``. True labels.

What ``pgd_linf`` returns is not PGD's last iterate (``adv_lib/attacks/projected_gradient_descent.py``,
``_pgd_linf``). Each of its ``steps`` iterations evaluates the model at the current point
``x_t = x + δ_t`` (t = 0 … steps-1; x_0 is the start), records ``x_t`` as the sample's answer when the
prediction is wrong, and only then takes the step to ``x_{t+1}``. So:

* the answer is, per sample, the *last misclassified* point among x_0 … x_{steps-1}, and **the clean x**
  (not the start) where none was misclassified;
* the update made in the last iteration is never evaluated nor returned: ``steps=T`` evaluates T-1
  updates, and ``steps=1`` returns x for every sample (every sample's only candidate is x_0 = x).

Measured (torch 2.14.1 CPU, adv-lib 0.2.8, the adapter tests' small BatchNorm net, 256 images):
at eps 4/255 and 3 steps without random start, 246 outputs are the clean image, accuracy 96.1 % against
the reference's 91.4 % (12 samples the reference's PGD fools come back clean); at 16/255, 3 steps,
random start, 57.0 % against 27.0 %. At 10 steps the accuracies meet (4/255: 85.9 % both), as some
earlier iterate stands in for the last one. The iterates are kept as δ, clamped to
``[max(-x, -ε), min(1-x, ε)]``, and x + δ is rounded once: the same points as the reference's
``x + clip(x_t + α·sign - x)`` then ``clip(0, 1)`` up to float32 round-off, not bit for bit (on a model
wrong everywhere: up to 1.19e-7 apart after 10 updates, 6e-8 after 1 to 3; one step of eps from x
agrees bit for bit).

No :class:`~adapters.declaration.Declaration` describes that output, and none should: returning an earlier
iterate, or the clean image, is a different attack from PGD's, with different robustness numbers. The
declaration states what adv-lib does on the parts it can — the loss reduction, the passes, the random
start — so the harness builds PGD's exact x_adv from adv-lib's own start, and its PGD cells are judged
to disagree, with this departure quoted in the reason (its offer's ``departure``).

Loss: ``F.cross_entropy(..., reduction="none")`` summed over the batch (``loss.sum()``), like the
reference; its input gradient is bit-identical to ``reduction="sum"``'s. Passes: ``steps`` forwards and
``steps`` backwards per sample; no extra prediction.

Seeding: the random start is ``δ.data.uniform_(-1, 1).mul_(ε)`` on torch's global RNG, with ε a
float32 tensor of one value per sample, then ``clamp_(δ, lower, upper)`` with
``lower = max(-x, -ε)``, ``upper = min(1 - x, ε)``, and the start is ``x + δ``
(``adv_lib/attacks/projected_gradient_descent.py``, ``adv_lib/utils/projections.py``). We seed it with
``spec.seed`` inside ``torch.random.fork_rng`` so the caller's RNG state is restored; :func:`_start`
makes the same draw. Measured on CPU: the same points, bit for bit, as the reference's own start for
the same seed (``uniform_(-1, 1)·ε`` and ``uniform_(-ε, ε)`` draw identical float32 noise here).

Import: adv-lib's ``adv_lib.utils.projections`` compares torch versions with
``distutils.version.LooseVersion``, which needs Python <= 3.11 or setuptools' distutils shim and warns
(DeprecationWarning) at import; every attack module imports ``visdom`` (for an optional plotting
callback), so visdom must be installed even though no attack here uses it.

Install: visdom ships only a source package whose setup.py imports ``pkg_resources``, which setuptools
dropped in 82.0.0, so pip's isolated build (newest setuptools) fails. After torch (which pulls in the
newest setuptools), in the environment's own setuptools and without isolation::

    python -m pip install "setuptools>=70.1,<82"   # keeps pkg_resources; >=70.1 builds wheels itself
    python -m pip install --no-build-isolation visdom==0.2.4
    python -m pip install adv-lib==0.2.8            # visdom is then already satisfied

adv-lib 0.2.2 (the oldest release on PyPI; the same ``pgd_linf``) passes the same tests.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .base import GuardedAdapter
from .declaration import Declaration, Offer
from .rng import seeded_global_rngs
from .spec import AttackSpec

with warnings.catch_warnings():
    # adv_lib.utils.projections: "distutils Version classes are deprecated"; nothing we can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*distutils.*")
    # Looked up as a module attribute at call time, so that a patched pgd_linf/_pgd_linf is the one used.
    from adv_lib.attacks import projected_gradient_descent as adv_pgd


def _pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    steps, step_size, random_init = spec.steps, spec.step_size, spec.random_start
    with seeded_global_rngs(spec.seed, x.device):
        x_adv: torch.Tensor = adv_pgd.pgd_linf(
            model,
            x,
            y,
            spec.eps,
            # y holds the harness's targets for a targeted spec: pgd_linf then negates the step and
            # counts a sample as adversarial when it is predicted as its target.
            targeted=spec.targeted is not None,
            steps=steps,
            random_init=random_init,
            restarts=1,
            loss_function="ce",
            relative_step_size=step_size / spec.eps,
            absolute_step_size=step_size,
            callback=None,
        )
    return x_adv


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # ε as pgd_linf holds it: a float32 tensor, one value per sample, viewed to broadcast over C, H, W.
    eps = torch.full((x.shape[0],), spec.eps, dtype=x.dtype, device=x.device).view(-1, *[1] * (x.ndim - 1))
    with seeded_global_rngs(spec.seed, x.device):
        delta = torch.zeros_like(x).uniform_(-1, 1).mul_(eps)
    delta = torch.clamp(delta, min=torch.maximum(-x, -eps), max=torch.minimum(1 - x, eps))
    return x + delta


# adv-lib has no FGSM (and its one-step PGD returns the input): it offers PGD alone.
ADAPTER = GuardedAdapter(
    name="adv-lib",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "pgd": Offer(
                call=_pgd,
                loss_reduction="sum",
                start=_start,
                variants=("targeted",),
                departure="adv-lib's pgd_linf returns, per sample, the last misclassified iterate among x_0 … "
                "x_{T-1} (the T-th step is computed and discarded), and the clean image where none was misclassified "
                "(targeted: the last iterate predicted as the target)",
            )
        }
    ),
)
