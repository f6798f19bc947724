"""The Python API: cross-check the libraries on *your* model and images, without a checkpoint or a preset.

Over ~400 lines on purpose: one public function's argument checks (one helper per kind of argument) and its manifest, kept beside the signature they check.

::

    from advparity import harness

    result = harness.crosscheck(model, images, labels, eps=["1/255", "4/255"], steps=10)
    print(result)                 # one line: the verdict counts
    assert result.ok              # no library disagrees with the exact x_adv it must return
    result.verdicts               # one row per library x attack x eps (reports.crosscheck.verdicts)
    result.report("out/")         # report.html, tables/ and figures/

It runs the very cells ``python -m advparity run`` runs (:func:`harness.runner.run_tensors`), into a run
directory (``out``, or a temporary one that lives as long as the result), and judges them with the
same rules (``reports/crosscheck.py``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from advparity.adapters.expected import NEAR_ZERO_GRADIENT, PIXEL_ROUND_OFF
from advparity.adapters.state import model_device, restore, snapshot
from advparity.harness.config import AttackConfig, attack_grid, parse_eps
from advparity.harness.config import eps_label as _eps_label
from advparity.harness.environment import configure_torch
from advparity.harness.outputs import check_output_folder
from advparity.harness.plan import REFERENCE
from advparity.harness.runner import run_manifest, run_tensors
from advparity.reports.crosscheck import FAILING_VERDICTS, VERDICTS, counts_text, run_verdicts
from advparity.reports.load import load_run
from torch import nn

from advparity import adapters

API_PRESET = "api"  # the manifest's "preset" for API runs (a regression baseline compares it)
DEFAULT_EPS: tuple[str, ...] = ("1/255", "2/255", "4/255", "8/255")


@dataclass
class CrossCheckResult:
    """What :func:`crosscheck` found: the verdicts, the per-sample rows and the run directory."""

    verdicts: pd.DataFrame  # one row per library x attack x eps x steps x random start
    results: pd.DataFrame  # the long table: one row per library x attack x eps x seed x sample
    run_dir: Path
    # The temporary run directory (when no ``out`` was given), removed when the result is collected.
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True iff no verdict is ``disagree`` or ``invalid``."""
        return not bool(self.verdicts["verdict"].isin(FAILING_VERDICTS).any())

    def counts(self) -> dict[str, int]:
        counted = self.verdicts["verdict"].value_counts()
        return {v: int(counted.get(v, 0)) for v in VERDICTS}

    def summary(self) -> str:
        """One line: the verdict counts, e.g. ``cross-check OK: 12 agree, 0 inconclusive, ...``."""
        counts = counts_text(self.counts())
        head = "OK" if self.ok else "FAIL"
        failing = self.verdicts[self.verdicts["verdict"].isin(FAILING_VERDICTS)]
        first = f"; first: {failing.iloc[0]['reason']}" if len(failing) else ""
        return f"cross-check {head}: {counts} ({len(self.verdicts)} verdicts){first}"

    def __str__(self) -> str:
        return self.summary()

    def report(self, out_dir: str | Path) -> Path:
        """Write ``report.html``, ``tables/`` and ``figures/`` under ``out_dir``; returns the HTML's path."""
        from advparity.reports.pipeline import report

        return report(self.run_dir, out_dir).html


