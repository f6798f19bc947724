"""Bad input to harness.crosscheck and harness.testing.assert_robust: a ValueError or TypeError that names
the argument, raised before any attack runs; and the warning for a model that returns probabilities."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from advparity.harness import api as harness_api
from advparity.harness.api import _check_arguments, attack_config, crosscheck
from advparity.harness.testing import assert_robust
from support.small_nets import SmallNet, synthetic_batch
from torch import nn

FAST: dict[str, Any] = {"libraries": ["torchattacks"], "attacks": ["fgsm"], "eps": ["2/255"], "steps": 1}


@pytest.fixture(scope="module")
def model() -> SmallNet:
    torch.manual_seed(0)
    return SmallNet(normalize=(0.4, 0.2)).eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic_batch(4, seed=7)


@pytest.fixture
def no_attacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must fail before any attack runs: running one fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("an attack ran before the bad argument was refused")

    monkeypatch.setattr(harness_api, "run_tensors", refuse)


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "results.txt"
    path.write_text("not a run directory\n")
    return path


# (id, keyword arguments or a function of tmp_path giving them, exception, regex naming the argument)
CASES: list[tuple[str, Any, type[Exception], str]] = [
    ("images-float64", {"images": "float64"}, ValueError, r"images as torch\.float32.*got torch\.float64"),
    ("images-float16", {"images": "float16"}, ValueError, r"images as torch\.float32.*got torch\.float16"),
    ("device-unknown", {"device": "foo"}, ValueError, r"device .*'foo'"),
    ("device-wrong-type", {"device": 1.5}, TypeError, r"device .*1\.5"),
    ("eps-none", {"eps": None}, TypeError, r"eps .*got None"),
    ("attacks-none", {"attacks": None}, TypeError, r"attacks .*got None"),
    ("steps-string", {"steps": "3"}, TypeError, r"steps as an int.*'3' \(str\)"),
    ("steps-zero", {"steps": 0}, ValueError, r"steps >= 1, got 0"),
    ("steps-bool", {"steps": True}, TypeError, r"steps as an int.*True \(bool\)"),
    ("batch-size-float", {"batch_size": 1.5}, TypeError, r"batch_size as an int.*1\.5"),
    ("batch-size-zero", {"batch_size": 0}, ValueError, r"batch_size >= 1, got 0"),
    ("random-start-string", {"random_start": "yes"}, TypeError, r"random_start as True or False.*'yes'"),
    (
        "out-a-file",
        lambda tmp: {"out": _file(tmp)},
        ValueError,
        r"out '.*results\.txt' is a file: expected a folder",
    ),
    (
        "out-under-a-file",
        lambda tmp: {"out": _file(tmp) / "run"},
        ValueError,
        r"out '.*results\.txt/run': '.*results\.txt' is a file, expected a folder",
    ),
    ("out-wrong-type", {"out": 3}, TypeError, r"out as a path"),
    ("libraries-unknown", {"libraries": "advbox"}, ValueError, r"libraries among \[.*'art'.*advbox"),
    ("seeds-empty", {"seeds": []}, ValueError, r"at least one seed in seeds"),
    ("seeds-float", {"seeds": [0.7]}, TypeError, r"seeds as an int.*0\.7"),
    ("seeds-bool", {"seeds": [True]}, TypeError, r"seeds as an int.*True"),
    ("seeds-negative", {"seeds": [-1]}, ValueError, r"seeds >= 0, got -1"),
    ("seeds-string", {"seeds": "0"}, TypeError, r"seeds as an int or a list"),
    ("reference-seeds-float", {"reference_seeds": 1.0}, TypeError, r"reference_seeds as an int"),
    ("classes-a-string", {"classes": "abc"}, TypeError, r"classes as a class name or a list"),
]


def _call(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], kwargs: dict[str, Any]) -> None:
    x, y = data
    dtype = kwargs.pop("images", None)
    if dtype is not None:
        x = x.to(getattr(torch, dtype))
    crosscheck(model, x, y, **{**FAST, **kwargs})


@pytest.mark.parametrize(("case", "kwargs", "error", "message"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.usefixtures("no_attacks")
def test_crosscheck_refuses_bad_input_naming_the_argument(
    model: SmallNet,
    data: tuple[torch.Tensor, torch.Tensor],
    tmp_path: Path,
    case: str,
    kwargs: dict[str, Any] | Callable[[Path], dict[str, Any]],
    error: type[Exception],
    message: str,
) -> None:
    arguments = kwargs(tmp_path) if callable(kwargs) else dict(kwargs)
    with pytest.raises(error, match=message) as caught:
        _call(model, data, arguments)
    assert type(caught.value) is error  # not a subclass such as harness.config.ConfigError


# The arguments assert_robust shares with crosscheck: refused before the missing baseline is reported.
SHARED = ("libraries", "attacks", "eps", "steps", "seeds", "device")
ROBUST_CASES = [c for c in CASES if isinstance(c[1], dict) and set(c[1]) <= {"images", *SHARED}] + [
    ("update-string", {"update": "no"}, TypeError, r"update as True or False.*'no'"),
    ("accept-string", {"accept_disagreements": 1}, TypeError, r"accept_disagreements as True or False"),
    ("baseline-a-directory", {"baseline": "."}, ValueError, r"baseline to be a JSON file.*'\.'"),
    ("baseline-wrong-type", {"baseline": None}, TypeError, r"baseline as a path"),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "error", "message"), ROBUST_CASES, ids=[c[0] for c in ROBUST_CASES]
)
@pytest.mark.usefixtures("no_attacks")
def test_assert_robust_refuses_bad_input_before_the_missing_baseline(
    model: SmallNet,
    data: tuple[torch.Tensor, torch.Tensor],
    tmp_path: Path,
    case: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    x, y = data
    arguments = dict(kwargs)
    dtype = arguments.pop("images", None)
    if dtype is not None:
        x = x.to(getattr(torch, dtype))
    robust = {k: v for k, v in FAST.items() if k in SHARED}
    with pytest.raises(error, match=message):
        assert_robust(model, x, y, **{"baseline": tmp_path / "missing.json", **robust, **arguments})


def test_a_single_name_or_seed_is_a_list_of_one_and_numpy_ints_pass() -> None:
    assert attack_config(libraries="art") == attack_config(libraries=["art"])
    assert attack_config(libraries="art").libraries == ("reference", "art")
    assert attack_config(seeds=2) == attack_config(seeds=[2])
    assert attack_config(seeds=2).reference_seeds == (2, 3)
    assert attack_config(seeds=0, reference_seeds=0).reference_seeds == (0,)
    numpy_ints = attack_config(seeds=[np.int64(1)], steps=np.int32(3), batch_size=np.int64(8))  # type: ignore[arg-type, list-item]
    assert numpy_ints == attack_config(seeds=[1], steps=3, batch_size=8)
    assert type(numpy_ints.library_seeds[0]) is int and type(numpy_ints.pgd_steps) is int


def test_images_of_the_models_own_dtype_pass(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data
    torch.manual_seed(0)
    double = SmallNet().double().eval()
    checked = _check_arguments(double, x.double(), y, **FAST)
    assert checked.x.dtype == torch.float64
    stateless = nn.Sequential(nn.Flatten(), nn.Softmax(dim=1))  # no parameters: any float dtype
    assert _check_arguments(stateless, x.half(), y, **FAST).x.dtype == torch.float16


class Probabilities(nn.Module):
    def __init__(self, net: nn.Module, head: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


PROBABILITIES = "seems to return probabilities, not logits"


@pytest.mark.usefixtures("no_attacks")
def test_a_model_returning_probabilities_is_warned_about_from_the_one_probe(
    model: SmallNet, data: tuple[torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = data
    softmax = Probabilities(model, lambda z: z.softmax(dim=1))
    calls: list[int] = []
    softmax.register_forward_hook(lambda module, args, output: calls.append(len(args[0])))
    # Labels out of range stop the call right after the width probe, before any attack.
    with (
        pytest.warns(UserWarning, match=re.escape(PROBABILITIES)) as caught,
        pytest.raises(ValueError, match="labels"),
    ):
        crosscheck(softmax, x, y + 3, **FAST)
    assert calls == [1]  # the probe's one forward pass, no other
    (warned,) = [w for w in caught if PROBABILITIES in str(w.message)]
    assert "softmax" in str(warned.message) and "weaker" in str(warned.message)
    assert warned.filename == __file__  # points at the caller


@pytest.mark.parametrize("head", ["logits", "log_softmax"])
@pytest.mark.usefixtures("no_attacks")
def test_logits_and_log_probabilities_are_not_warned_about(
    model: SmallNet, data: tuple[torch.Tensor, torch.Tensor], head: str
) -> None:
    x, y = data
    net = model if head == "logits" else Probabilities(model, lambda z: z.log_softmax(dim=1))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*probabilities")
        with pytest.raises(ValueError, match="labels"):
            crosscheck(net, x, y + 3, **FAST)


def test_a_model_returning_probabilities_still_runs(
    model: SmallNet, data: tuple[torch.Tensor, torch.Tensor]
) -> None:
    softmax = Probabilities(model, lambda z: z.softmax(dim=1))
    with pytest.warns(UserWarning, match=re.escape(PROBABILITIES)):
        result = crosscheck(softmax, *data, **FAST)
    assert set(result.verdicts["library"]) == {"reference", "torchattacks"}
    assert result.ok, result.summary()  # a warning, not a failure


@pytest.mark.usefixtures("no_attacks")
def test_a_model_not_returning_logits_is_refused(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match=r"model to return logits \[N, classes\], got shape \(1, 1, 192\)"):
        crosscheck(nn.Flatten(start_dim=2), *data, **FAST)
