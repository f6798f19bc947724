"""Presets: TOML files turned into frozen dataclasses, validated on load.

Over ~400 lines on purpose: every preset section's dataclass and the one TOML reader that checks them key by key.

A preset names everything a run depends on, so a run directory can record it and be reproduced.
Unknown keys are errors (a typo must not silently fall back to a default), and every error names
the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advparity.adapters import attacks
from advparity.adapters.attacks.norms import Norm, check_norm
from advparity.adapters.attacks.step_rule import alpha_fraction
from advparity.harness.kernels import PRESET_DIR, check_isa
from advparity.model.train import TrainConfig

from advparity import adapters

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DATA_SOURCES = ("synthetic", "folder")


class ConfigError(ValueError):
    """A preset that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split."""

    source: str = "synthetic"  # "synthetic": generated into the run; "folder": --data PATH
    synthetic_total: int = 2000  # images generated, in the real set's class shares
    synthetic_seed: int = 0
    split_seed: int = 42  # stratified 80/10/10
    skip_corrupt: bool = False  # leave unreadable images out (and report them) instead of stopping

    def __post_init__(self) -> None:
        if self.source not in DATA_SOURCES:
            raise ValueError(f"expected source in {DATA_SOURCES}, got {self.source!r}")
        if self.synthetic_total < 160:
            # Viral Pneumonia is 6.4 % of the set; below 160 images it has fewer than the 10 that a
            # stratified 80/10/10 split needs to put one in validation and one in test.
            raise ValueError(f"expected synthetic_total >= 160, got {self.synthetic_total}")


_EPS_FRACTION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*([0-9]+)\s*")
_BARE_NUMBER = re.compile(r"\s*[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\s*")


def parse_eps(value: object, norm: Norm = "linf") -> float:
    """An eps with its unit — ``"0.1/255"`` or a float in (0, 1] — as a float in pixel units.

    A bare number above 1 is refused rather than guessed: ``8`` almost always means 8/255, and
    silently reading it as 8 (the whole pixel range, 8 times over) would make every attack trivial.
    An L2 eps is a plain positive number (``0.5``): its budget is spread over every pixel, so it is
    not written in pixel levels and may exceed 1 on a large image.
    """
    if norm == "l2":
        return _parse_l2_eps(value)
    if isinstance(value, bool):
        raise ValueError(f"eps {value!r}: expected a string like '0.1/255' or a float in (0, 1]")
    written = value
    if isinstance(value, str) and _BARE_NUMBER.fullmatch(value):
        value = float(value)  # "0.004" or "8" on a command line: judged as the number it is, below
    if isinstance(value, str):
        match = _EPS_FRACTION.fullmatch(value)
        if match is None:
            raise ValueError(f"eps {value!r}: expected a string like '0.1/255' or a float in (0, 1]")
        if int(match[2]) != 255:
            raise ValueError(
                f"eps {value!r}: the denominator must be 255 (8-bit pixel levels), got {match[2]}"
            )
        eps = float(match[1]) / 255.0
    elif isinstance(value, int | float):
        eps = float(value)
        if math.isfinite(eps) and eps > 1:
            raise ValueError(
                f'eps {written!r} is above 1; eps is in pixel units in (0, 1]: write "{value:g}/255"'
            )
    else:
        raise ValueError(f"eps {value!r}: expected a string like '0.1/255' or a float in (0, 1]")
    if not (math.isfinite(eps) and 0 < eps <= 1):
        raise ValueError(f"eps {written!r}: expected a value in (0, 1] (pixel units)")
    return eps


def _parse_l2_eps(value: object) -> float:
    if isinstance(value, str) and _BARE_NUMBER.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"eps {value!r}: an L2 eps is a plain number in pixel units, e.g. 0.5")
    eps = float(value)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps {value!r}: expected an L2 eps > 0 (pixel units, e.g. 0.5)")
    return eps


def eps_label(eps: float, norm: Norm = "linf") -> str:
    """``0.1/255`` for an L∞ eps of 0.1/255, ``0.5`` for an L2 eps of 0.5: how a person reads and writes eps."""
    if norm == "l2":
        return f"{eps:.9g}"
    return f"{round(eps * 255.0, 6):g}/255"


def _parse_eps_list(values: object, norm: Norm = "linf") -> tuple[float, ...]:
    if not isinstance(values, list | tuple):
        example = '["0.1/255", "1/255"]' if norm == "linf" else "[0.25, 0.5]"
        raise ValueError(f"expected a list of eps values like {example}, got {values!r}")
    parsed = tuple(parse_eps(v, norm) for v in values)
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"eps values repeat: {[eps_label(e, norm) for e in parsed]}")
    return parsed


@dataclass(frozen=True)
class AttackGrid:
    """One ``[[attacks]]`` entry: an attack (a registry name) at every eps of its grid, with the other
    keys of the entry as written (``settings``: checked by the attack's definition, which turns them
    into each cell's parameters). ``libraries``: the entry's key of that name — the libraries that
    run it besides the reference (None: every library of the run)."""

    attack: str
    eps: tuple[float, ...]
    settings: tuple[tuple[str, Any], ...] = ()
    libraries: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        definition = attacks.get(self.attack)  # ValueError naming the registered attacks
        if not self.eps:
            raise ValueError(f"attack {self.attack!r}: expected at least one eps")
        definition.check_preset(dict(self.settings))
        if self.libraries is not None:
            libraries = self.libraries
            if isinstance(libraries, str) or not all(isinstance(lib, str) for lib in libraries):
                raise ValueError(f"expected libraries to be a list of library names, got {libraries!r}")
            unknown = [lib for lib in libraries if lib not in adapters.names()]
            if unknown or not libraries:
                raise ValueError(
                    f"unknown libraries {unknown or libraries!r}; expected some of {adapters.names()}"
                )
            object.__setattr__(self, "libraries", tuple(libraries))

    def runs(self, library: str) -> bool:
        """Whether ``library`` runs this entry (the reference always does: it judges the others)."""
        return self.libraries is None or library == "reference" or library in self.libraries

    @property
    def norm(self) -> Norm:
        """The norm the entry's eps are in (its ``norm`` key; L∞ without one)."""
        norm: Norm = dict(self.settings).get("norm", "linf")
        return norm

    def params(self, eps: float) -> Any:
        """The attack's parameters for the cell at ``eps``."""
        return attacks.get(self.attack).preset_params(dict(self.settings), eps)

    def as_table(self) -> dict[str, Any]:
        """The entry as a preset writes it (L∞ eps as labels, L2 eps as numbers): what a manifest records."""
        eps = [eps_label(e) for e in self.eps] if self.norm == "linf" else list(self.eps)
        chosen = {} if self.libraries is None else {"libraries": list(self.libraries)}
        return {"attack": self.attack, "eps": eps, **dict(self.settings), **chosen}


def attack_grid(table: object) -> AttackGrid:
    """An :class:`AttackGrid` from one ``[[attacks]]`` table; ``ValueError`` naming the attack and its keys."""
    if not isinstance(table, dict):
        raise ValueError(f"expected a table with keys attack, eps, ..., got {table!r}")
    if "attack" not in table:
        raise ValueError(f"missing key 'attack' (one of {attacks.names()})")
    name = table["attack"]
    if not isinstance(name, str) or name not in attacks.names():
        raise ValueError(f"unknown attack {name!r}; expected one of {attacks.names()}")
    if "eps" not in table:
        raise ValueError(f"attack {name!r}: missing key 'eps'")
    settings = tuple(sorted((k, v) for k, v in table.items() if k not in ("attack", "eps", "libraries")))
    # The eps below are read in the entry's norm; a norm key the attack does not define is refused below.
    norm = check_norm(table.get("norm", "linf")) if "norm" in attacks.get(name).preset_keys else "linf"
    return AttackGrid(name, _parse_eps_list(table["eps"], norm), settings, table.get("libraries"))


def _parse_attack_grids(values: object) -> tuple[AttackGrid, ...]:
    if not isinstance(values, list | tuple):
        raise ValueError(f"expected a list of [[attacks]] tables, got {values!r}")
    grids = []
    for i, table in enumerate(values):
        if isinstance(table, AttackGrid):
            grids.append(table)
            continue
        try:
            grids.append(attack_grid(table))
        except ValueError as err:
            raise ValueError(f"[[attacks]] entry {i + 1}: {err}") from err
    return tuple(grids)


# Samples per cell the invariants run on (AttackConfig.invariant_samples): two is the fewest that a
# reversed batch reorders.
INVARIANT_SAMPLES = 2


def _check_sample_count(key: str, value: int, zero_means: str) -> None:
    """``ValueError`` unless ``value`` is >= 0; a bool is refused (TOML's true is not a count)."""
    if isinstance(value, bool) or value < 0:
        raise ValueError(f"expected {key} >= 0 (0 = {zero_means}), got {value!r}")


@dataclass(frozen=True)
class AttackConfig:
    """The attack grid: every library x attack x eps (x seed) cell of a run.

    Attacks come as ``attacks`` (a preset's ``[[attacks]]`` tables) and, as a documented shorthand
    that existing presets and baselines use, ``fgsm_eps`` and ``pgd_eps``/``pgd_steps``/``pgd_alpha``/
    ``pgd_random_start``; :attr:`grids` holds both.
    """

    libraries: tuple[str, ...] = ("reference", "art", "torchattacks", "foolbox")
    fgsm_eps: tuple[float, ...] = field(default=(), metadata={"parse": _parse_eps_list})
    pgd_eps: tuple[float, ...] = field(default=(), metadata={"parse": _parse_eps_list})
    pgd_steps: int = 10
    pgd_alpha: str = "eps/4"  # the paper's step rule
    pgd_random_start: bool = True
    # Random-start PGD is judged against the reference's own seed-to-seed spread, so the reference
    # runs every seed here; each library seed is paired with the reference seed of the same value.
    reference_seeds: tuple[int, ...] = (0, 1)
    library_seeds: tuple[int, ...] = (0,)
    test_limit: int = 0  # attack only the first N test images (in a fixed shuffled order); 0 = all
    batch_size: int = 64  # images per attack call
    attacks: tuple[AttackGrid, ...] = field(default=(), metadata={"parse": _parse_attack_grids})
    # The invariants (adapters/invariants.py) run on every cell, on this many of its first batch's
    # samples: a fixed subset bounds their cost (two or three calls on these samples). 0: none.
    invariant_samples: int = INVARIANT_SAMPLES
    # The guaranteed-adversarial test (harness/guaranteed.py) on this many of the first test images,
    # each attack variant at its largest eps, every library of the run: RUN_DIR/guaranteed.json. 0: off.
    guaranteed_samples: int = 0

    def __post_init__(self) -> None:
        known = adapters.names()
        unknown = [lib for lib in self.libraries if lib not in known]
        if unknown:
            raise ValueError(f"unknown library {unknown}; expected some of {known}")
        if "reference" not in self.libraries:
            raise ValueError(
                "libraries must include 'reference': it is the arbiter every library is compared to"
            )
        if len(set(self.libraries)) != len(self.libraries):
            raise ValueError(f"libraries repeat: {list(self.libraries)}")
        object.__setattr__(self, "attacks", _parse_attack_grids(self.attacks))
        for i, grid in enumerate(self.attacks):
            outside = [lib for lib in grid.libraries or () if lib not in self.libraries]
            if outside:
                raise ValueError(
                    f"[[attacks]] entry {i + 1} ({grid.attack}): libraries {outside} are not among the run's "
                    f"libraries {list(self.libraries)}"
                )
        if not self.fgsm_eps and not self.pgd_eps and not self.attacks:
            raise ValueError(
                "expected at least one attack: an [[attacks]] table, or eps in fgsm_eps or pgd_eps"
            )
        if self.pgd_steps < 1:
            raise ValueError(f"expected pgd_steps >= 1, got {self.pgd_steps}")
        self.alpha_fraction  # noqa: B018 - validates the rule
        cells = [(g.attack, e, g.params(e)) for g in self.grids for e in g.eps]
        repeated = sorted(
            {
                f"{a} @ {eps_label(e, attacks.get(a).norm_of(p))}"
                for a, e, p in cells
                if cells.count((a, e, p)) > 1
            }
        )
        if repeated:
            raise ValueError(f"the same attack is listed twice: {repeated}")
        if not self.reference_seeds or not self.library_seeds:
            raise ValueError("expected at least one seed in reference_seeds and in library_seeds")
        missing = sorted(set(self.library_seeds) - set(self.reference_seeds))
        if missing:
            raise ValueError(
                f"library_seeds {missing} have no reference run to be paired with; add them to reference_seeds"
            )
        if any(seed < 0 for seed in (*self.reference_seeds, *self.library_seeds)):
            raise ValueError("expected seeds >= 0")
        if self.test_limit < 0:
            raise ValueError(f"expected test_limit >= 0 (0 = all), got {self.test_limit}")
        if self.batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got {self.batch_size}")
        _check_sample_count("guaranteed_samples", self.guaranteed_samples, "no guaranteed-adversarial test")
        _check_sample_count("invariant_samples", self.invariant_samples, "no invariant checks")

    @property
    def alpha_fraction(self) -> float:
        """alpha / eps from the shorthand's ``"eps/K"`` rule."""
        try:
            return alpha_fraction(self.pgd_alpha)
        except ValueError:
            raise ValueError(
                f'expected pgd_alpha like "eps/4" (a step no larger than eps), got {self.pgd_alpha!r}'
            ) from None

    @property
    def grids(self) -> tuple[AttackGrid, ...]:
        """Every attack of the run: the shorthand's FGSM and PGD grids first, then ``attacks``."""
        shorthand = []
        if self.fgsm_eps:
            shorthand.append(AttackGrid("fgsm", self.fgsm_eps))
        if self.pgd_eps:
            settings = (
                ("alpha", self.pgd_alpha),
                ("random_start", self.pgd_random_start),
                ("steps", self.pgd_steps),
            )
            shorthand.append(AttackGrid("pgd", self.pgd_eps, settings))
        return (*shorthand, *self.attacks)

    def experiment(self) -> dict[str, Any]:
        """The grid as a run's manifest records it (and hashes): eps as labels. A config without
        ``[[attacks]]`` tables is written exactly as before they existed, so its hash is unchanged."""
        recorded = dataclasses.asdict(self)
        recorded["fgsm_eps"] = [eps_label(e) for e in self.fgsm_eps]
        recorded["pgd_eps"] = [eps_label(e) for e in self.pgd_eps]
        if self.attacks:
            recorded["attacks"] = [grid.as_table() for grid in self.attacks]
        else:
            del recorded["attacks"]
        if self.invariant_samples == INVARIANT_SAMPLES:
            # Likewise: a config at the default is hashed as before the key existed.
            del recorded["invariant_samples"]
        # It changes no cell (guaranteed.json records what it answers), so a finished run can take it.
        del recorded["guaranteed_samples"]
        return recorded


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    data: DataConfig
    train: TrainConfig
    attack: AttackConfig
    path: Path | None = None  # the file it was read from
    # Torch CPU threads for training and attacks (0: one per core). CPU float reductions are split by
    # thread, so the thread count changes round-off and, after 4 epochs, predictions: a preset whose
    # numbers are a regression baseline fixes it, so a machine with more or fewer cores gets them too.
    cpu_threads: int = 0
    # The CPU kernel family (harness/kernels.py), for the same reason: AVX-512 kernels round differently
    # from AVX2 ones. None: whatever the CPU offers (fastest, but the last bits depend on the machine).
    cpu_isa: str | None = None


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def resolve_preset_path(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"preset file {str(candidate)!r} does not exist")
        return candidate
    path = PRESET_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown preset {str(name_or_path)!r}; expected one of {preset_names()} or a .toml path"
        )
    return path


