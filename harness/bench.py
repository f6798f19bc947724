"""``python -m advparity bench``: how fast each library's attacks run on DenseNet-121, and what our
adapter adds on top of calling the library directly.

Over ~500 lines on purpose: one bare call per library, timed beside the same library's guarded call.

What is timed are *bench entries* (:data:`ENTRIES`): a registry attack name, with ``-l2`` appended for
its L2 form — ``fgsm``, ``pgd``, ``bim``, ``mifgsm``, ``fgsm-l2``, ``pgd-l2``, ``apgd`` (APGD-CE). An entry is what
``--attacks`` takes and what a row's ``attack`` holds (stable whatever ``--steps`` is); the row's
``label`` is the report's name for the spec it ran (``FGSM``, ``PGD-10``, ``BIM-10``, ``MI-FGSM-10``,
``FGM-L2``, ``PGD-L2-10``, ``APGD-CE-10``), and the table prints the label. :meth:`BenchConfig.spec` builds every
entry's spec, in one place: eps (``eps_l2``, a plain number such as 0.5, for the L2 entries), seed,
``pgd_steps`` for each iterative attack, alpha = eps/4 (the attacks' default rule), a random start for
PGD, decay 1 for MI-FGSM. By default only FGSM and PGD (L∞) are timed, the paper's two attacks and
the presets' bulk: the others (each of BIM, MI-FGSM and PGD-L2 costs about what PGD does, per library
that offers it) are opt-in with ``--attacks``, so that the default run stays a few minutes on 2 cores.

By default every library that can run here (``adapters.runnable()``) is timed; an entry a library does
not offer (``declaration.refusal(spec)`` is not '': adv-lib has no FGSM, secml-torch no BIM and no
L2) has no row. Each library × entry is timed two ways on
the same batch:

* **adapter**: ``adapters.get(library).run(model, x, y, spec)`` — what the harness calls, with its
  validation, model-state snapshot and restore, pass counting and output checks;
* **bare**: the library called directly (:data:`BARE_CALLS`), on the same library object the adapter
  builds for that spec — the adapter module's own builder where it has one (ART, torchattacks,
  Foolbox, secml-torch, CleverHans, DeepRobust, the reference), so the two cannot drift apart, and
  an explicit call with every hyper-parameter set where it has none (adv-lib); model put in eval
  mode once beforehand, the library's global RNG seeded as the adapter seeds it.

The calls alternate adapter, bare, adapter, bare, … after one warm-up call each, so drift in the
machine's speed (other processes, CPU frequency) falls on both alike; each side's time is the median
over ``repeats``. Images/s, passes per image (counted by the adapter's hooks, not assumed) and the
ratio to the reference's adapter time come from the adapter side; ``overhead`` is adapter / bare − 1.

The model is DenseNet-121 with random (seeded) weights: an attack's cost does not depend on what the
weights are, and the benchmark then needs no checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from advparity.adapters import attacks as attack_registry
from advparity.adapters.spec import AttackSpec
from advparity.harness.config import AttackConfig
from advparity.harness.environment import configure_torch, environment
from advparity.harness.plan import REFERENCE, grid_eps, plan_cells
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advparity import adapters

# Bench entry -> (registry attack, its parameters besides eps, seed and steps). An iterative attack's
# ``steps`` is the config's ``pgd_steps``; alpha is left to the attacks' rule, eps/4, in both norms.
_ENTRIES: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "fgsm": ("fgsm", {}),
    "pgd": ("pgd", {"random_start": True}),  # the paper's protocol: alpha = eps/4, random start
    "bim": ("bim", {}),
    "mifgsm": ("mifgsm", {"decay": 1.0}),  # the paper's mu
    "fgsm-l2": ("fgsm", {"norm": "l2"}),
    "pgd-l2": ("pgd", {"norm": "l2", "random_start": True}),
    # The original's APGD-CE with one restart, at the config's steps (a preset's 100 cost 10x).
    "apgd": ("apgd", {"loss": "ce", "restarts": 1, "rho": 0.75}),
}
ENTRIES: tuple[str, ...] = tuple(_ENTRIES)
# FGSM and PGD (L∞): cheap enough for a default run of a few minutes on 2 cores; the rest via --attacks.
DEFAULT_ATTACKS: tuple[str, ...] = ("fgsm", "pgd")
NUM_CLASSES = 4


def entry_of(spec: AttackSpec) -> str:
    """The bench entry that times ``spec``'s attack in ``spec``'s norm (``pgd-l2`` for an L2 PGD)."""
    return spec.attack if spec.norm == "linf" else f"{spec.attack}-{spec.norm}"


@dataclass(frozen=True)
class BenchConfig:
    size: int = 64  # image side, pixels
    # Images per attack call: the demo and paper presets attack 64 at a time. The adapter's fixed cost
    # per call (~20 ms of state snapshot/restore on DenseNet-121) is 2-3 % of a 64-image FGSM on 2 cores.
    batch: int = 64
    repeats: int = 3  # timed calls per side, after one warm-up call
    eps: float = 1 / 255  # L∞ entries
    eps_l2: float = 0.5  # L2 entries: a plain number in pixel units (0.0045 RMS per value at 64 px)
    pgd_steps: int = 10  # steps of every iterative entry (PGD, BIM, MI-FGSM; L∞ and L2), alpha = eps/4
    # Every library that can run here, read when the config is made (optional extras may be missing).
    libraries: tuple[str, ...] = field(default_factory=lambda: tuple(adapters.runnable()))
    attacks: tuple[str, ...] = DEFAULT_ATTACKS  # bench entries, some of ENTRIES
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
        wrong = [a for a in self.attacks if a not in _ENTRIES]
        if wrong:
            raise ValueError(f"unknown attacks {wrong}; expected some of {list(ENTRIES)}")
        for entry in ENTRIES:
            self.spec(entry)  # eps or eps_l2 outside its norm's range is refused here, not mid-run

    def spec(self, attack: str) -> AttackSpec:
        """The spec bench entry ``attack`` runs: every entry's spec is built here and nowhere else."""
        if attack not in _ENTRIES:
            raise ValueError(f"unknown attack {attack!r}; expected one of {list(ENTRIES)}")
        name, fixed = _ENTRIES[attack]
        params = dict(fixed)
        if "steps" in {f.name for f in dataclasses.fields(attack_registry.get(name).params)}:
            params["steps"] = self.pgd_steps
        eps = self.eps_l2 if params.get("norm") == "l2" else self.eps
        return AttackSpec(name, eps, self.seed, params)

    def pairs(self) -> list[tuple[str, str]]:
        """(library, entry) in timing order: each entry a library computes (its refusal is '')."""
        return [
            (library, attack)
            for attack in self.attacks
            for library in self.libraries
            if adapters.get(library).declaration.refusal(self.spec(attack)) == ""
        ]


