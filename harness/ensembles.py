"""What each library's "AutoAttack" runs, read from the objects it constructs (``autoattack-config``).

Every library is built with its own defaults for a norm and eps — the way a user who writes
``AutoAttack(model, norm, eps)`` gets it — and its members are read off the constructed object's
attributes, not from documentation: the original's (``pyautoattack.AutoAttack``, ``version="standard"``:
``attacks_to_run`` and its ``apgd``, ``apgd_targeted``, ``fab``, ``square``), torchattacks'
(``AutoAttack(version="standard")``: the attacks of its ``MultiAttack``) and ART's (``AutoAttack``:
its ``attacks`` list). Each member is compared with the original's member of the same kind.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import torch
from advparity.adapters.attacks.apgd import ORIGINAL_NORMS
from torch import nn


@dataclass(frozen=True)
class Member:
    """One attack of an ensemble: ``kind`` is what it is compared by ("APGD-CE", "APGD-T", "FAB-T",
    "Square", ...); None for a setting the attack does not have."""

    kind: str
    steps: int | None = None  # iterations (queries for Square)
    restarts: int | None = None
    targets: int | None = None  # target classes of a targeted member
    seed: str | None = None  # as constructed: a number, "clock" where it is drawn from time.time()
    note: str = ""


@dataclass(frozen=True)
class Ensemble:
    library: str
    version: str
    members: tuple[Member, ...]


def _seed(value: object) -> str:
    return "clock" if value is None else str(value)


def original(model: nn.Module, norm: str, eps: float) -> Ensemble:
    from pyautoattack import AutoAttack

    attack = AutoAttack(
        model, norm=ORIGINAL_NORMS[norm], eps=eps, version="standard", device=torch.device("cpu")
    )
    parts = {
        "apgd-ce": Member(
            "APGD-CE", attack.apgd.n_iter, attack.apgd.n_restarts, None, _seed(attack.apgd.seed)
        ),
        "apgd-dlr": Member(
            "APGD-DLR", attack.apgd.n_iter, attack.apgd.n_restarts, None, _seed(attack.apgd.seed)
        ),
        "apgd-t": Member(
            "APGD-T",
            attack.apgd_targeted.n_iter,
            attack.apgd_targeted.n_restarts,
            attack.apgd_targeted.n_target_classes,
            _seed(attack.apgd_targeted.seed),
        ),
        "fab-t": Member(
            "FAB-T",
            attack.fab.n_iter,
            attack.fab.n_restarts,
            attack.fab.n_target_classes,
            _seed(attack.fab.seed),
        ),
        "fab": Member("FAB", attack.fab.n_iter, attack.fab.n_restarts, None, _seed(attack.fab.seed)),
        "square": Member(
            "Square", attack.square.n_queries, attack.square.n_restarts, None, _seed(attack.square.seed)
        ),
    }
    return Ensemble("autoattack (original)", "standard", tuple(parts[name] for name in attack.attacks_to_run))


def torchattacks_ensemble(model: nn.Module, norm: str, eps: float, num_classes: int) -> Ensemble:
    import torchattacks

    attack = torchattacks.AutoAttack(
        model, norm=ORIGINAL_NORMS[norm], eps=eps, version="standard", n_classes=num_classes
    )
    # Its members' seeds are get_seed() at construction: time.time() where AutoAttack's seed is None.
    seed = _seed(attack.seed)
    members = []
    for inner in attack._autoattack.attacks:
        name = type(inner).__name__
        if name == "APGD":
            kind = f"APGD-{inner.loss.upper()}"
            members.append(Member(kind, inner.steps, inner.n_restarts, None, seed))
        elif name == "APGDT":
            members.append(Member("APGD-T", inner.steps, inner.n_restarts, inner.n_target_classes, seed))
        elif name == "FAB":
            kind = "FAB-T" if inner.multi_targeted else "FAB"
            targets = inner.n_target_classes if inner.multi_targeted else None
            members.append(Member(kind, inner.steps, inner.n_restarts, targets, seed))
        elif name == "Square":
            members.append(Member("Square", inner.n_queries, inner.n_restarts, None, seed))
        else:
            members.append(Member(name))
    return Ensemble("torchattacks", "standard", tuple(members))


def art_ensemble(
    model: nn.Module, norm: str, eps: float, num_classes: int, shape: tuple[int, ...]
) -> Ensemble:
    import numpy as np
    from art.attacks.evasion import AutoAttack
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=shape,
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
    )
    attack = AutoAttack(estimator=classifier, norm=np.inf if norm == "linf" else 2, eps=eps)
    members = []
    for inner in attack.attacks:
        name = type(inner).__name__
        if name == "AutoProjectedGradientDescent":
            loss = {"cross_entropy": "CE", "difference_logits_ratio": "DLR"}.get(
                inner.loss_type, str(inner.loss_type)
            )
            kind = f"APGD-{loss}" + ("-T" if inner.targeted else "")
            members.append(Member(kind, inner.max_iter, inner.nb_random_init, None, "NumPy global RNG"))
        elif name == "SquareAttack":
            members.append(Member("Square", inner.max_iter, inner.nb_restarts, None, "NumPy global RNG"))
        elif name == "DeepFool":
            members.append(
                Member("DeepFool", inner.max_iter, None, None, None, note=f"epsilon {inner.epsilon}")
            )
        else:
            members.append(Member(name))
    return Ensemble("art", "AutoAttack defaults", tuple(members))


def differences(ensemble: Ensemble, reference: Ensemble) -> list[str]:
    """How ``ensemble`` differs from the original's, member by member (by kind), in a few words each."""
    found: list[str] = []
    theirs = {m.kind: m for m in ensemble.members}
    ours = {m.kind: m for m in reference.members}
    for kind, member in ours.items():
        other = theirs.get(kind)
        if other is None:
            found.append(f"no {kind}")
            continue
        for field in ("steps", "restarts", "targets", "seed"):
            a, b = getattr(other, field), getattr(member, field)
            if a != b:
                found.append(f"{kind} {field} {a} (original {b})")
    found += [
        f"runs {kind}, which the original's standard version does not" for kind in theirs if kind not in ours
    ]
    return found