def crosscheck(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    libraries: Sequence[str] | None = None,
    attacks: Sequence[str | Mapping[str, Any]] = ("fgsm", "pgd"),
    eps: str | float | Sequence[str | float] = DEFAULT_EPS,
    steps: int = 10,
    alpha: str | float = "eps/4",
    random_start: bool = True,
    seeds: int | Sequence[int] = (0,),
    reference_seeds: int | Sequence[int] | None = None,
    batch_size: int = 64,
    out: str | Path | None = None,
    device: str | torch.device | None = None,
    classes: Sequence[str] | None = None,
) -> CrossCheckResult:
    """Run FGSM/PGD from every library and the reference on ``images``; judge each library's x_adv.

    ``model`` maps [0, 1] images ``[N, C, H, W]``, of its parameters' dtype, to logits (normalisation
    inside it; a model that seems to return probabilities gets a ``UserWarning``); ``labels`` are
    int64 ``[N]``. ``eps`` takes ``"1/255"`` strings and floats in (0, 1] (``8`` is refused: write
    ``"8/255"``). ``alpha`` is PGD's step, a rule like ``"eps/4"`` or a fraction of eps (``0.25``).
    ``reference_seeds`` default to ``seeds`` plus one more, so the reference's seed-to-seed spread is
    reported beside random-start PGD. ``libraries`` default to the three advparity depends on (``adapters.CORE_LIBRARIES``; pass
    ``adapters.runnable()`` for every library installed here); the reference always runs. ``attacks``
    takes ``"fgsm"`` and ``"pgd"`` (with ``steps``, ``alpha``, ``random_start``: the presets' shorthand)
    and dicts written like a preset's ``[[attacks]]`` tables (``{"attack": "pgd", "steps": 20}``; their
    ``eps`` defaults to ``eps``).

    The model is left exactly as it was (modes, parameters, buffers, ``.grad``): it runs in eval mode
    during the call. Torch's determinism settings (TF32 off, deterministic cuDNN) stay set afterwards,
    as they do for ``python -m advparity run``; the CPU thread count is left as it is.

    A bad argument raises ``ValueError`` or ``TypeError`` naming it, before any attack runs.
    """
    checked = _check_arguments(
        model,
        images,
        labels,
        out=out,
        device=device,
        libraries=libraries,
        attacks=attacks,
        eps=eps,
        steps=steps,
        alpha=alpha,
        random_start=random_start,
        seeds=seeds,
        reference_seeds=reference_seeds,
        batch_size=batch_size,
    )
    x_all, y_all, run_device, config = checked.x, checked.y, checked.device, checked.config
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if checked.run_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="advparity-")
        run_dir = Path(tmp.name) / "run"
    else:
        run_dir = checked.run_dir

    configure_torch(run_device, torch.get_num_threads())  # keeps the caller's thread count
    state = snapshot(model)
    try:
        model.eval()
        names = _classes(model, x_all, run_device, classes)
        if int(y_all.min()) < 0 or int(y_all.max()) >= len(names):
            raise ValueError(
                f"expected labels in [0, {len(names)}) (the model's output width), "
                f"got {int(y_all.min())}..{int(y_all.max())}"
            )
        manifest = _manifest(model, x_all, y_all, config, run_device, names)
        run_tensors(model, x_all, y_all, config, run_dir, manifest, device=run_device)
    finally:
        restore(model, state, "crosscheck")
    run = load_run(run_dir)
    return CrossCheckResult(verdicts=run_verdicts(run), results=run.results, run_dir=run_dir, _tmp=tmp)


def attack_config(
    *,
    libraries: Sequence[str] | None = None,
    attacks: Sequence[str | Mapping[str, Any]] = ("fgsm", "pgd"),
    eps: str | float | Sequence[str | float] = DEFAULT_EPS,
    steps: int = 10,
    alpha: str | float = "eps/4",
    random_start: bool = True,
    seeds: int | Sequence[int] = (0,),
    reference_seeds: int | Sequence[int] | None = None,
    batch_size: int = 64,
) -> AttackConfig:
    """The :class:`AttackConfig` of a :func:`crosscheck` call (raises ``ValueError`` or ``TypeError``, naming
    the argument, on bad input). A single string (``attacks``, ``libraries``, ``eps``), number (``eps``) or
    int (``seeds``, ``reference_seeds``) stands for a list of one."""
    eps_values = _listed("eps", eps, (str, int, float), 'one eps ("1/255", or a float in (0, 1])')
    grid = tuple(parse_eps(e) for e in eps_values)
    if not grid:
        raise ValueError("expected at least one eps")
    if len(set(grid)) != len(grid):
        raise ValueError(f"eps values repeat: {[_eps_label(e) for e in grid]}")
    chosen = _listed("attacks", attacks, (str, Mapping), '"fgsm", "pgd" or an [[attacks]] table (a dict)')
    names = [a for a in chosen if isinstance(a, str)]
    unknown = [a for a in names if a not in ("fgsm", "pgd")]
    if unknown or not chosen:
        raise ValueError(
            f"expected attacks among ('fgsm', 'pgd') or [[attacks]] tables (dicts), got {list(chosen)}"
        )
    tables = []
    for i, table in enumerate(a for a in chosen if not isinstance(a, str)):
        try:
            # A table without its own eps takes the call's grid.
            tables.append(attack_grid({"eps": list(eps_values), **table}))
        except ValueError as err:
            raise ValueError(f"attacks: table {i + 1}: {err}") from err
    library_seeds = _seeds("seeds", seeds)
    if reference_seeds is None:
        reference = (*library_seeds, max(library_seeds) + 1)
    else:
        reference = _seeds("reference_seeds", reference_seeds)
    return AttackConfig(
        libraries=_libraries(libraries),
        fgsm_eps=grid if "fgsm" in names else (),
        pgd_eps=grid if "pgd" in names else (),
        attacks=tuple(tables),
        pgd_steps=_count("steps", steps, minimum=1),
        pgd_alpha=_alpha_rule(alpha),
        pgd_random_start=_flag("random_start", random_start),
        reference_seeds=reference,
        library_seeds=library_seeds,
        batch_size=_count("batch_size", batch_size, minimum=1),
    )


