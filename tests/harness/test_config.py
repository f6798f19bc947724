"""Presets load, and every bad value is refused with the file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from advparity.harness.config import ConfigError, eps_label, load_preset, parse_eps, preset_names


def test_every_preset_loads() -> None:
    assert {"ci", "demo", "paper", "smoke"} <= set(preset_names())
    for name in preset_names():
        preset = load_preset(name)
        assert preset.name == name and preset.description


def test_the_paper_preset_is_the_papers_recipe() -> None:
    train = load_preset("paper").train
    assert (train.image_size, train.weights, train.lr, train.lr_schedule) == (
        224,
        "imagenet",
        1e-4,
        "constant",
    )
    assert (train.batch_size, train.max_epochs, train.patience, train.rotation_degrees) == (32, 50, 5, 10.0)
    assert load_preset("paper").data.source == "folder"


def test_demo_trains_from_scratch_at_64_px() -> None:
    demo = load_preset("demo")
    assert demo.train.weights is None and demo.train.image_size == 64
    assert demo.data.source == "synthetic" and demo.data.synthetic_total == 2000


GOOD = """
name = "custom"
[data]
source = "synthetic"
synthetic_total = 200
[train]
image_size = 32
weights = "none"
[attack]
fgsm_eps = ["0.1/255", 0.004]
pgd_eps = ["1/255"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "preset.toml"
    path.write_text(text)
    return path


def test_a_minimal_preset_gets_defaults(tmp_path: Path) -> None:
    preset = load_preset(_write(tmp_path, GOOD))
    assert preset.train.lr == 1e-4 and preset.data.split_seed == 42 and preset.train.weights is None
    assert preset.attack.fgsm_eps == (0.1 / 255, 0.004) and preset.attack.pgd_eps == (1 / 255,)
    assert preset.attack.pgd_steps == 10 and preset.attack.alpha_fraction == 0.25
    assert preset.attack.libraries == ("reference", "art", "torchattacks", "foolbox")
    assert preset.cpu_threads == 0  # one per core
    # The regression baseline's preset fixes its thread count: CPU round-off depends on it.
    assert load_preset("ci").cpu_threads == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.1/255", 0.1 / 255), (" 8 / 255 ", 8 / 255), ("1e-2/255", 0.01 / 255), (0.5, 0.5), (1, 1.0)],
)
def test_eps_is_read_with_its_unit(text: object, expected: float) -> None:
    assert parse_eps(text) == expected


def test_eps_labels_read_back() -> None:
    for label in ("0.01/255", "0.025/255", "0.1/255", "0.3/255", "8/255"):
        assert eps_label(parse_eps(label)) == label


def test_the_paper_preset_holds_the_papers_attack_grid() -> None:
    attack = load_preset("paper").attack
    assert [eps_label(e) for e in attack.pgd_eps] == [
        "0.01/255",
        "0.025/255",
        "0.05/255",
        "0.1/255",
        "0.3/255",
    ]
    fgsm = [eps_label(e) for e in attack.fgsm_eps]
    assert {"0.01/255", "0.025/255", "0.05/255", "0.1/255", "0.3/255"} <= set(fgsm)
    assert {f"0.{k}/255" for k in range(1, 10)} <= set(fgsm)
    assert (attack.pgd_steps, attack.alpha_fraction, attack.pgd_random_start) == (10, 0.25, True)
    assert attack.test_limit == 0 and len(attack.reference_seeds) >= 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("image_size = 32", "image_sise = 32"), r"unknown key\(s\) \[train\] \['image_sise'\]"),
        (("image_size = 32", "image_size = 32.5"), r"'train.image_size' expected int, got 32.5"),
        (("image_size = 32", 'image_size = "32"'), r"'train.image_size' expected int"),
        (('weights = "none"', "weights = true"), r"'train.weights' expected str or none"),
        (("synthetic_total = 200", "synthetic_total = 100"), r"\[data\] expected synthetic_total >= 160"),
        (('source = "synthetic"', 'source = "kaggle"'), r"\[data\] expected source in"),
        (('name = "custom"', ""), r"missing key 'name'"),
        (("[train]", "[training]"), r"unknown key\(s\) \['training'\]"),
        (("image_size = 32", "image_size = 32\nlr = 0"), r"\[train\] expected lr > 0"),
        (('pgd_eps = ["1/255"]', "pgd_eps = [8]"), r"'attack.pgd_eps': eps 8 is above 1.*write \"8/255\""),
        (
            ('pgd_eps = ["1/255"]', 'pgd_eps = ["0.1/256"]'),
            r"'attack.pgd_eps': eps '0.1/256'.*denominator must be 255",
        ),
        (('pgd_eps = ["1/255"]', 'pgd_eps = ["1/255", "1/255"]'), r"eps values repeat"),
        (('pgd_eps = ["1/255"]', 'pgd_eps = ["-1/255"]'), r"expected a string like '0.1/255'"),
        (
            ('pgd_eps = ["1/255"]', 'pgd_eps = ["1/255"]\npgd_steps = 0'),
            r"\[attack\] expected pgd_steps >= 1",
        ),
        (
            ('pgd_eps = ["1/255"]', 'pgd_eps = ["1/255"]\nlibraries = ["reference", "advbox"]'),
            r"unknown library \['advbox'\]",
        ),
        (('pgd_eps = ["1/255"]', 'pgd_eps = ["1/255"]\nlibraries = ["art"]'), r"must include 'reference'"),
        (('pgd_eps = ["1/255"]', 'pgd_eps = ["1/255"]\npgd_alpha = "eps/0.5"'), r"pgd_alpha like"),
        (
            ('pgd_eps = ["1/255"]', 'pgd_eps = ["1/255"]\nlibrary_seeds = [3]'),
            r"library_seeds \[3\] have no reference run",
        ),
        (("[attack]", "[attacks]"), r"\[attacks\] must be an array of tables"),
        (("[attack]", "[atack]"), r"unknown key\(s\) \['atack'\]"),
        (
            ('name = "custom"', 'name = "custom"\ncpu_threads = -1'),
            r"expected cpu_threads to be an integer >= 0",
        ),
        (('name = "custom"', 'name = "custom"\ncpu_threads = 1.5'), r"'cpu_threads' expected int"),
    ],
)
def test_bad_values_are_refused_with_file_and_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    path = _write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError, match=message) as err:
        load_preset(path)
    assert str(path) in str(err.value)


def test_unknown_preset_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; expected one of \["):
        load_preset("nope")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_preset(_write(tmp_path, "name = [unclosed"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_preset(tmp_path / "missing.toml")
