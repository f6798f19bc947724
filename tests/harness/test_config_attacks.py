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
# (demo, paper and smoke are no longer among them, on purpose: demo has added L2 [[attacks]] tables and
# CleverHans, paper APGD tables, CleverHans and the original AutoAttack, smoke a short APGD.)
HASHES_BEFORE_TABLES = {
    "ci": "72721a80ec5d87ef65cef6a1525f9a1c8720c9cf9898394945736c4fa5a48eaf",
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
            r"attack 'pgd' has no key\(s\) \['decay'\]; expected some of \['attack', 'eps', 'libraries', 'norm', 'steps', 'alpha', 'random_start', 'restarts', 'targeted', 'target_labels'\]",
        ),
        (
            'attack = "fgsm"\neps = ["1/255"]\nsteps = 3',
            r"attack 'fgsm' has no key\(s\) \['steps'\]; expected some of \['attack', 'eps', 'libraries', 'norm', 'random_start', 'alpha', 'restarts', 'targeted', 'target_labels'\]",
        ),
        ('attack = "cw"\neps = ["1/255"]', r"unknown attack 'cw'; expected one of \['fgsm', 'pgd'"),
        ('eps = ["1/255"]', r"missing key 'attack'"),
        ('attack = "pgd"', r"attack 'pgd': missing key 'eps'"),
        ('attack = "pgd"\neps = ["1/255"]\nsteps = 0', r"expected steps to be an integer >= 1, got 0"),
        ('attack = "pgd"\neps = ["1/255"]\nalpha = "eps/0.5"', r'expected alpha like "eps/4"'),
        (
            'attack = "pgd"\neps = ["1/255"]\nrandom_start = "yes"',
            r"expected random_start to be True or False",
        ),
        ('attack = "pgd"\neps = [8]', r'write "8/255"'),
        (
            'attack = "pgd"\nnorm = "l3"\neps = [0.5]',
            r"expected norm to be one of \['linf', 'l2'\], got 'l3'",
        ),
        (
            'attack = "pgd"\nnorm = "l2"\neps = ["1/255"]',
            r"an L2 eps is a plain number in pixel units, e.g. 0.5",
        ),
        ('attack = "pgd"\nnorm = "l2"\neps = [-0.5]', r"expected an L2 eps > 0"),
        ('attack = "bim"\neps = ["1/255"]\nnorm = "l2"', r"attack 'bim' has no key\(s\) \['norm'\]"),
        (
            'attack = "bim"\neps = ["1/255"]\nrandom_start = true',
            r"attack 'bim' has no key\(s\) \['random_start'\]",
        ),
        ('attack = "mifgsm"\neps = ["1/255"]\ndecay = -1.0', r"expected decay >= 0, got -1.0"),
        (
            'attack = "fgsm"\neps = ["2/255"]\nalpha = "eps/2"',
            r"expected alpha only with random_start = true",
        ),
        (
            'attack = "fgsm"\neps = ["2/255"]\nrandom_start = true\nalpha = "3*eps"',
            r'expected alpha like "eps/4" \(a step at most 2\*eps\)',
        ),
        ('attack = "pgd"\neps = ["1/255"]\nlibraries = ["foo"]', r"unknown libraries \['foo'\]"),
        (
            'attack = "pgd"\neps = ["1/255"]\nlibraries = "art"',
            r"expected libraries to be a list of library names",
        ),
        (
            'attack = "pgd"\neps = ["1/255"]\nlibraries = ["torchattacks"]',
            r"\(pgd\): libraries \['torchattacks'\] are not among the run's libraries \['reference', 'art'\]",
        ),
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


def test_the_new_attacks_and_variants_plan_their_cells(tmp_path: Path) -> None:
    text = (
        HEAD
        + """
[[attacks]]
attack = "fgsm"
norm = "l2"
eps = [0.5, 2.0]

[[attacks]]
attack = "fgsm"
eps = ["2/255"]
random_start = true
alpha = "1.25*eps"

[[attacks]]
attack = "pgd"
norm = "l2"
eps = [0.5]
steps = 3

[[attacks]]
attack = "bim"
eps = ["2/255"]
steps = 5

[[attacks]]
attack = "mifgsm"
eps = ["2/255"]
steps = 5
decay = 0.5
"""
    )
    config = _load(tmp_path, text).attack  # type: ignore[attr-defined]
    cells = plan_cells(config)
    specs = {(c.library, c.spec.label, c.eps, c.seed): c.spec for c in cells}
    # An L2 eps above 1 is a budget, not a pixel level; its cell files keep L∞ names unchanged.
    fgm = specs[("reference", "FGM-L2", 2.0, 0)]
    assert fgm.norm == "l2" and "l2__steps1__rs0" in cells[1].key
    rs = specs[("art", "FGSM-RS", 2 / 255, 0)]
    assert rs.random_start and rs.step_size == pytest.approx(2.5 / 255)
    assert specs[("reference", "PGD-L2-3", 0.5, 1)].step_size == pytest.approx(0.125)
    assert specs[("art", "BIM-5", 2 / 255, 0)].steps == 5
    assert specs[("art", "MI-FGSM-5 (decay 0.5)", 2 / 255, 0)].decay == 0.5
    # Seeded variants (random starts) run every seed; the others run once.
    assert {c.seed for c in cells if c.library == "reference" and c.spec.label == "FGSM-RS"} == {0, 1}
    assert {c.seed for c in cells if c.spec.label == "BIM-5"} == {0}
    # L2 eps are recorded as numbers and come back the same.
    recorded = json.loads(json.dumps(config.experiment()))
    assert recorded["attacks"][0] == {"attack": "fgsm", "eps": [0.5, 2.0], "norm": "l2"}
    assert plan_cells(attack_config_from_manifest(recorded)) == cells


@pytest.mark.parametrize("name", ["wide", "demo"])
def test_the_wide_and_demo_presets_run_l2(name: str) -> None:
    config = load_preset(name).attack
    labels = {c.spec.label for c in plan_cells(config)}
    assert {"FGM-L2", "PGD-L2-10"} <= labels
    if name == "wide":
        assert {"FGSM", "FGSM-RS", "PGD-10", "PGD-10 (no random start)", "BIM-10", "MI-FGSM-10"} <= labels


def test_an_entry_names_the_libraries_that_run_it(tmp_path: Path) -> None:
    """``libraries`` in an [[attacks]] entry: those libraries and the reference run it, the others
    not; the manifest records it and plans the same cells again."""
    head = HEAD.replace('["reference", "art"]', '["reference", "art", "torchattacks"]')
    text = head + '[[attacks]]\nattack = "fgsm"\neps = ["1/255"]\nlibraries = ["torchattacks"]\n'
    text += '\n[[attacks]]\nattack = "pgd"\neps = ["1/255"]\nsteps = 2\n'
    config = _load(tmp_path, text).attack  # type: ignore[attr-defined]
    cells = plan_cells(config)
    assert {c.library for c in cells if c.attack == "fgsm"} == {"reference", "torchattacks"}
    assert {c.library for c in cells if c.attack == "pgd"} == {"reference", "art", "torchattacks"}
    recorded = json.loads(json.dumps(config.experiment()))
    assert recorded["attacks"][0]["libraries"] == ["torchattacks"]
    assert "libraries" not in recorded["attacks"][1]
    assert plan_cells(attack_config_from_manifest(recorded)) == cells
