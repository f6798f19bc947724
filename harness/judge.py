"""The harness's own verdict on a batch of adversarial images, whatever the library claims.

Its own forward pass under ``torch.inference_mode()``, the eps-ball (in the attack's norm) and [0, 1]
per sample, and the prediction after rounding x_adv to 8-bit levels (what saving a PNG does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from advparity.adapters.attacks.norms import Norm, distance, eps_tolerance


@dataclass
class Judged:
    pred: np.ndarray
    conf: np.ndarray
    linf: np.ndarray
    distance: np.ndarray  # to x in the attack's norm (what eps budgets)
    linf_to_x_ref: np.ndarray  # to the reference's own x_adv (what the prediction reuse keys on)
    in_bounds: np.ndarray
    pred_8bit: np.ndarray
    linf_8bit: np.ndarray


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.softmax(model(x), dim=1)
    conf, pred = probs.max(dim=1)
    return pred, conf


def _linf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # float64 makes the difference of two float32 values exact: the distance adds no round-off.
    return (a.double() - b.double()).abs().flatten(1).amax(dim=1)


def judge(
    model: torch.nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    x_ref: torch.Tensor,
    eps: float,
    pred_clean: torch.Tensor,
    reference: Judged | None = None,
    norm: Norm = "linf",
) -> Judged:
    """The harness's own verdict on a batch of x_adv: predictions, distances, bounds, 8-bit survival.

    With ``reference`` (the reference's verdict on ``x_ref``), samples whose x_adv equals the
    reference's bit for bit take its predictions instead of a second forward pass: the same image
    gets the same answer, and the equality itself is the stronger check. Every other sample is run
    through the model here. (On the demo this halves the harness's evaluation time: FGSM from every
    library, and torchattacks' seeded PGD, are bit-identical to the reference.) ``norm`` is the
    attack's (its eps-ball).
    """
    linf_to_ref = _linf(x_adv, x_ref)
    linf = _linf(x_adv, x)
    farthest = linf if norm == "linf" else distance(norm, x_adv, x)
    inside_box = ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(dim=1)
    in_bounds = (
        inside_box
        & (farthest <= eps + eps_tolerance(norm, eps))
        & torch.isfinite(x_adv).flatten(1).all(dim=1)
    )
    # Saving as PNG rounds to 1/255 steps. Where rounding gives back the clean image (every eps below
    # 0.5/255 on 8-bit inputs), the prediction is the clean one and no forward pass is needed.
    rounded = torch.round(x_adv.clamp(0, 1) * 255.0) / 255.0
    changed = (rounded != x).flatten(1).any(dim=1)

    fresh = linf_to_ref != 0 if reference is not None else torch.ones_like(changed)
    pred = torch.empty_like(pred_clean)
    conf = torch.empty(len(x), dtype=torch.float32, device=x.device)
    pred_8bit = pred_clean.clone()
    if reference is not None:
        same = ~fresh
        pred[same] = torch.as_tensor(reference.pred, device=x.device)[same]
        conf[same] = torch.as_tensor(reference.conf, device=x.device)[same]
        pred_8bit[same] = torch.as_tensor(reference.pred_8bit, device=x.device)[same]
    if bool(fresh.any()):
        pred[fresh], conf[fresh] = predict(model, x_adv[fresh])
    recheck = fresh & changed
    if bool(recheck.any()):
        pred_8bit[recheck] = predict(model, rounded[recheck])[0]
    return Judged(
        pred=pred.cpu().numpy(),
        conf=conf.cpu().numpy(),
        linf=linf.cpu().numpy(),
        distance=farthest.cpu().numpy(),
        linf_to_x_ref=linf_to_ref.cpu().numpy(),
        in_bounds=in_bounds.cpu().numpy(),
        pred_8bit=pred_8bit.cpu().numpy(),
        linf_8bit=_linf(rounded, x).cpu().numpy(),
    )
