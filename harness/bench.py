"""``python -m advparity bench``: how fast each library's FGSM and PGD run on DenseNet-121, and what our
adapter adds on top of calling the library directly.

Over ~400 lines on purpose: one bare call per library, timed beside the same library's guarded call.

By default every library that can run here (``adapters.runnable()``) is timed; an attack a library
does not offer (adv-lib has no FGSM) has no row. Each library × attack is timed two ways on the same
batch:

* **adapter**: ``adapters.get(library).run(model, x, y, spec)`` — what the harness calls, with its
  validation, model-state snapshot and restore, pass counting and output checks;
* **bare**: the library called directly, the way its documentation shows and a user would write
  it (model put in eval mode once beforehand; the same attack settings as the adapter).

The calls alternate adapter, bare, adapter, bare, … after one warm-up call each, so drift in the
machine's speed (other processes, CPU frequency) falls on both alike; each side's time is the median
over ``repeats``. Images/s, passes per image (counted by the adapter's hooks, not assumed) and the
ratio to the reference's adapter time come from the adapter side; ``overhead`` is adapter / bare − 1.

The model is DenseNet-121 with random (seeded) weights: an attack's cost does not depend on what the
weights are, and the benchmark then needs no checkpoint.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from advparity.adapters.spec import AttackSpec
from advparity.harness.config import AttackConfig
from advparity.harness.environment import configure_torch, environment
from advparity.harness.plan import REFERENCE, grid_eps, plan_cells
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advparity import adapters

ATTACKS = ("fgsm", "pgd")
NUM_CLASSES = 4


@dataclass(frozen=True)
class BenchConfig:
    size: int = 64  # image side, pixels
    # Images per attack call: the demo and paper presets attack 64 at a time. The adapter's fixed cost
    # per call (~20 ms of state snapshot/restore on DenseNet-121) is 2-3 % of a 64-image FGSM on 2 cores.
    batch: int = 64
    repeats: int = 3  # timed calls per side, after one warm-up call
    eps: float = 1 / 255
    pgd_steps: int = 10  # alpha = eps/4 and random start, the paper's protocol
    # Every library that can run here, read when the config is made (optional extras may be missing).
    libraries: tuple[str, ...] = field(default_factory=lambda: tuple(adapters.runnable()))
    attacks: tuple[str, ...] = ATTACKS
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("size", "batch", "repeats", "pgd_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        if self.size < 32:
            raise ValueError(f"expected size >= 32 px (DenseNet-121 pools by 32), got {self.size}")
        unknown = [lib for lib in self.libraries if lib not in adapters.names()]
        if unknown:
            raise ValueError(f"unknown libraries {unknown}; expected some of {adapters.names()}")
        for library in self.libraries:
            status = adapters.availability(library)
            if status.state != "ready":
                raise ValueError(f"{library} cannot run here ({status.state}): {status.reason}")
        wrong = [a for a in self.attacks if a not in ATTACKS]
        if wrong:
            raise ValueError(f"unknown attacks {wrong}; expected some of {list(ATTACKS)}")

    def spec(self, attack: str) -> AttackSpec:
        # The paper's protocol for PGD (alpha = eps/4, random start); FGSM takes no parameters.
        params = {"steps": self.pgd_steps, "random_start": True} if attack == "pgd" else {}
        return AttackSpec(attack, self.eps, self.seed, params)

    def pairs(self) -> list[tuple[str, str]]:
        """(library, attack) in timing order, each attack a library offers (adv-lib has no FGSM)."""
        return [
            (library, attack)
            for attack in self.attacks
            for library in self.libraries
            if adapters.get(library).declaration.accepts(self.spec(attack))
        ]


@dataclass(frozen=True)
class BenchRow:
    library: str
    attack: str
    images_per_second: float  # adapter side
    seconds: float  # adapter side, median per call of `batch` images
    bare_seconds: float  # the library called directly, median per call
    overhead_pct: float  # 100 · (adapter / bare − 1)
    forward_per_image: float
    backward_per_image: float
    ratio_to_reference: float  # adapter seconds / the reference adapter's seconds
    adapter_runs: tuple[float, ...]
    bare_runs: tuple[float, ...]


@dataclass(frozen=True)
class BenchResult:
    config: BenchConfig
    rows: list[BenchRow]
    environment: dict[str, Any]

    def to_json(self) -> str:
        config = {**asdict(self.config), "device": str(self.config.device)}
        return json.dumps(
            {"config": config, "rows": [asdict(r) for r in self.rows], "environment": self.environment},
            indent=1,
        )

    def table(self) -> str:
        c = self.config
        hw = self.environment["hardware"]
        where = (
            hw.get("gpu")
            or f"{hw.get('cpu')} ({hw.get('cpu_cores')} cores, {hw.get('torch_threads')} threads)"
        )
        lines = [
            f"DenseNet-121 at {c.size} px, batch {c.batch}, eps {c.eps * 255:g}/255, PGD {c.pgd_steps} steps, "
            f"{c.device} [{where}]; medians of {c.repeats} calls",
            f"{'library':<13}{'attack':<7}{'images/s':>10}{'s/call':>9}{'bare s':>9}{'overhead':>10}"
            f"{'fwd/img':>9}{'bwd/img':>9}{'vs ref':>8}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.library:<13}{r.attack:<7}{r.images_per_second:>10.1f}{r.seconds:>9.3f}{r.bare_seconds:>9.3f}"
                f"{r.overhead_pct:>+9.1f}%{r.forward_per_image:>9.2f}{r.backward_per_image:>9.2f}"
                f"{r.ratio_to_reference:>7.2f}x"
            )
        return "\n".join(lines)


def bench_model(config: BenchConfig) -> nn.Module:
    """DenseNet-121 (4 classes, normalisation inside) with seeded random weights, as loaded: eval mode."""
    from advparity.model.network import build_densenet121

    torch.manual_seed(config.seed)
    return build_densenet121(weights=None).to(config.device).eval()


def bench_batch(config: BenchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.rand(config.batch, 3, config.size, config.size, generator=generator)
    y = torch.arange(config.batch) % NUM_CLASSES
    return x.to(config.device), y.to(config.device)


# --- the libraries called directly ----------------------------------------------------------------

BareCall = Callable[[nn.Module, torch.Tensor, torch.Tensor, AttackSpec], torch.Tensor]


def _bare_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    from advparity.adapters import reference

    with torch.enable_grad():
        if spec.attack == "fgsm":
            return reference.fgsm(model, x, y, spec.eps)
        return reference.pgd(model, x, y, spec.eps, spec.step_size, spec.steps, spec.random_start, spec.seed)


def _bare_art(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=NUM_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="gpu" if x.is_cuda else "cpu",
    )
    attack: FastGradientMethod | ProjectedGradientDescent
    if spec.attack == "fgsm":
        attack = FastGradientMethod(classifier, norm=np.inf, eps=spec.eps, batch_size=len(x))
    else:
        attack = ProjectedGradientDescent(
            classifier,
            norm=np.inf,
            eps=spec.eps,
            eps_step=spec.step_size,
            max_iter=spec.steps,
            num_random_init=1,
            batch_size=len(x),
            verbose=False,
        )
    return torch.from_numpy(attack.generate(x=x.cpu().numpy(), y=y.cpu().numpy())).to(x.device)


def _bare_torchattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    import torchattacks

    if spec.attack == "fgsm":
        return torchattacks.FGSM(model, eps=spec.eps)(x, y)
    return torchattacks.PGD(model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=True)(
        x, y
    )


def _bare_foolbox(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    import foolbox

    fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
    attack: foolbox.attacks.base.FixedEpsilonAttack
    if spec.attack == "fgsm":
        attack = foolbox.attacks.LinfFastGradientAttack(random_start=False)
    else:
        attack = foolbox.attacks.LinfProjectedGradientDescentAttack(
            abs_stepsize=spec.step_size, steps=spec.steps, random_start=True
        )
    _raw, clipped, _success = attack(fmodel, x, y, epsilons=spec.eps)
    return clipped


def _bare_secml_torch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # The attack object exactly as the adapter builds it (every hyper-parameter set; FGSM on Foolbox's
    # backend, secml-torch having no native one): the bench times the call, not a second mapping.
    from advparity.adapters.secml_torch import make_attack
    from secmlt.models.pytorch.base_pytorch_nn import BasePyTorchClassifier

    attack = make_attack(spec)
    classifier = BasePyTorchClassifier(model=model, preprocessing=None, postprocessing=None, trainer=None)
    # The loader's own generator keeps its base-seed draw off the global RNG, as in the adapter, so the
    # random start is the first draw after the seed.
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=len(x),
        shuffle=False,
        generator=torch.Generator().manual_seed(spec.seed),
    )
    torch.manual_seed(spec.seed)
    x_adv: torch.Tensor = attack(classifier, loader).dataset.tensors[0]
    return x_adv


def _bare_adv_lib(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    from adv_lib.attacks import pgd_linf

    if spec.attack != "pgd":
        raise ValueError(f"adv-lib offers no {spec.attack.upper()}; expected pgd")
    torch.manual_seed(spec.seed)
    x_adv: torch.Tensor = pgd_linf(
        model,
        x,
        y,
        spec.eps,
        targeted=False,
        steps=spec.steps,
        random_init=spec.random_start,
        restarts=1,
        loss_function="ce",
        relative_step_size=spec.step_size / spec.eps,
        absolute_step_size=spec.step_size,
        callback=None,
    )
    return x_adv


def _bare_deeprobust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # `import deeprobust.image` fails with current SciPy: the adapter module calls the attack modules.
    from advparity.adapters.deeprobust import generate

    np.random.seed(spec.seed)  # the PGD random start is drawn from NumPy's global RNG
    return generate(model, x, y, spec)


BARE_CALLS: dict[str, BareCall] = {
    "reference": _bare_reference,
    "art": _bare_art,
    "torchattacks": _bare_torchattacks,
    "foolbox": _bare_foolbox,
    "secml-torch": _bare_secml_torch,
    "adv-lib": _bare_adv_lib,
    "deeprobust": _bare_deeprobust,
}


# --- measuring ------------------------------------------------------------------------------------


def _timed(call: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure_pair(
    adapter_call: Callable[[], object], bare_call: Callable[[], object], repeats: int, device: torch.device
) -> tuple[list[float], list[float]]:
    """Warm both up once, then alternate them ``repeats`` times; the lists of seconds per call."""
    adapter_call()
    bare_call()
    adapter_runs, bare_runs = [], []
    for _ in range(repeats):
        adapter_runs.append(_timed(adapter_call, device))
        bare_runs.append(_timed(bare_call, device))
    return adapter_runs, bare_runs


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    configure_torch(config.device)
    model = bench_model(config)
    x, y = bench_batch(config)
    measured: list[tuple[str, str, list[float], list[float], float, float]] = []
    for library, attack in config.pairs():
        spec = config.spec(attack)
        if progress:
            progress(f"{library} {attack}")
        adapter = adapters.get(library)
        passes: list[tuple[float, float]] = []

        def adapter_call(adapter: Any = adapter, spec: AttackSpec = spec, passes: list[Any] = passes) -> None:
            stats = adapter.run(model, x, y, spec).stats
            passes.append((stats.forward_passes_per_sample, stats.backward_passes_per_sample))

        def bare_call(library: str = library, spec: AttackSpec = spec) -> None:
            BARE_CALLS[library](model, x, y, spec)

        adapter_runs, bare_runs = measure_pair(adapter_call, bare_call, config.repeats, config.device)
        measured.append((library, attack, adapter_runs, bare_runs, *passes[-1]))
    reference = {attack: statistics.median(a) for lib, attack, a, *_ in measured if lib == "reference"}
    rows = []
    for library, attack, adapter_runs, bare_runs, forward, backward in measured:
        seconds, bare = statistics.median(adapter_runs), statistics.median(bare_runs)
        rows.append(
            BenchRow(
                library=library,
                attack=attack,
                images_per_second=config.batch / seconds,
                seconds=seconds,
                bare_seconds=bare,
                overhead_pct=100 * (seconds / bare - 1),
                forward_per_image=forward,
                backward_per_image=backward,
                ratio_to_reference=seconds / reference[attack] if attack in reference else float("nan"),
                adapter_runs=tuple(adapter_runs),
                bare_runs=tuple(bare_runs),
            )
        )
    return BenchResult(config=config, rows=rows, environment=environment())


# --- what a preset's attack phase would cost -------------------------------------------------------


@dataclass(frozen=True)
class PhaseEstimate:
    """Attack-phase seconds of a preset on ``n_images``, per library, from measured images/s."""

    n_images: int
    seconds_by_library: dict[str, float]
    cells: int
    # Libraries of the preset that cannot run here: a run skips them, so they cost nothing.
    not_run: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_library.values())

    def text(self, preset: str) -> str:
        parts = ", ".join(f"{lib} {s / 60:.1f} min" for lib, s in self.seconds_by_library.items())
        skipped = f"; not counted, as they cannot run here: {', '.join(self.not_run)}" if self.not_run else ""
        return (
            f"{preset} preset, attack phase on {self.n_images} images ({self.cells} cells): "
            f"{self.seconds / 60:.1f} min of attacks on this device ({parts}); extrapolated from the rates "
            f"above, without the harness's own judging (about +10 %){skipped}"
        )


def estimate_phase(
    rows: list[BenchRow], attack: AttackConfig, n_images: int, bench_steps: int
) -> PhaseEstimate:
    """Seconds the preset's grid would take, cell by cell, at the measured per-image rates.

    The runner's accounting: the reference computes the whole FGSM grid from one gradient (one FGSM
    call per image); every other FGSM cell and every PGD (eps, seed) cell is one call per image, and a
    PGD call's cost scales with its step count (measured at ``bench_steps``). As in a run, a library
    that cannot run here is skipped and an attack a library does not offer (adv-lib's FGSM) is no cell.
    """
    rate = {(r.library, r.attack): r.images_per_second for r in rows}
    planned = plan_cells(attack)
    ready = {
        library: adapters.availability(library).state == "ready"
        for library in dict.fromkeys(c.library for c in planned)
    }
    cells = [c for c in planned if ready[c.library] and adapters.get(c.library).declaration.accepts(c.spec)]
    missing = sorted({(c.library, c.attack) for c in cells} - set(rate))
    if missing:
        raise ValueError(f"no measurement for {missing}; bench every library and attack the preset uses")
    seconds: dict[str, float] = {}
    for cell in cells:
        if cell.library == REFERENCE and cell.attack == "fgsm":
            per_image = (
                1 / rate[(cell.library, "fgsm")] / len(grid_eps(attack, cell))
            )  # one gradient per grid
        elif cell.attack == "fgsm":
            per_image = 1 / rate[(cell.library, "fgsm")]
        else:
            per_image = 1 / rate[(cell.library, "pgd")] * cell.params.steps / bench_steps
        seconds[cell.library] = seconds.get(cell.library, 0.0) + per_image * n_images
    return PhaseEstimate(
        n_images=n_images,
        seconds_by_library=seconds,
        cells=len(cells),
        not_run=tuple(library for library, ok in ready.items() if not ok),
    )
