"""The Python API: harness.crosscheck on a user's own module, and harness.testing.assert_robust."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from advparity.harness.api import CrossCheckResult, crosscheck, state_sha256
from advparity.harness.testing import assert_robust
from support.departures import departs
from support.library_states import pretend_broken_import, pretend_not_installed
from support.small_nets import SMALL_CLASSES, SMALL_SHAPE, SmallNet, synthetic_batch
from torch import nn

from advparity import adapters, harness

SHAPE = SMALL_SHAPE
CLASSES = SMALL_CLASSES
EPS = ["2/255", 0.01]
FAST = {"eps": EPS, "steps": 2}


class TinyNet(SmallNet):
    """The shared small net with its normalisation inside the model, as the API requires."""

    def __init__(self) -> None:
        super().__init__(normalize=(0.4, 0.2))


@pytest.fixture(scope="module")
def model() -> TinyNet:
    torch.manual_seed(0)
    net = TinyNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for step in range(40):
        x, y = synthetic_batch(32, seed=100 + step)
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    net.eval()
    net.zero_grad(set_to_none=True)
    return net


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic_batch(12, seed=7)


@pytest.fixture(scope="module")
def result(model: TinyNet, data: tuple[torch.Tensor, torch.Tensor]) -> CrossCheckResult:
    return crosscheck(model, *data, **FAST)  # type: ignore[arg-type]


def test_every_library_agrees_on_a_users_module(result: CrossCheckResult, tmp_path: Path) -> None:
    """The default libraries are the three advparity depends on, and on a sound model they all agree."""
    v = result.verdicts
    assert {"library", "attack", "eps", "verdict", "reason"} <= set(v.columns)
    assert result.ok, result.summary()
    assert (v["verdict"] == "agree").all(), v[["library", "attack", "eps", "verdict", "reason"]]
    libraries = [lib for lib in v["library"].unique() if lib != "reference"]
    assert sorted(libraries) == sorted(adapters.CORE_LIBRARIES)
    assert (v.loc[v["library"] != "reference", "judged_on"] == "x_adv").all()
    assert sorted(v["eps"].unique()) == sorted([2 / 255, 0.01])
    assert set(v["attack"]) == {"fgsm", "pgd"}
    # Reference seeds default to the library's plus one: the seed-to-seed spread is measured.
    pgd_ref = result.results[(result.results["library"] == "reference") & (result.results["attack"] == "pgd")]
    assert sorted(pgd_ref["seed"].unique()) == [0, 1]
    assert len(result.results["sample"].unique()) == 12
    assert str(result).startswith("cross-check OK:")
    assert "agree" in str(result)

    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["preset"] == "api"
    assert manifest["classes"] == ["class_0", "class_1", "class_2"]
    assert manifest["model"]["class"].endswith("TinyNet")
    assert manifest["checkpoint"]["sha256"] == manifest["model"]["state_sha256"]
    assert len(manifest["images"]["sha256"]) == 64

    html = result.report(tmp_path / "report")
    assert html == tmp_path / "report" / "report.html" and html.is_file()
    assert "TinyNet" in html.read_text()


def test_the_model_is_left_exactly_as_it_was(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    torch.manual_seed(1)
    net = TinyNet()
    net.train()  # a model in train mode: the clean pass must not update BatchNorm's running stats
    net.features[0].requires_grad_(False)
    x, y = data
    nn.functional.cross_entropy(net(x), y).backward()  # a .grad the call must not touch
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = {n: (p.grad, None if p.grad is None else p.grad.clone()) for n, p in net.named_parameters()}
    modes = [m.training for m in net.modules()]
    flags = [p.requires_grad for p in net.parameters()]
    sha = state_sha256(net)

    checked = crosscheck(net, x, y, libraries=["art"], eps=["2/255"], steps=2)

    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for name, p in net.named_parameters():
        grad, saved = grads[name]
        assert p.grad is grad
        assert saved is None or torch.equal(p.grad, saved)
    assert state_sha256(net) == sha
    assert checked.ok, checked.summary()


def test_eps_as_strings_and_floats_and_bad_input(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    x, y = data
    out = tmp_path / "run"
    checked = crosscheck(
        model, x, y, libraries=["torchattacks"], attacks=["fgsm"], eps=["1/255", 0.02], out=out
    )
    assert checked.run_dir == out and (out / "manifest.json").is_file()
    assert sorted(checked.verdicts["eps"].unique()) == [1 / 255, 0.02]
    with pytest.raises(ValueError, match='write "8/255"'):
        crosscheck(model, x, y, eps=[8])
    with pytest.raises(ValueError, match="one label per image"):
        crosscheck(model, x, y[:-1], eps=["1/255"])
    with pytest.raises(ValueError, match="int64"):
        crosscheck(model, x, y.int(), eps=["1/255"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        crosscheck(model, x * 3, y, eps=["1/255"])
    with pytest.raises(ValueError, match="unknown library"):
        crosscheck(model, x, y, libraries=["advbox"], eps=["1/255"])
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        crosscheck(model, x, y + 3, eps=["1/255"])
    with pytest.raises(ValueError, match="class names"):
        crosscheck(model, x, y, eps=["1/255"], classes=["a", "b"])


def test_a_library_returning_x_unchanged_disagrees(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = adapters.get("torchattacks")
    monkeypatch.setattr(adapter, "attack_fn", lambda counter, x, y, spec, num_classes: x)
    checked = crosscheck(model, *data, libraries=["torchattacks"], attacks=["fgsm"], eps=["2/255"])
    assert not checked.ok
    row = checked.verdicts[checked.verdicts["library"] == "torchattacks"].iloc[0]
    assert row["verdict"] == "disagree"
    assert checked.summary().startswith("cross-check FAIL:")


def test_assert_robust_writes_checks_and_catches_drift(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    x, y = data
    baseline = tmp_path / "robustness.json"
    kwargs = {"baseline": baseline, "libraries": ["art"], "eps": EPS, "steps": 2}
    with pytest.raises(AssertionError, match="update=True"):
        assert_robust(model, x, y, **kwargs)  # type: ignore[arg-type]

    written = assert_robust(model, x, y, update=True, **kwargs)  # type: ignore[arg-type]
    assert written.ok and baseline.is_file()
    assert json.loads(baseline.read_text())["preset"] == "api"

    passed = assert_robust(model, x, y, **kwargs)  # type: ignore[arg-type]
    assert passed.ok

    # Drift: a model whose head now favours class 0 loses accuracy everywhere.
    drifted = copy.deepcopy(model)
    with torch.no_grad():
        drifted.head.bias[0] += 100.0
    with pytest.raises(AssertionError) as caught:
        assert_robust(drifted, x, y, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "FAIL" in message and "clean" in message and "regression check against" in message


def test_assert_robust_refuses_a_baseline_of_disagreements(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = adapters.get("torchattacks")
    monkeypatch.setattr(adapter, "attack_fn", lambda counter, x, y, spec, num_classes: x)
    baseline = tmp_path / "robustness.json"
    kwargs = {"baseline": baseline, "libraries": ["torchattacks"], "attacks": ["fgsm"], "eps": ["2/255"]}
    with pytest.raises(AssertionError, match="accept_disagreements"):
        assert_robust(model, *data, update=True, **kwargs)  # type: ignore[arg-type]
    assert not baseline.exists()
    assert_robust(model, *data, update=True, accept_disagreements=True, **kwargs)  # type: ignore[arg-type]
    assert baseline.is_file()


def test_importing_harness_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, harness; assert 'torch' not in sys.modules; print(harness.__all__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert callable(harness.crosscheck)


def test_an_out_folder_resumes_the_same_run_and_refuses_another_model(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    from advparity.harness.store import RunDirError

    x, y = data
    kwargs = {"libraries": ["art"], "attacks": ["fgsm"], "eps": ["2/255"], "out": tmp_path / "run"}
    first = crosscheck(model, x, y, **kwargs)  # type: ignore[arg-type]
    again = crosscheck(model, x, y, **kwargs)  # type: ignore[arg-type]
    assert again.verdicts.equals(first.verdicts)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.bias[1] += 0.5
    with pytest.raises(RunDirError, match="another configuration"):
        crosscheck(other, x, y, **kwargs)  # type: ignore[arg-type]


def test_a_library_that_cannot_run_is_unavailable_not_a_crash(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # advertorch installed but failing on import (as 0.2.3 does under current torch), planted here.
    pretend_broken_import(monkeypatch, "advertorch", "advertorch", "adapters.advertorch", "0.2.3")
    result = crosscheck(
        model, *data, libraries=["torchattacks", "advertorch"], eps=["2/255"], steps=2, out=tmp_path / "run"
    )
    v = result.verdicts
    unavailable = v[v["library"] == "advertorch"]
    assert len(unavailable) == 2  # FGSM and PGD at the one eps
    assert (unavailable["verdict"] == "unavailable").all()
    assert unavailable["reason"].str.contains("installed but cannot run here").all()
    assert unavailable["reason"].str.contains("ImportError|ModuleNotFoundError").all()
    assert (v.loc[v["library"] != "advertorch", "verdict"] == "agree").all()
    assert result.ok  # not a failure of any library's arithmetic
    assert "1 unavailable" not in result.summary() and "2 unavailable" in result.summary()
    status = json.loads((tmp_path / "run" / "libraries.json").read_text())
    assert status["advertorch"]["state"] == "unavailable"
    page = result.report(tmp_path / "report").read_text(encoding="utf-8")
    assert "Not run: advertorch (installed but cannot run" in page


def test_the_optional_libraries_attacks_that_depart_are_flagged(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Every library that runs here: the attacks known to differ from the reference's
    (tests/support/departures.py) must be flagged, and so fail the cross-check; everything else agrees."""
    result = crosscheck(model, *data, libraries=adapters.runnable(), eps=["2/255"], steps=2)
    v = result.verdicts
    known = v.apply(lambda row: departs(row["library"], row["attack"]), axis=1).astype(bool)
    assert result.ok == (not known.any()), result.summary()
    assert (v[~known]["verdict"] == "agree").all(), v[["library", "attack", "eps", "verdict", "reason"]]
    assert (v[known]["verdict"] == "disagree").all(), v[known][["library", "attack", "eps", "reason"]]
    # The reason quotes what the adapter documents, so a reader learns what the library does instead.
    assert v[known]["reason"].str.contains("The adapter documents this departure").all()
    assert not v[~known]["reason"].str.contains("documents this departure").any()
    # Every library that offers FGSM or PGD has verdicts (the original AutoAttack offers APGD alone).
    offering = [
        n
        for n in adapters.runnable()
        if n != "reference"
        and any(adapters.get(n).declaration.accepts(adapters.AttackSpec(a, 2 / 255)) for a in ("fgsm", "pgd"))
    ]
    assert sorted(lib for lib in v["library"].unique() if lib != "reference") == sorted(offering)


