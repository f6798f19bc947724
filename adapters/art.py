"""ART (adversarial-robustness-toolbox): ``FastGradientMethod`` and ``ProjectedGradientDescent`` (L∞ and
L2), ``BasicIterativeMethod``, MI-FGSM as ``ProjectedGradientDescent(decay=...)``, and APGD as
``AutoProjectedGradientDescent``.

Every argument is set, none left to ART's defaults (``max_iter=100``, ``eps_step=0.1``, no random
init, ``batch_size=32``, progress bars, and ``device_type="gpu"`` picking the current CUDA device).
True labels are always passed: with ``y=None`` ART silently attacks the model's *predicted* labels.
ART accepts index labels ``[N]`` and one-hot encodes them itself (``check_and_transform_label_format``).

Loss: ``CrossEntropyLoss(reduction="mean")``, what ART users (and the paper) write; the reference sums
(see reference.py for why that only matters in round-off).

What ART really spends: FGSM 1 forward + 1 backward per sample; PGD ``steps`` of each plus 2 forwards
(it predicts the clean and the adversarial batch to log a success rate, whatever the log level).

Seeding: ART draws the PGD random start from NumPy's global RNG, once per ART batch (we pass the whole
batch as one): ``random_sphere`` → ``np.random.uniform(-eps, eps, (n, C·H·W))`` in float64, reshaped
and cast to float32, added to x and clipped to ``clip_values``
(``art/attacks/evasion/projected_gradient_descent/projected_gradient_descent_pytorch.py``,
``art/utils.py``); ``torch.manual_seed`` does not fix it. We seed ``np.random`` with ``spec.seed`` and
restore its state afterwards; :func:`_start` makes the same draw, which is how the harness knows the
exact x_adv ART must return.

L2: ART clips each step to the box *before* projecting it into the ball (``_apply_perturbation`` then
``projection``; torchattacks and Foolbox project first), which in L2 gives another point. The PGD
start is ``random_sphere(n, d, eps, 2)``: uniform in the ball, ``randn`` in float64 scaled by
``gammainc(d/2, s/2) ** (1/d) · eps / sqrt(s)``. The arithmetic differs by attack
(:data:`_FGM_L2`, :data:`_PGD_L2`):

* ``FastGradientMethod`` (``fast_gradient.py``) computes in NumPy: the direction is
  ``(|g| / ‖g‖₂) ** 1.0 · sign(g)`` with ``np.linalg.norm`` in float32 and no constant (a zero
  gradient gives 0); the projection ``art.utils.projection`` rescales by ``min(1, eps / ‖delta‖₂)``
  in float64 (eps broadcast as a float64 array), and its one step is projected too.
* ``ProjectedGradientDescentPyTorch`` computes in torch: the direction is
  ``(|g| · (1 / ‖g‖₂)) ** 1.0 · sign(g)`` (a reciprocal multiply); ``_projection`` rescales in
  float64 likewise (in float32 in ART 1.18.0, whose ``torch.Tensor(eps)`` casts).

FGSM from a random start is ``FastGradientMethod(num_random_init=1)``: ``random_sphere`` as above,
then one step of eps itself (``generate`` passes ``self.eps`` as the step; ``eps_step`` is read only
with ``minimal=True``), so a spec with another alpha is refused. ``BasicIterativeMethod`` is
``ProjectedGradientDescent`` with ``norm=np.inf, num_random_init=0``. MI-FGSM is
``ProjectedGradientDescent(decay=...)``: ``_compute_perturbation_pytorch`` multiplies the gradient by
``1 / ‖g‖₁`` (0 for a zero gradient), ``momentum *= decay; momentum += normalized_grad`` and steps by
its sign: the paper's update, with a reciprocal multiply where it divides (no step's sign has differed
in the adapter tests, so no arithmetic is declared).

``AutoProjectedGradientDescent`` (``auto_projected_gradient_descent.py``, ``generate``) is ART's own
APGD, not a port: it has the original's momentum (α = 0.75), attacks only the samples classified
correctly at x and keeps each sample's first success, but it decides, steps and returns otherwise:

* checkpoints at ``var_w = [math.ceil(p * self.max_iter) for p in var_w]`` with the paper's recursion
  in floating point (10 iterations: at 3, 5, 6, 8, 9; the original checks after every one from the
  second), tested one iteration later;
* the halving test counts the iterations whose loss beat the running best (``f_k_p_1 > self.f_max``)
  and halves where that count is ``<`` ρ·interval (the original: rises over the previous iterate,
  ``<=``), and its "η and best loss unchanged" test already applies at the first checkpoint;
* going back to the best point also resets the momentum's previous point to that point's predecessor
  (``x_k_m_1[condition] = x_max_m_1_tmp``);
* it returns the last iterate where that is misclassified, else the sample's random start
  (``x_robust`` keeps it), where the original returns the last misclassified iterate, else x;
* the loss is ART's ``CrossEntropyLossTorch`` or its DLR (no ``+ 1e-12``), averaged over the batch,
  evaluated in a forward of its own besides each gradient's: per attacked sample 2·T + 2 forwards and
  T backwards (no gradient at the last iterate), after one clean prediction of the whole batch and
  one of a single row when it is built (:func:`_apgd_passes_on_run`).

Its start (``random_sphere``, uniform in the L∞ box or the L2 ball, from NumPy's global RNG, for the
samples still to attack, clipped and projected) is reproduced per subset (:func:`_apgd_draw`). Its
later restarts attack the samples still correct at their previous start, from that start plus new
noise, and its targeted mode takes the caller's targets: one untargeted restart is offered, at the ρ it
fixes (``rho = 0.75`` inside ``generate``; another is refused).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from art.attacks import EvasionAttack
from art.attacks.evasion import (
    AutoProjectedGradientDescent,
    BasicIterativeMethod,
    FastGradientMethod,
    ProjectedGradientDescent,
)
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import (
    ProjectedGradientDescentPyTorch,
)
from art.estimators.classification import PyTorchClassifier
from art.utils import projection
from scipy.special import gammainc
from torch import nn

from .attacks import apgd, restarts
from .attacks.geometry import Geometry
from .attacks.norms import Norm
from .base import GuardedAdapter
from .declaration import AttackFn, Declaration, Offer, textbook_passes
from .rng import seeded_global_rngs
from .spec import AttackSpec

_NORMS = {"linf": np.inf, "l2": 2}


def _rows(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().reshape(t.shape[0], -1)


def _fgm_l2_direction(grad: torch.Tensor) -> torch.Tensor:
    g = _rows(grad)
    q_norm = np.linalg.norm(g, ord=2, axis=1, keepdims=True)
    unit = (np.abs(g) / np.where(q_norm, q_norm, np.inf)) ** 1.0 * np.sign(g)
    return torch.from_numpy(unit.reshape(grad.shape)).to(grad.device)


def _fgm_l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    v = _rows(delta)
    eps_rows = np.broadcast_to(eps, delta.shape).reshape(delta.shape[0], -1)
    norms = np.linalg.norm(v, ord=2, axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        scaled = v * np.where(norms, np.minimum(1, eps_rows / norms), 0)
    return torch.from_numpy(scaled.reshape(delta.shape).astype(np.float32)).to(delta.device)


def _pgd_l2_direction(grad: torch.Tensor) -> torch.Tensor:
    g = grad.reshape(len(grad), -1)
    q_norm = torch.linalg.norm(g, ord=2, dim=1, keepdim=True)
    unit = (g.abs() * q_norm.where(q_norm == 0, 1 / q_norm)) ** 1.0
    return unit.reshape(grad.shape) * grad.sign()


# ProjectedGradientDescentPyTorch._projection holds eps as ``torch.tensor(eps)`` (float64, the NumPy
# array's dtype) in ART 1.20.1, as ``torch.Tensor(eps)`` (float32) in 1.18.0: read from the installed source.
_PROJECTS_IN_FLOAT64 = "torch.tensor(eps)" in inspect.getsource(ProjectedGradientDescentPyTorch._projection)


def _pgd_l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    v = delta.reshape(len(delta), -1)
    eps_array = np.broadcast_to(eps, delta.shape).reshape(len(delta), -1)
    eps_rows = (torch.tensor(eps_array) if _PROJECTS_IN_FLOAT64 else torch.Tensor(eps_array)).to(delta.device)
    norms = torch.linalg.norm(v, ord=2, dim=1, keepdim=True)
    factor = norms.where(norms == 0, torch.minimum(torch.ones(1).to(delta.device), eps_rows / norms))
    return (v * factor).reshape(delta.shape).to(delta.dtype)


_CLIPS_FIRST = (
    "ART clips each step to [0, 1] before projecting it onto the L2 ball (the definition projects first)"
)
_FGM_L2 = Geometry(
    "l2",
    direction=_fgm_l2_direction,
    project=_fgm_l2_project,
    clip_first=True,
    projects_one_step=True,
    note=f"{_CLIPS_FIRST}; norms in NumPy, the projection in float64",
)
_PGD_L2 = Geometry(
    "l2",
    direction=_pgd_l2_direction,
    project=_pgd_l2_project,
    clip_first=True,
    note=f"{_CLIPS_FIRST}; a reciprocal-multiply normalisation, the projection in "
    + ("float64" if _PROJECTS_IN_FLOAT64 else "float32"),
)


def _classifier(model: nn.Module, x: torch.Tensor, num_classes: int) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(reduction="mean"),
        input_shape=tuple(x.shape[1:]),
        nb_classes=num_classes,
        optimizer=None,
        use_amp=False,
        channels_first=True,
        clip_values=(0.0, 1.0),
        preprocessing_defences=None,
        postprocessing_defences=None,
        preprocessing=None,  # normalisation lives inside the model
        device_type="gpu" if x.is_cuda else "cpu",
    )


def _fgsm(classifier: PyTorchClassifier, x: torch.Tensor, spec: AttackSpec) -> FastGradientMethod:
    return FastGradientMethod(
        classifier,
        norm=_NORMS[spec.norm],
        eps=spec.eps,
        eps_step=spec.eps,  # only read when minimal=True; set so nothing falls on a default
        targeted=spec.targeted is not None,  # then y holds the targets
        num_random_init=spec.restarts if spec.random_start else 0,
        batch_size=int(x.shape[0]),
        minimal=False,
        summary_writer=False,
    )


def _fgsm_refuses(spec: AttackSpec) -> str:
    if spec.random_start and spec.step_size != spec.eps:
        return "steps eps itself from its random start (FastGradientMethod.generate), not another alpha"
    return ""


def _pgd(classifier: PyTorchClassifier, x: torch.Tensor, spec: AttackSpec) -> ProjectedGradientDescent:
    return _projected_gradient_descent(
        classifier,
        x,
        spec,
        norm=_NORMS[spec.norm],
        restarts=spec.restarts if spec.random_start else 0,
        decay=None,
    )


def _mifgsm(classifier: PyTorchClassifier, x: torch.Tensor, spec: AttackSpec) -> ProjectedGradientDescent:
    return _projected_gradient_descent(classifier, x, spec, norm=np.inf, restarts=0, decay=spec.decay)


def _projected_gradient_descent(
    classifier: PyTorchClassifier,
    x: torch.Tensor,
    spec: AttackSpec,
    norm: float,
    restarts: int,  # num_random_init: 0 starts at x
    decay: float | None,
) -> ProjectedGradientDescent:
    return ProjectedGradientDescent(
        classifier,
        norm=norm,
        eps=spec.eps,
        eps_step=spec.step_size,
        decay=decay,
        max_iter=spec.steps,
        targeted=spec.targeted is not None,  # then y holds the targets
        num_random_init=restarts,
        batch_size=int(x.shape[0]),
        random_eps=False,
        summary_writer=False,
        verbose=False,
    )


def _bim(classifier: PyTorchClassifier, x: torch.Tensor, spec: AttackSpec) -> BasicIterativeMethod:
    return BasicIterativeMethod(
        classifier,
        eps=spec.eps,
        eps_step=spec.step_size,
        max_iter=spec.steps,
        targeted=spec.targeted is not None,  # then y holds the targets
        batch_size=int(x.shape[0]),
        verbose=False,
    )


def _run(build: Callable[[PyTorchClassifier, torch.Tensor, AttackSpec], EvasionAttack]) -> AttackFn:
    def call(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
    ) -> torch.Tensor:
        # ART places the model on the *current* CUDA device: make that x's device.
        on_device = torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
        with on_device, seeded_global_rngs(spec.seed, x.device):
            attack = build(_classifier(model, x, num_classes), x, spec)
            x_adv = attack.generate(x=x.cpu().numpy(), y=y.cpu().numpy())
        return torch.from_numpy(x_adv).to(device=x.device, dtype=x.dtype)

    return call


def _sphere_noise(x: torch.Tensor, eps: float, norm: str, rng: Any) -> np.ndarray:
    """One draw of ``art.utils.random_sphere`` for x's samples from ``rng`` (NumPy's global RNG, or a
    RandomState of the same seed), shaped as x and cast to float32 as ART casts it."""
    n, m = int(x.shape[0]), int(np.prod(x.shape[1:]))
    if norm == "l2":
        a_tmp = rng.randn(n, m)
        s_2 = np.sum(a_tmp**2, axis=1)
        base = gammainc(m / 2.0, s_2 / 2.0) ** (1 / m) * eps / np.sqrt(s_2)
        noise = a_tmp * (np.tile(base, (m, 1))).T
    else:
        noise = rng.uniform(-eps, eps, (n, m))
    return np.asarray(noise.reshape(x.shape).astype(np.float32))


def _random_sphere(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    """One draw of ``art.utils.random_sphere`` from NumPy's global RNG, added to x and clipped."""
    noise = _sphere_noise(x, spec.eps, spec.norm, np.random)
    return torch.clamp(x + torch.from_numpy(noise).to(x.device), 0.0, 1.0)


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # Each restart draws once, in turn; nothing else draws from NumPy's RNG between them.
    with seeded_global_rngs(spec.seed, x.device):
        return restarts.starts(lambda _: _random_sphere(x, spec), spec.restarts)


