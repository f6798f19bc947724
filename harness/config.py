"""Presets: TOML files turned into frozen dataclasses, validated on load.

A preset names everything a run depends on, so a run directory can record it and be reproduced.
Unknown keys are errors (a typo must not silently fall back to a default), and every error names
the file and the key.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.train import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"
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


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    data: DataConfig
    train: TrainConfig
    path: Path | None = None  # the file it was read from


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
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    return preset_from_dict(table, source=str(path), path=path)


def preset_from_dict(table: dict[str, Any], source: str = "<dict>", path: Path | None = None) -> Preset:
    allowed = {"name", "description", "data", "train"}
    _reject_unknown(table, allowed, source, "")
    for key in ("name", "data", "train"):
        if key not in table:
            raise ConfigError(f"{source}: missing key {key!r}")
    data = _build(DataConfig, table["data"], source, "data")
    train_table = dict(table["train"]) if isinstance(table["train"], dict) else table["train"]
    if isinstance(train_table, dict) and train_table.get("weights") == "none":
        train_table["weights"] = None  # TOML has no null; "none" means train from scratch
    train = _build(TrainConfig, train_table, source, "train")
    return Preset(
        name=_expect(table["name"], str, source, "name"),
        description=_expect(table.get("description", ""), str, source, "description"),
        data=data,
        train=train,
        path=path,
    )


def _reject_unknown(table: dict[str, Any], allowed: set[str], source: str, section: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        where = f"[{section}] " if section else ""
        raise ConfigError(f"{source}: unknown key(s) {where}{unknown}; expected some of {sorted(allowed)}")


def _build(cls: type, table: object, source: str, section: str) -> Any:
    """Construct dataclass ``cls`` from a TOML table, checking keys and types."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{section}] must be a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _reject_unknown(table, set(fields), source, section)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        key = f"{section}.{name}"
        if name not in table:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing key {key!r}")
            continue
        values[name] = _expect(table[name], hints[name], source, key)
    try:
        return cls(**values)
    except ValueError as err:
        raise ConfigError(f"{source}: [{section}] {err}") from err


def _expect(value: object, hint: Any, source: str, key: str) -> Any:
    """``value`` if it has the type ``hint`` allows (ints are accepted for floats)."""
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