def load_preset(name_or_path: str | Path) -> Preset:
    """Read and validate a preset by name (``harness/presets/<name>.toml``) or path."""
    path = resolve_preset_path(name_or_path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"preset {str(path)!r} is not UTF-8 text (byte {err.start}): a TOML file is"
        ) from err
    except OSError as err:
        raise ConfigError(f"cannot read preset {str(path)!r}: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return preset_from_dict(table, source=str(path), path=path)


def preset_from_dict(table: dict[str, Any], source: str = "<dict>", path: Path | None = None) -> Preset:
    allowed = {"name", "description", "cpu_threads", "cpu_isa", "data", "train", "attack", "attacks"}
    _reject_unknown(table, allowed, source, "")
    if "attacks" in table and not isinstance(table["attacks"], list):
        raise ConfigError(
            f"{source}: [attacks] must be an array of tables, one per attack: write [[attacks]] "
            "(the run's libraries, seeds and limits go in [attack])"
        )
    for key in ("name", "data", "train", "attack"):
        if key not in table:
            raise ConfigError(f"{source}: missing key {key!r}")
    data = _build(DataConfig, table["data"], source, "data")
    train_table = dict(table["train"]) if isinstance(table["train"], dict) else table["train"]
    if isinstance(train_table, dict) and train_table.get("weights") == "none":
        train_table["weights"] = None  # TOML has no null; "none" means train from scratch
    train = _build(TrainConfig, train_table, source, "train")
    cpu_threads = _expect(table.get("cpu_threads", 0), int, source, "cpu_threads")
    if isinstance(cpu_threads, bool) or cpu_threads < 0:
        raise ConfigError(
            f"{source}: expected cpu_threads to be an integer >= 0 (0: one per core), got {cpu_threads!r}"
        )
    return Preset(
        name=_expect(table["name"], str, source, "name"),
        description=_expect(table.get("description", ""), str, source, "description"),
        data=data,
        train=train,
        attack=_build(AttackConfig, _with_attack_tables(table, source), source, "attack"),
        path=path,
        cpu_threads=cpu_threads,
        cpu_isa=_cpu_isa(table.get("cpu_isa"), source),
    )


def _with_attack_tables(table: dict[str, Any], source: str) -> object:
    """The ``[attack]`` table with the preset's top-level ``[[attacks]]`` tables in it."""
    attack = table["attack"]
    if "attacks" not in table or not isinstance(attack, dict):
        return attack
    if "attacks" in attack:
        raise ConfigError(f"{source}: [[attacks]] given twice, at the top level and inside [attack]")
    return {**attack, "attacks": table["attacks"]}


def _cpu_isa(value: object, source: str) -> str | None:
    try:
        return check_isa(value, f"{source}: cpu_isa")
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _reject_unknown(table: dict[str, Any], allowed: set[str], source: str, section: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        where = f"[{section}] " if section else ""
        raise ConfigError(f"{source}: unknown key(s) {where}{unknown}; expected some of {sorted(allowed)}")


def attack_config_from_manifest(attack: dict[str, Any], source: str = "manifest") -> AttackConfig:
    """The attack grid a run recorded in its manifest (``config.attack``), as an :class:`AttackConfig`."""
    config: AttackConfig = _build(AttackConfig, dict(attack), source, "attack")
    return config


def _build(cls: type, table: object, source: str, section: str) -> Any:
    """Construct dataclass ``cls`` from a TOML table, checking keys and types."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{section}] must be a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _reject_unknown(table, set(fields), source, section)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, spec in fields.items():
        key = f"{section}.{name}"
        if name not in table:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing key {key!r}")
            continue
        parse = spec.metadata.get("parse")
        if parse is not None:
            try:
                values[name] = parse(table[name])
            except ValueError as err:
                if name == "attacks":  # the message names the [[attacks]] entry and the attack
                    raise ConfigError(f"{source}: {err}") from err
                raise ConfigError(f"{source}: key {key!r}: {err}") from err
        else:
            values[name] = _expect(table[name], hints[name], source, key)
    try:
        return cls(**values)
    except ValueError as err:
        raise ConfigError(f"{source}: [{section}] {err}") from err


def _expect(value: object, hint: Any, source: str, key: str) -> Any:
    """``value`` if it has the type ``hint`` allows (ints are accepted for floats)."""
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: key {key!r} expected a list, got {value!r}")
        (item,) = {arg for arg in typing.get_args(hint) if arg is not Ellipsis}
        return tuple(_expect(v, item, source, f"{key}[{i}]") for i, v in enumerate(value))
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    for option in options:
        if option is type(None) and value is None:
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (str, bool) and isinstance(value, option):
            return value
    names = " or ".join("none" if o is type(None) else o.__name__ for o in options)
    raise ConfigError(f"{source}: key {key!r} expected {names}, got {value!r}")