def _apgd(classifier: PyTorchClassifier, x: torch.Tensor, spec: AttackSpec) -> AutoProjectedGradientDescent:
    return AutoProjectedGradientDescent(
        estimator=classifier,
        norm=_NORMS[spec.norm],
        eps=spec.eps,
        eps_step=2.0 * spec.eps,  # the original's initial step (ART's default is 0.1)
        max_iter=spec.steps,
        targeted=False,
        nb_random_init=spec.restarts,
        batch_size=int(x.shape[0]),
        loss_type=_APGD_LOSSES[spec.loss],
        verbose=False,
    )


_APGD_LOSSES = {"ce": "cross_entropy", "dlr": "difference_logits_ratio"}


def _apgd_draw(x: torch.Tensor, eps: float, norm: Norm, rng: np.random.RandomState) -> torch.Tensor:
    # generate: random_sphere(n, m, eps, norm) for the samples to attack, cast to float32, added to x,
    # clipped to clip_values, then x + projection(x_robust - x, eps, norm).
    x_np = x.cpu().numpy()
    robust = np.clip(x_np + _sphere_noise(x, eps, norm, rng), 0.0, 1.0)
    return torch.from_numpy(x_np + projection(robust - x_np, eps, _NORMS[norm])).to(x.device)


def _apgd_start(x: torch.Tensor, spec: AttackSpec) -> apgd.SubsetDraws:
    return apgd.SubsetDraws(spec.seed, numpy_draw=_apgd_draw)