def test_a_library_that_is_not_installed_is_skipped_with_one_line(
    model: TinyNet,
    data: tuple[torch.Tensor, torch.Tensor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    pretend_not_installed(monkeypatch, "deeprobust")
    with caplog.at_level(logging.WARNING, logger="advparity.harness.runner"):
        result = crosscheck(
            model,
            *data,
            libraries=["torchattacks", "deeprobust"],
            eps=["2/255"],
            steps=2,
            out=tmp_path / "run",
        )
    lines = [r.getMessage() for r in caplog.records if "deeprobust" in r.getMessage()]
    assert lines == ["deeprobust: skipped, deeprobust is not installed (pip install 'advparity[deeprobust]')"]
    assert "deeprobust" not in set(result.verdicts["library"])  # skipped, not a verdict
    assert result.ok
    status = json.loads((tmp_path / "run" / "libraries.json").read_text())
    assert status["deeprobust"]["state"] == "not installed"


def test_a_targeted_run_records_the_named_targets_and_judges_them(
    model: TinyNet, data: tuple[torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    """targeted = "labels": each sample is pushed towards the class named for its true class, every
    library gets those targets, the rows record them, and the verdicts are judged on x_adv."""
    x, y = data
    labels = [(k + 1) % CLASSES for k in range(CLASSES)]
    table = {"attack": "pgd", "eps": ["8/255"], "steps": 2, "targeted": "labels", "target_labels": labels}
    checked = crosscheck(model, x, y, attacks=[table], out=tmp_path / "run")  # type: ignore[arg-type]
    rows = checked.results
    assert set(rows["attack_label"]) == {f"PGD-2 → labels {','.join(map(str, labels))}"}
    assert (rows["target"] == (rows["label"] + 1) % CLASSES).all()
    assert checked.ok, checked.summary()
    assert set(checked.verdicts["verdict"]) == {"agree"}
    # One target per class of the model, or nothing runs (and no run directory is written).
    with pytest.raises(ValueError, match=f"lists 2 classes, but the model has {CLASSES}"):
        crosscheck(model, x, y, attacks=[{**table, "target_labels": [1, 0]}], out=tmp_path / "bad")  # type: ignore[arg-type]
    assert not (tmp_path / "bad").exists()