@dataclass(frozen=True)
class _Checked:
    """:func:`crosscheck`'s arguments once checked: the data on the CPU, the device, the grid, ``out``."""

    x: torch.Tensor
    y: torch.Tensor
    device: torch.device
    config: AttackConfig
    run_dir: Path | None


def _check_arguments(
    model: object,
    images: object,
    labels: object,
    *,
    out: object = None,
    device: str | torch.device | None = None,
    **grid: Any,
) -> _Checked:
    """Every check of :func:`crosscheck`'s arguments that needs no forward pass, before anything runs;
    ``grid`` is :func:`attack_config`'s keywords."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"expected model to be a torch.nn.Module, got {type(model).__name__}")
    x, y = _check_data(images, labels, _model_dtype(model))
    return _Checked(x, y, _device(model, device), attack_config(**grid), _run_dir(out))


# One helper per kind of argument; each error names the argument, what it expected and what it got.


def _got(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _count(name: str, value: object, *, minimum: int) -> int:
    # bool is an int subclass: steps=True would run one step. numpy ints are numbers.Integral, so pass.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected {name} as an int >= {minimum}, got {_got(value)}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")
    return int(value)


def _flag(name: str, value: object) -> bool:
    # Only a bool: every non-empty string is truthy, random_start="no" included.
    if not isinstance(value, bool):
        raise TypeError(f"expected {name} as True or False, got {_got(value)}")
    return value


def _listed(name: str, value: object, one: tuple[type, ...], what: str) -> list[Any]:
    """``value`` as a list, where a single ``one`` (``attacks="pgd"``, ``seeds=0``) is a list of one."""
    if isinstance(value, one):
        return [value]
    # A string is iterable, but libraries="art" means ["art"], never ["a", "r", "t"].
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"expected {name} as {what} or a list of them, got {_got(value)}")
    return list(value)


def _seeds(name: str, value: object) -> tuple[int, ...]:
    seeds = tuple(_count(name, s, minimum=0) for s in _listed(name, value, (numbers.Integral,), "an int"))
    if not seeds:
        raise ValueError(f"expected at least one seed in {name}, got {_got(value)}")
    return seeds


def _libraries(value: object) -> tuple[str, ...]:
    chosen = (
        list(adapters.CORE_LIBRARIES)
        if value is None
        else _listed("libraries", value, (str,), "a library name")
    )
    known = adapters.names()
    unknown = [lib for lib in chosen if lib not in known]
    if unknown:
        raise ValueError(f"expected libraries among {known}, got unknown library {unknown}")
    if REFERENCE not in chosen:
        chosen.insert(0, REFERENCE)  # the arbiter every library is compared to
    return tuple(chosen)


def _path(name: str, value: object) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"expected {name} as a path (str or Path), got {_got(value)}")
    return Path(value)


def _run_dir(out: object) -> Path | None:
    if out is None:
        return None
    path = _path("out", out)
    check_output_folder(path, "out")  # the run directory is made only once attacks start
    return path


def _alpha_rule(alpha: str | float) -> str:
    if isinstance(alpha, str):
        return alpha  # AttackConfig validates the rule
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise ValueError(f'expected alpha like "eps/4" or a fraction of eps in (0, 1], got {alpha!r}')
    if not (math.isfinite(alpha) and 0 < alpha <= 1):
        raise ValueError(f"expected alpha as a fraction of eps in (0, 1], got {alpha!r}")
    return f"eps/{1.0 / float(alpha)!r}"


def _model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter (or buffer); None where it has none."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _check_data(
    images: object, labels: object, dtype: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() != 4:
        got = (
            f"{images.dtype} {tuple(images.shape)}"
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise ValueError(f"expected images as a float tensor [N, C, H, W] in [0, 1], got {got}")
    if dtype is not None and images.dtype != dtype:
        # Not converted here: float64 images attacked in float32 would not be the images passed.
        raise ValueError(
            f"expected images as {dtype} (the model's parameter dtype), got {images.dtype}: convert "
            f"the images (images.to({dtype})) or the model"
        )
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
        got = (
            f"{labels.dtype} {tuple(labels.shape)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise ValueError(f"expected labels as an int64 tensor [N], got {got}")
    if len(images) != len(labels):
        raise ValueError(f"expected one label per image: {len(images)} images, {len(labels)} labels")
    if len(images) == 0:
        raise ValueError("expected at least one image")
    x = images.detach().to("cpu").contiguous()
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("expected images in [0, 1] (normalise inside the model)")
    return x, labels.detach().to("cpu").contiguous()


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    on = model_device(model)
    try:
        chosen = torch.device(device) if device is not None else (on or torch.device("cpu"))
    except RuntimeError as err:  # torch's message lists every device type but names no argument
        raise ValueError(f'expected device like "cpu" or "cuda:0", got {device!r}') from err
    except TypeError as err:
        raise TypeError(f'expected device like "cpu" or "cuda:0", got {_got(device)}') from err
    if on is not None and on.type != chosen.type:
        raise ValueError(f"expected device {chosen} to be the model's, got a model on {on}")
    return on if on is not None else chosen


def _classes(
    model: nn.Module, x: torch.Tensor, device: torch.device, classes: Sequence[str] | None
) -> list[str]:
    with torch.inference_mode():
        logits = model(x[:1].to(device))
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = f"shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"expected the model to return logits [N, classes], got {got}")
    width = int(logits.shape[1])
    if _looks_like_probabilities(logits):
        warnings.warn(
            "the model seems to return probabilities, not logits (its output rows are non-negative and "
            "sum to 1): a saturated softmax makes every gradient-based attack weaker, so the libraries "
            "are cross-checked on attacks that barely move; remove the softmax from the model",
            UserWarning,
            stacklevel=3,  # the caller of crosscheck
        )
    if classes is None:
        return [f"class_{k}" for k in range(width)]
    names = [str(c) for c in _listed("classes", classes, (), "a class name")]
    if len(names) != width:
        raise ValueError(f"expected {width} class names (the model's output width), got {len(names)}")
    return names


def _looks_like_probabilities(logits: torch.Tensor) -> bool:
    p = logits.detach().double()
    return bool((p >= 0).all()) and bool(((p.sum(dim=1) - 1).abs() <= 1e-4).all())


def _sha256_tensors(tensors: Sequence[tuple[str, torch.Tensor]]) -> str:
    digest = hashlib.sha256()
    for name, tensor in tensors:
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def state_sha256(model: nn.Module) -> str:
    """sha256 of the model's state_dict tensors (names, dtypes, shapes and bytes), in name order."""
    return _sha256_tensors(sorted(model.state_dict().items()))