def _apgd_passes_on_run(spec: AttackSpec, counted: tuple[float, float], n: int) -> tuple[float, float]:
    # The definition's run, one restart: 1 + (T + 1)·a forwards and (T + 1)·a backwards per sample, a the
    # share it attacks — ART's too (the samples correct at x). ART: the clean prediction of all, one
    # row when built (is_probability on np.ones), then per attacked sample T gradients, T + 1 loss
    # evaluations and a final prediction.
    steps = spec.steps
    attacked = counted[1] / (steps + 1)
    return (1.0 + 1.0 / n + (2 * steps + 2) * attacked, steps * attacked)


def _apgd_passes(spec: AttackSpec) -> tuple[float, float]:
    # The most (every sample attacked, the build's one row counted whole): _apgd_passes_on_run's.
    return (2.0 * spec.steps + 4.0, float(spec.steps))


def _apgd_refuses(spec: AttackSpec) -> str:
    if spec.restarts > 1 or spec.targets is not None:
        return (
            "offers APGD with one untargeted restart only: ART's later restarts attack the samples still "
            "correct at their previous start, from it, and its targeted APGD takes the caller's targets"
        )
    if spec.rho != 0.75:
        return "has no rho: ART's AutoProjectedGradientDescent fixes `rho = 0.75` in generate"
    return ""