def _linear(num_classes: int, shape: tuple[int, ...]) -> nn.Module:
    # The constructors only store the model: any module of the right output width will do.
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(shape).prod()), num_classes)).eval()


def all_ensembles(
    norm: str, eps: float, num_classes: int = 10, shape: tuple[int, ...] = (3, 32, 32)
) -> list[tuple[Ensemble, list[str]]]:
    """Every installed library's ensemble with its differences from the original's (the original first)."""
    if norm not in ORIGINAL_NORMS:
        raise ValueError(f"expected norm to be one of {list(ORIGINAL_NORMS)}, got {norm!r}")
    if importlib.util.find_spec("pyautoattack") is None:
        raise ValueError(
            "the original AutoAttack (pyautoattack) is not installed, and every ensemble is compared with "
            "it: pip install 'advparity[autoattack]'"
        )
    model = _linear(num_classes, shape)
    reference = original(model, norm, eps)
    builders: list[Callable[[], Ensemble]] = [
        lambda: torchattacks_ensemble(model, norm, eps, num_classes),
        lambda: art_ensemble(model, norm, eps, num_classes, shape),
    ]
    out = [(reference, [])]
    for build in builders:
        ensemble = build()
        out.append((ensemble, differences(ensemble, reference)))
    return out


def text(ensembles: list[tuple[Ensemble, list[str]]]) -> str:
    """One block per library: its members, then how it differs from the original's."""
    lines: list[str] = []
    for ensemble, found in ensembles:
        lines.append(f"{ensemble.library} ({ensemble.version}):")
        for m in ensemble.members:
            values = {k: v for k, v in dataclasses.asdict(m).items() if k != "kind" and v not in (None, "")}
            lines.append(f"  {m.kind:<10} " + ", ".join(f"{k} {v}" for k, v in values.items()))
        if found:
            lines.append("  differs from the original: " + "; ".join(found))
    return "\n".join(lines)
