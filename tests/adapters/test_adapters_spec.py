"""AttackSpec validation and the adapter registry."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from advparity.adapters import AttackSpec
from support.library_states import pretend_broken_import, pretend_not_installed

from advparity import adapters


def test_names_are_the_contract() -> None:
    assert adapters.names() == [
        "reference",
        "art",
        "torchattacks",
        "foolbox",
        "secml-torch",
        "adv-lib",
        "deeprobust",
        "advertorch",
        "cleverhans",
        "autoattack",
    ]


@pytest.mark.parametrize("name", [n for n in adapters.names() if n in adapters.EXTRAS])
def test_optional_libraries_installed(name: str) -> None:
    """Says, in the test summary, which optional libraries this environment does not test."""
    status = adapters.availability(name)
    if status.state != "ready":
        pytest.skip(f"{name} {status.state}: {status.reason}")
    assert adapters.get(name).name == name


def test_the_core_libraries_are_ready() -> None:
    # advparity depends on these three: they must never fall back to "not installed" or "unavailable".
    for name in ("reference", "art", "torchattacks", "foolbox"):
        assert adapters.availability(name).state == "ready", adapters.availability(name)


def test_a_library_that_is_not_installed_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_not_installed(monkeypatch, "advertorch")
    status = adapters.availability("advertorch")
    assert status.state == "not installed"
    assert "pip install 'advparity[advertorch]'" in status.reason


def test_an_installed_library_that_cannot_import_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # What advertorch 0.2.3 does under current torch, planted: the import fails inside the library, and
    # get()/availability() report it instead of raising it.
    pretend_broken_import(monkeypatch, "advertorch", "advertorch", "adapters.advertorch", "0.2.3")
    status = adapters.availability("advertorch")
    assert status.state == "unavailable"
    assert status.reason.startswith("ModuleNotFoundError") or status.reason.startswith("ImportError")
    assert status.version == "0.2.3"
    with pytest.raises(adapters.LibraryUnavailable, match="advertorch is installed but cannot run"):
        adapters.get("advertorch")


@pytest.mark.parametrize("name", adapters.runnable())
def test_get_returns_an_adapter_with_that_name(name: str) -> None:
    adapter = adapters.get(name)
    assert isinstance(adapter, adapters.Adapter)
    assert adapter.name == name


def test_unknown_adapter_is_a_value_error_listing_the_names() -> None:
    with pytest.raises(ValueError, match=r"expected an adapter name in \['reference'"):
        adapters.get("advbox")


def test_spec_defaults_follow_the_paper() -> None:
    spec = AttackSpec("pgd", eps=8 / 255)
    assert (spec.steps, spec.alpha, spec.random_start, spec.seed) == (10, None, True, 0)
    assert spec.step_size == (8 / 255) / 4
    assert AttackSpec("pgd", eps=8 / 255, alpha=1 / 255).step_size == 1 / 255


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        AttackSpec("fgsm", 0.1).eps = 0.2  # type: ignore[misc]


def test_numpy_eps_becomes_a_python_float() -> None:
    # ART rejects numpy scalars for eps; the spec converts once for every adapter.
    spec = AttackSpec("fgsm", np.float32(0.5))
    assert type(spec.eps) is float and spec.eps == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": 8}, r"eps=8 is outside \(0, 1\]; pixel units — did you mean 8/255\?"),
        ({"eps": 0}, r"eps=0 is outside \(0, 1\]"),
        ({"eps": -0.1}, r"eps=-0.1 is outside \(0, 1\]"),
        ({"eps": math.nan}, r"expected a finite eps"),
        ({"eps": "8/255"}, r"expected eps to be a real number"),
        ({"eps": True}, r"expected eps to be a real number"),
        ({"steps": 0}, r"expected steps to be an integer >= 1, got 0"),
        ({"steps": 2.5}, r"expected steps to be an integer >= 1, got 2.5"),
        ({"alpha": 0.0}, r"expected alpha in \(0, 1\]"),
        ({"alpha": 2.0}, r"expected alpha in \(0, 1\]"),
        ({"random_start": 1}, r"expected random_start to be True or False"),
        ({"seed": -1}, r"expected seed in \[0, 2\*\*32\)"),
        (
            {"attack": "PGD"},
            r"expected attack to be one of \['fgsm', 'pgd', 'bim', 'mifgsm', 'apgd'\], got 'PGD'",
        ),
    ],
)
def test_bad_spec_is_a_clear_value_error(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"attack": "pgd", "eps": 1 / 255, **kwargs}
    with pytest.raises(ValueError, match=message):
        AttackSpec(**fields)  # type: ignore[arg-type]