def _art_success(pred: torch.Tensor, y: torch.Tensor, clean_pred: torch.Tensor) -> torch.Tensor:
    return pred != clean_pred


# ProjectedGradientDescentPyTorch.generate: restart 0's x_adv, then each later restart's where
# ``compute_success_array`` says it succeeded, which for an untargeted attack is
# ``adv_preds != preds`` with ``preds = classifier.predict(x_clean)`` (art/utils.py): a changed
# prediction, not a wrong one.
_PGD_SELECTION = restarts.Selection(
    succeeded=_art_success,
    needs_clean=True,
    note="ART keeps, per sample, the last restart whose prediction differs from the clean prediction "
    "(compute_success_array), not the last misclassified one",
)


def _success_forwards(spec: AttackSpec) -> int:
    """Forwards of one ``compute_success_array``: the x_adv, and the clean batch unless targeted (a
    targeted success compares with the targets, not the clean prediction)."""
    return 1 if spec.targeted else 2


def _iterative_passes(spec: AttackSpec) -> tuple[float, float]:
    # ProjectedGradientDescentPyTorch.generate (and BasicIterativeMethod, MI-FGSM, which are it): a
    # success check to log its rate, and one per restart after the first.
    forward, backward = textbook_passes(spec)
    k = restarts.count(spec.params)
    return forward - restarts.passes(k) + _success_forwards(spec) * k, backward