@dataclass(frozen=True)
class BenchRow:
    library: str
    attack: str  # the bench entry (``pgd-l2``): what --attacks takes
    label: str  # the report's name for the spec it ran (``PGD-L2-10``): what the table prints
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
        l2 = f", L2 eps {c.eps_l2:g}" if any(c.spec(a).norm == "l2" for a in c.attacks) else ""
        width = max([len("attack"), *(len(r.label) for r in self.rows)]) + 1
        lines = [
            f"DenseNet-121 at {c.size} px, batch {c.batch}, eps {c.eps * 255:g}/255{l2}, {c.pgd_steps}-step "
            f"iterative attacks, {c.device} [{where}]; medians of {c.repeats} calls",
            f"{'library':<13}{'attack':<{width}}{'images/s':>10}{'s/call':>9}{'bare s':>9}{'overhead':>10}"
            f"{'fwd/img':>9}{'bwd/img':>9}{'vs ref':>8}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.library:<13}{r.label:<{width}}{r.images_per_second:>10.1f}{r.seconds:>9.3f}"
                f"{r.bare_seconds:>9.3f}{r.overhead_pct:>+9.1f}%{r.forward_per_image:>9.2f}"
                f"{r.backward_per_image:>9.2f}{r.ratio_to_reference:>7.2f}x"
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
#
# Each builds the library object its adapter builds for the spec — with the adapter module's own
# builder, looked up by the spec's attack (so that no second mapping of hyper-parameters can drift
# from the adapter's) — and calls it the way the library's documentation shows, seeding the global
# RNG the library draws its random start from. A spec the library does not offer (its declaration's
# refusal, checked by :func:`_offered` before the call) is a ValueError, never another attack run in
# its place (secml-torch's builder, say, would build its L∞ FGSM for an L2 spec).

BareCall = Callable[[nn.Module, torch.Tensor, torch.Tensor, AttackSpec], torch.Tensor]


def _builder(library: str, builders: Mapping[str, Any], spec: AttackSpec) -> Any:
    build = builders.get(spec.attack)
    if build is None:
        raise ValueError(f"{library} offers no {spec.attack.upper()}; expected one of {list(builders)}")
    return build


def _bare_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # The definition's computation the reference adapter runs (its own seeded start, summed loss).
    from advparity.adapters import reference

    with torch.enable_grad():
        return reference.compute(model, x, y, spec).detach()


def _bare_art(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    from advparity.adapters import art

    # The classifier and the attack as the adapter builds them (every argument set).
    builders = {"fgsm": art._fgsm, "pgd": art._pgd, "bim": art._bim, "mifgsm": art._mifgsm, "apgd": art._apgd}
    build = _builder("art", builders, spec)
    # ART places the model on the current CUDA device (as in the adapter).
    on_device = torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
    with on_device:
        attack = build(art._classifier(model, x, NUM_CLASSES), x, spec)
        np.random.seed(spec.seed)  # ART draws its random start from NumPy's global RNG
        x_adv = attack.generate(x=x.cpu().numpy(), y=y.cpu().numpy())
    return torch.from_numpy(x_adv).to(device=x.device, dtype=x.dtype)


def _bare_torchattacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    from advparity.adapters import torchattacks as ta

    # FGM-L2 is PGDL2 with one step of eps there, as in the adapter.
    builders = {"fgsm": ta._fgsm, "pgd": ta._pgd, "bim": ta._bim, "mifgsm": ta._mifgsm, "apgd": ta._apgd}
    attack = _builder("torchattacks", builders, spec)(model, spec)
    torch.manual_seed(spec.seed)  # the random starts are drawn from torch's global RNG
    x_adv: torch.Tensor = attack(x, y)
    return x_adv


def _bare_foolbox(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    from advparity.adapters import foolbox as fb

    builders = {"fgsm": fb._fgsm, "pgd": fb._pgd, "bim": fb._bim, "mifgsm": fb._mifgsm}
    attack = _builder("foolbox", builders, spec)(spec)
    # Foolbox as the adapter module imported it (with GitPython quieted and its warning filtered).
    fmodel = fb.foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
    torch.manual_seed(spec.seed)  # the random start is drawn from torch's global RNG
    _raw, clipped, _success = attack(fmodel, x, y, epsilons=spec.eps)
    x_adv: torch.Tensor = clipped
    return x_adv


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
    from advparity.adapters import adv_lib

    # APGD: the adapter's own call (every argument set, the global RNG seeded around it).
    builders = {"pgd": _bare_adv_lib_pgd, "apgd": lambda *args: adv_lib._apgd(*args, NUM_CLASSES)}
    x_adv: torch.Tensor = _builder("adv-lib", builders, spec)(model, x, y, spec)
    return x_adv


def _bare_adv_lib_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # The adapter has no builder to reuse (its offer calls pgd_linf inline): every argument set here.
    from adv_lib.attacks import pgd_linf

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


def _bare_cleverhans(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # FGM and PGD in L∞ and L2, every argument set, as the adapter calls them.
    from advparity.adapters.cleverhans import generate

    torch.manual_seed(spec.seed)  # the PGD random start is drawn from torch's global RNG
    return generate(model, x, y, spec)


def _bare_autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
    # The original's APGD as the adapter builds it; perturb seeds torch's global RNG itself.
    from advparity.adapters.autoattack import make_apgd

    x_adv: torch.Tensor = make_apgd(model, spec, x.device).perturb(x, y)
    return x_adv


def _offered(library: str, call: BareCall) -> BareCall:
    """``call``, refusing (ValueError) a spec ``library``'s declaration refuses: a dict lookup or two,
    nothing next to an attack."""

    def bare(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec) -> torch.Tensor:
        refusal = adapters.get(library).declaration.refusal(spec)
        if refusal:
            raise ValueError(f"{library} {refusal}")
        return call(model, x, y, spec)

    return bare


BARE_CALLS: dict[str, BareCall] = {
    library: _offered(library, call)
    for library, call in {
        "reference": _bare_reference,
        "art": _bare_art,
        "torchattacks": _bare_torchattacks,
        "foolbox": _bare_foolbox,
        "secml-torch": _bare_secml_torch,
        "adv-lib": _bare_adv_lib,
        "deeprobust": _bare_deeprobust,
        "cleverhans": _bare_cleverhans,
        "autoattack": _bare_autoattack,
    }.items()
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


def run_bench(
    config: BenchConfig, progress: Callable[[str], None] | None = None, model: nn.Module | None = None
) -> BenchResult:
    """Time every pair of ``config`` on ``model`` (default :func:`bench_model`, what the numbers are
    quoted for; a test of the rows and their passes can hand in a small one)."""
    configure_torch(config.device)
    model = bench_model(config) if model is None else model.to(config.device).eval()
    x, y = bench_batch(config)
    measured: list[tuple[str, str, list[float], list[float], float, float]] = []
    for library, attack in config.pairs():
        spec = config.spec(attack)
        if progress:
            progress(f"{library} {spec.label}")
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
                label=config.spec(attack).label,
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


def preset_entries(attack: AttackConfig) -> tuple[str, ...]:
    """The bench entries a preset's cells are estimated from (:func:`estimate_phase`), in plan order:
    each cell's own entry where there is one, else its attack's L∞ entry."""
    return tuple(
        dict.fromkeys(
            entry_of(c.spec) if entry_of(c.spec) in _ENTRIES else c.attack for c in plan_cells(attack)
        )
    )


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

    The runner's accounting: the reference computes a whole grid of an attack that shares its gradient
    across eps (FGSM without a random start) from one gradient (one call per image); every other cell
    is one call per image, and an iterative attack's cost scales with its step count (measured at
    ``bench_steps``). A cell's rate is its own entry's (``pgd-l2`` for an L2 PGD cell) where that was
    benched, else its attack's L∞ entry's (an attack's cost hardly depends on its norm). As in a run, a
    library that cannot run here is skipped and an attack a library does not offer (adv-lib's FGSM) is
    no cell.
    """
    rate = {(r.library, r.attack): r.images_per_second for r in rows}
    planned = plan_cells(attack)
    ready = {
        library: adapters.availability(library).state == "ready"
        for library in dict.fromkeys(c.library for c in planned)
    }
    cells = [c for c in planned if ready[c.library] and adapters.get(c.library).declaration.accepts(c.spec)]

    def measured_as(cell: Any) -> tuple[str, str]:
        own = (cell.library, entry_of(cell.spec))
        return own if own in rate else (cell.library, cell.attack)

    missing = sorted({measured_as(c) for c in cells} - set(rate))
    if missing:
        needed = ",".join(dict.fromkeys(a for _, a in missing))
        raise ValueError(
            f"no measurement for {missing}; bench every library and attack the preset uses "
            f"(--attacks {needed} besides the others)"
        )
    seconds: dict[str, float] = {}
    for cell in cells:
        per_image = 1 / rate[measured_as(cell)]
        if cell.library == REFERENCE and cell.definition.shares_gradient_across_eps(cell.params):
            per_image /= len(grid_eps(attack, cell))  # one gradient per grid
        elif getattr(cell.params, "steps", None) is not None:
            per_image *= cell.params.steps / bench_steps
        seconds[cell.library] = seconds.get(cell.library, 0.0) + per_image * n_images
    return PhaseEstimate(
        n_images=n_images,
        seconds_by_library=seconds,
        cells=len(cells),
        not_run=tuple(library for library, ok in ready.items() if not ok),
    )
