"""The [[attacks]] preset grammar: one table per attack, keys checked by the attack's definition, and the
old fgsm_*/pgd_* shorthand planning the same cells under the config hash it always had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from advparity.harness.config import ConfigError, attack_config_from_manifest, load_preset
from advparity.harness.plan import plan_cells
from advparity.harness.store import config_hash

HEAD = """
name = "custom"
[data]
[train]
[attack]
libraries = ["reference", "art"]
"""

TABLES = (
    HEAD
    + """
[[attacks]]
attack = "fgsm"
eps = ["0.1/255", "1/255"]

[[attacks]]
attack = "pgd"
eps = ["1/255"]
steps = 3
alpha = "eps/4"
random_start = true
"""
)

SHORTHAND = (
    HEAD
    + """fgsm_eps = ["0.1/255", "1/255"]
pgd_eps = ["1/255"]
pgd_steps = 3
"""
)


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "preset.toml"
    path.write_text(text, encoding="utf-8")
    return load_preset(path)


def test_tables_and_shorthand_plan_the_same_cells(tmp_path: Path) -> None:
    tables = _load(tmp_path, TABLES).attack  # type: ignore[attr-defined]
    shorthand = _load(tmp_path, SHORTHAND).attack  # type: ignore[attr-defined]
    assert plan_cells(tables) == plan_cells(shorthand)
    keys = [cell.key for cell in plan_cells(shorthand)]
    assert keys[0] == "fgsm__eps00000.100000-255__steps1__rs0__seed0__reference"
    assert "pgd__eps00001.000000-255__steps3__rs1__seed1__reference" in keys
    # PGD's alpha rule becomes the step at each eps; the seeded attack runs every seed.
    pgd = [cell for cell in plan_cells(tables) if cell.attack == "pgd"]
    assert {cell.params.alpha for cell in pgd} == {0.25 / 255}
    assert sorted((cell.library, cell.seed) for cell in pgd) == [
        ("art", 0),
        ("reference", 0),
        ("reference", 1),
    ]


# The shipped presets' attack grids as hashed by advparity before [[attacks]] existed (computed with that
# release's AttackConfig): a run directory or baseline made then is the same experiment now.
HASHES_BEFORE_TABLES = {
    "ci": "72721a80ec5d87ef65cef6a1525f9a1c8720c9cf9898394945736c4fa5a48eaf",
    "demo": "4c62b08cfeca7d566e228ee9830d6ea00501b08e8c634eeb77eee8e86e8c9365",
    "paper": "a39b3ca2e761a64f59272d09026b7339cc831b633dfae833ba62b29d3e716bd5",
    "smoke": "db2251824eee39750f62f1ed1e9629412263ea6226e2ad731b3798d265ff46d3",
}
# The fields that release recorded: the shorthand records exactly these, nothing more.
LEGACY_FIELDS = [
    "libraries", "fgsm_eps", "pgd_eps", "pgd_steps", "pgd_alpha", "pgd_random_start",
    "reference_seeds", "library_seeds", "test_limit", "batch_size",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(HASHES_BEFORE_TABLES))
def test_the_shorthand_keeps_its_config_hash(name: str) -> None:
    recorded = load_preset(name).attack.experiment()
    assert sorted(recorded) == sorted(LEGACY_FIELDS)
    assert config_hash(recorded) == HASHES_BEFORE_TABLES[name]


def test_the_experiment_round_trips_through_the_manifest(tmp_path: Path) -> None:
    config = _load(tmp_path, TABLES).attack  # type: ignore[attr-defined]
    recorded = json.loads(json.dumps(config.experiment()))
    assert recorded["attacks"] == [
        {"attack": "fgsm", "eps": ["0.1/255", "1/255"]},
        {"attack": "pgd", "eps": ["1/255"], "alpha": "eps/4", "random_start": True, "steps": 3},
    ]
    again = attack_config_from_manifest(recorded)
    assert plan_cells(again) == plan_cells(config)
    assert config_hash(again.experiment()) == config_hash(config.experiment())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'attack = "pgd"\neps = ["1/255"]\ndecay = 1.0',
            r"attack 'pgd' has no key\(s\) \['decay'\]; expected some of \['attack', 'eps', 'steps', 'alpha', 'random_start'\]",
        ),
        (
            'attack = "fgsm"\neps = ["1/255"]\nsteps = 3',
            r"attack 'fgsm' has no key\(s\) \['steps'\]; expected some of \['attack', 'eps'\]",
        ),
        ('attack = "apgd"\neps = ["1/255"]', r"unknown attack 'apgd'; expected one of \['fgsm', 'pgd'"),
        ('eps = ["1/255"]', r"missing key 'attack'"),
        ('attack = "pgd"', r"attack 'pgd': missing key 'eps'"),
        ('attack = "pgd"\neps = ["1/255"]\nsteps = 0', r"expected steps to be an integer >= 1, got 0"),
        ('attack = "pgd"\neps = ["1/255"]\nalpha = "eps/0.5"', r'expected alpha like "eps/4"'),
        (
            'attack = "pgd"\neps = ["1/255"]\nrandom_start = "yes"',
            r"expected random_start to be True or False",
        ),
        ('attack = "pgd"\neps = [8]', r'write "8/255"'),
    ],
)
def test_a_bad_table_names_the_entry_the_attack_and_its_keys(
    tmp_path: Path, table: str, message: str
) -> None:
    text = HEAD + '[[attacks]]\nattack = "fgsm"\neps = ["1/255"]\n\n[[attacks]]\n' + table + "\n"
    with pytest.raises(ConfigError, match=message) as err:
        _load(tmp_path, text)
    assert "preset.toml" in str(err.value) and "[[attacks]] entry 2" in str(err.value)


def test_the_same_attack_twice_is_refused(tmp_path: Path) -> None:
    text = SHORTHAND + '\n[[attacks]]\nattack = "pgd"\neps = ["1/255"]\nsteps = 3\n'
    with pytest.raises(ConfigError, match=r"the same attack is listed twice: \['pgd @ 1/255'\]"):
        _load(tmp_path, text)


def test_a_preset_needs_an_attack(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected at least one attack"):
        _load(tmp_path, HEAD)
