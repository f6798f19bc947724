"""DeepRobust (``deeprobust.image.attack``): ``FGSM`` and ``PGD``.

Every parameter of ``generate`` is set, none left to DeepRobust's defaults (PGD: ``epsilon=0.03,
num_steps=40, step_size=0.01``; FGSM: ``epsilon=0.2`` and *no clipping at all*, ``clip_min =
clip_max = None``). ``device`` is the string ``"cpu"`` or ``"cuda"`` (DeepRobust accepts nothing
else, and its default is ``"cuda"``); on CUDA the call runs under ``torch.cuda.device(x.device)``
because DeepRobust moves images, labels *and the model* with a bare ``.cuda()`` / ``.to("cuda")``,
i.e. to the current CUDA device. Both attacks are untargeted on the labels they are given (DeepRobust
has no targeted mode and never predicts labels for them); labels pass through
``label.type(torch.FloatTensor)`` and back to int64, exact below 2**24 classes. DeepRobust neither
calls ``model.eval()`` nor restores anything; its ``loss.backward()`` would accumulate ``.grad`` on
the parameters — the shared guard covers both.

Loss: ``nn.CrossEntropyLoss()`` (mean), hard-coded in ``fgsm.py`` (``fgm``) and ``pgd.py``
(``pgd_attack``). PGD steps, projects, then clips, in the reference's order:
``X_pgd + step_size·sign(grad)``, ``X + clamp(X_pgd - X, -epsilon, epsilon)``,
``clamp(clip_min, clip_max)``. Passes: FGSM 1 forward + 1 backward per sample; PGD ``steps + 1``
forwards + ``steps`` backwards (``pgd_attack`` runs the model on the clean batch first to count
errors it never returns).

Random start: PGD *always* starts at a random point — ``pgd_attack`` has no switch for it, so
``random_start=False`` cannot be configured and is refused (ValueError) rather than silently run
with a start. The start is drawn from NumPy's global RNG and added in float64
(``deeprobust/image/attack/pgd.py``, ``pgd_attack``): ``np.random.uniform(-epsilon, epsilon,
X.shape)`` (float64) is added to the float32 image converted to float64, clipped to [0, 1] (hard-coded,
not ``clip_min``/``clip_max``) and only then rounded to float32 (``torch.tensor(...).float()``). ART
draws the same uniforms from the same seed but rounds the noise to float32 before adding: the two
starts differ by one rounding in a few components, enough for their x_adv to differ (measured). We
seed ``np.random`` with ``spec.seed`` and restore its state afterwards; :func:`_start` makes the same
draw, which is how the harness knows the exact x_adv DeepRobust must return.

Import: ``deeprobust/image/__init__.py`` imports every attack, defence and model of the package, and
``attack/cw.py`` → ``image/optimizer.py`` does ``from scipy.optimize.optimize import _status_message``,
a name SciPy ≥ 1.8 no longer has there (DeepRobust issue #148): ``import deeprobust.image`` fails with
any current SciPy. :func:`attack_module` therefore loads only the modules these attacks run —
``attack/base_attack.py``, ``attack/pgd.py`` and ``attack/fgsm.py``, unmodified, which import nothing
but NumPy and torch — without executing the two package ``__init__`` files. So DeepRobust is installed
with ``pip install --no-deps deeprobust``; none of its declared dependencies is needed for these attacks.

Releases: written against 0.2.11; the three files are byte-identical from 0.2.5 on. In 0.2.3 and
0.2.4 ``PGD.parse_params`` has no ``bound`` argument (the L∞ update is the same), so this adapter,
which sets it, needs ≥ 0.2.5.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import GuardedAdapter
from .declaration import Declaration, Offer, extra_forwards
from .rng import seeded_global_rngs
from .spec import AttackSpec

_ATTACK_PACKAGE = "deeprobust.image.attack"


def attack_module(name: str) -> types.ModuleType:
    """``deeprobust.image.attack.<name>``, imported without running the package ``__init__`` files.

    The parent packages are stood in for by empty package modules (with the real ``__path__``) only
    while the module is imported, then removed again, so a later ``import deeprobust.image`` runs
    the real package as it would have (and binds the same module objects).
    """
    full_name = f"{_ATTACK_PACKAGE}.{name}"
    if full_name in sys.modules:
        return sys.modules[full_name]
    import deeprobust  # its __init__.py is empty: only the ``image`` package imports everything

    image_dir = Path(next(iter(deeprobust.__path__))) / "image"
    stand_ins = []
    for package, path in (("deeprobust.image", image_dir), (_ATTACK_PACKAGE, image_dir / "attack")):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(path)]
            module.__package__ = package
            sys.modules[package] = module
            stand_ins.append(package)
    try:
        return importlib.import_module(full_name)
    finally:
        for package in stand_ins:
            sys.modules.pop(package, None)


_fgsm = attack_module("fgsm")
_pgd = attack_module("pgd")


def _device_string(x: torch.Tensor) -> str:
    if x.device.type not in ("cpu", "cuda"):
        # Any other string makes DeepRobust raise, and "cpu" would move the model off x's device.
        raise ValueError(f"deeprobust runs on 'cpu' or 'cuda' only, got x on {x.device}")
    return x.device.type


def _run_fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, device: str
) -> torch.Tensor:
    fgsm = _fgsm.FGSM(model, device=device)
    x_adv: torch.Tensor = fgsm.generate(x, y, epsilon=spec.eps, order=np.inf, clip_max=1.0, clip_min=0.0)
    return x_adv


def _run_pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, device: str
) -> torch.Tensor:
    if not spec.random_start:
        raise ValueError(
            "deeprobust: expected random_start=True, got False — DeepRobust's PGD always starts at a "
            "random point (pgd_attack in deeprobust/image/attack/pgd.py draws it unconditionally)"
        )
    pgd = _pgd.PGD(model, device=device)
    x_adv: torch.Tensor = pgd.generate(
        x,
        y,
        epsilon=spec.eps,
        num_steps=spec.steps,
        step_size=spec.step_size,
        clip_max=1.0,
        clip_min=0.0,
        print_process=False,
        bound="linf",
    )
    return x_adv


# DeepRobust's call per attack (the offers' and the bench's).
_RUNS = {"fgsm": _run_fgsm, "pgd": _run_pgd}


def generate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    """DeepRobust's FGSM or PGD for ``spec`` with every parameter set, unseeded and unguarded (the
    adapter adds both; ``harness bench`` times this call bare)."""
    run = _RUNS.get(spec.attack)
    if run is None:
        raise ValueError(f"deeprobust offers no {spec.attack!r}; expected one of {list(_RUNS)}")
    device = _device_string(x)
    # DeepRobust moves model, images and labels with a bare .cuda(): make x's device the current one.
    on_device = torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
    with on_device:
        x_adv = run(model, x, y, spec, device)
    # DeepRobust returns a leaf that still requires grad.
    return x_adv.detach()


def _attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, num_classes: int
) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        return generate(model, x, y, spec)


def _start(x: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    with seeded_global_rngs(spec.seed, x.device):
        noise = np.random.uniform(-spec.eps, spec.eps, tuple(x.shape))
    # float32 image + float64 noise adds in float64; clipped there, rounded to float32 once.
    start = np.clip(x.detach().cpu().numpy() + noise, 0, 1.0)
    return torch.tensor(start).to(x.device).float()


def _refuses(spec: AttackSpec) -> str:
    # Refused before the library runs (and before _run_pgd's own check): a run plans no such cells.
    return "" if spec.random_start else "offers no PGD without a random start"


ADAPTER = GuardedAdapter(
    name="deeprobust",
    attack_fn=None,
    declaration=Declaration(
        offers={
            "fgsm": Offer(call=_attack, loss_reduction="mean"),
            # +1 forward: the clean batch predicted to count errors that pgd_attack never returns.
            "pgd": Offer(
                call=_attack, loss_reduction="mean", passes=extra_forwards(1), start=_start, refuses=_refuses
            ),
        }
    ),
)
