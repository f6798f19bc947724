"""adv-lib (Jérôme Rony's adversarial-library): ``pgd_linf`` and ``apgd``.

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

APGD (``adv_lib/attacks/auto_pgd.py``, ``apgd`` and ``_apgd``, "adapted" from the original): the same
step size, checkpoint schedule, momentum and CE loss, in its own rounding (the start as
``t * (eps / ‖t‖)`` with ε a float32 tensor, the momentum step as ``lerp_``), but another algorithm
where it decides when to halve the step, what it attacks and what it returns:

* ``loss_best_last_check = loss_best`` (no clone; ``loss_best[ind] = loss_indiv[ind]`` then writes
  through both names), so from the second checkpoint on ``loss_best_last_check >= loss_best`` holds
  for every sample, and a sample whose step was not halved at one checkpoint is halved at the next
  whatever its loss did — measured on a small CNN at 10 steps: 4.9 halvings per sample against the
  original rule's 3.2;
* ``reduced_last_check = torch.zeros_like(loss_best, dtype=torch.bool)`` (the original starts from
  ones): at the first checkpoint a sample whose best loss has not risen since the start is halved too;
* no clean forward: it attacks the samples already misclassified at x and returns them perturbed
  (the original returns x for them), and ``x_best_adv = inputs.clone()``: a sample misclassified only at
  its start comes back as x, yet counts as found;
* DLR's denominator has ``+ 1e-8`` (``adv_lib/utils/losses.py``), the original's ``+ 1e-12``.

It never seeds torch's global RNG (it draws one ``rand_like``/``randn_like`` of the samples still to
attack per restart, the first of the whole batch): the call is seeded inside ``seeded_global_rngs``,
and :func:`_apgd_start` draws the same start. With restarts, or targeted (``apgd_targeted``), which
samples a later run attacks follows adv-lib's own "found" (the rules above), so the passes it must
spend cannot be read off the definition's run: one untargeted restart is offered. Every argument is
set; ``loss_function`` above all, whose default is ``'dlr'`` where the original's is CE.
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
    from adv_lib.attacks import auto_pgd as adv_apgd
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


def _apgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):  # apgd draws its start from the global RNG, unseeded
        x_adv: torch.Tensor = adv_apgd.apgd(
            model,
            x,
            y,
            spec.eps,
            norm=_ADV_LIB_NORMS[spec.norm],
            targeted=False,
            n_iter=spec.steps,
            n_restarts=spec.restarts,
            loss_function=spec.loss,
            eot_iter=1,
            rho=spec.rho,
            use_large_reps=False,
            use_rs=True,
            best_loss=False,
        )
    return x_adv


_ADV_LIB_NORMS = {"linf": float("inf"), "l2": 2.0}


def _apgd_start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # _apgd: t = 2 * torch.rand_like(inputs) - 1 (L∞) or torch.randn_like(inputs) (L2), then
    # inputs + t * batch_view(eps / t.flatten(1).norm(p=..., dim=1)), ε a float32 tensor per sample.
    eps = torch.full((x.shape[0],), spec.eps, dtype=torch.float, device=x.device)
    with seeded_global_rngs(spec.seed, x.device):
        t = 2 * torch.rand_like(x) - 1 if spec.norm == "linf" else torch.randn_like(x)
    norm = t.flatten(1).norm(p=_ADV_LIB_NORMS[spec.norm], dim=1)
    return x + t * (eps / norm).view(-1, *[1] * (x.ndim - 1))


def _apgd_passes(spec: AttackSpec) -> tuple[float, float]:
    # No clean forward: a forward and backward at the start and at each iteration, on every sample.
    return (float(spec.steps + 1), float(spec.steps + 1))


def _apgd_refuses(spec: AttackSpec) -> str:
    if spec.restarts > 1 or spec.targets is not None:
        return (
            "offers APGD with one untargeted restart only: its later runs attack the samples its own rule "
            "counts as not found (its departure), so the passes they spend cannot be declared"
        )
    return ""


# adv-lib has no FGSM (and its one-step PGD returns the input): it offers PGD and APGD.
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
            ),
            "apgd": Offer(
                call=_apgd,
                loss_reduction="sum",
                norms=("linf", "l2"),
                variants=("restarts", "targets"),
                passes=_apgd_passes,
                start=_apgd_start,
                refuses=_apgd_refuses,
                departure="adv-lib's apgd halves the step by another rule: `loss_best_last_check = loss_best` "
                "(auto_pgd.py, no clone, while `loss_best[ind] = loss_indiv[ind]` writes in place) makes every "
                "sample not halved at one checkpoint halved at the next, and `reduced_last_check` starts at zeros "
                "(the original's at ones); it also attacks and perturbs the samples misclassified at x, which the "
                "original returns as x, and its DLR adds 1e-8 where the original adds 1e-12",
            ),
        }
    ),
)