def _fgsm_passes(spec: AttackSpec) -> tuple[float, float]:
    # With more than one restart, compute_success checks each restart (and the log reuses its rate).
    forward, backward = textbook_passes(spec)
    k = spec.restarts
    return (forward - restarts.passes(k) + (_success_forwards(spec) * k if k > 1 else 0)), backward


def _fgsm_departure(spec: AttackSpec) -> str:
    if spec.restarts == 1:
        return ""
    return (
        "ART's FastGradientMethod keeps one restart for the whole batch, not one per sample: "
        "`if rate > rate_best: rate_best = rate; adv_x_best = adv_x`, with the success rate over the "
        "batch (a changed prediction, or the target's, counting as success), and returns x itself when no restart "
        "changes any prediction (`adv_x_best = x`; fast_gradient.py, generate)"
    )


ADAPTER = GuardedAdapter(
    name="art",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(
                call=_run(_fgsm),
                loss_reduction="mean",
                norms=("linf", "l2"),
                variants=("random_start", "restarts", "targeted"),
                passes=_fgsm_passes,
                start=_start,
                refuses=_fgsm_refuses,
                departure=_fgsm_departure,
                arithmetic=lambda spec: _FGM_L2 if spec.norm == "l2" else None,
            ),
            "pgd": Offer(
                call=_run(_pgd),
                loss_reduction="mean",
                norms=("linf", "l2"),
                variants=("restarts", "targeted"),
                passes=_iterative_passes,
                start=_start,
                arithmetic=lambda spec: _PGD_L2 if spec.norm == "l2" else None,
                # A targeted success is the target's prediction, as the definition's.
                selection=lambda spec: None if spec.targeted else _PGD_SELECTION,
            ),
            "bim": Offer(
                call=_run(_bim), loss_reduction="mean", variants=("targeted",), passes=_iterative_passes
            ),
            "mifgsm": Offer(
                call=_run(_mifgsm), loss_reduction="mean", variants=("targeted",), passes=_iterative_passes
            ),
            "apgd": Offer(
                call=_run(_apgd),
                loss_reduction="mean",
                norms=("linf", "l2"),
                variants=("restarts", "targets"),
                passes=_apgd_passes,
                passes_follow_expectation=True,
                passes_on_run=_apgd_passes_on_run,
                start=_apgd_start,
                refuses=_apgd_refuses,
                departure="ART's AutoProjectedGradientDescent is another APGD: checkpoints at "
                "`math.ceil(p * self.max_iter)` (10 iterations: after 3, 5, 6, 8, 9; the original after each from "
                "the second), halving where fewer than ρ of an interval's losses beat the running best "
                "(`f_k_p_1 > self.f_max`; the original counts rises over the previous iterate), resetting the "
                "momentum's previous point with the best one, and returning the last iterate if misclassified, "
                "else the random start (`x_robust`), where the original returns its last misclassified iterate, "
                "else x",
            ),
        }
    ),
)