def _manifest(
    model: nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    config: AttackConfig,
    device: torch.device,
    classes: list[str],
) -> dict[str, Any]:
    model_sha = state_sha256(model)
    images_sha = _sha256_tensors([("images", x_all)])
    labels_sha = _sha256_tensors([("labels", y_all)])
    data_sha = hashlib.sha256(f"{images_sha}{labels_sha}".encode()).hexdigest()
    model_class = f"{type(model).__module__}.{type(model).__qualname__}"
    experiment = {
        "preset": API_PRESET,
        "attack": config.experiment(),
        "test_limit": 0,
        "image_size": list(x_all.shape[1:]),  # [C, H, W]
        "model_class": model_class,
        "model_sha256": model_sha,
        "images_sha256": images_sha,
        "labels_sha256": labels_sha,
        "device_type": device.type,
        "evidence": {"pixel_round_off": PIXEL_ROUND_OFF, "near_zero_gradient": NEAR_ZERO_GRADIENT},
    }
    return run_manifest(
        experiment,
        config,
        n_samples=len(x_all),
        device=device,
        command=f"harness.crosscheck({model_class}, {len(x_all)} images)",
        extra={
            "preset": API_PRESET,
            "classes": classes,
            # No checkpoint file: the state_dict's hash stands for one (a regression baseline notes a change).
            "checkpoint": {"path": None, "sha256": model_sha, "model_class": model_class},
            # The images and labels are the test set: another set fails a regression check.
            "split": {"path": None, "sha256": data_sha},
            "model": {"class": model_class, "state_sha256": model_sha},
            "images": {"sha256": images_sha, "labels_sha256": labels_sha, "shape": list(x_all.shape)},
        },
    )
