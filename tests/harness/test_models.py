"""Your own architecture: torchvision:NAME or package.module:factory, trained, attacked and reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from advparity.harness.cam import target_layer
from advparity.harness.cli import EXIT_OK, main
from advparity.model.checkpoint import load_checkpoint, model_spec
from advparity.model.network import CXRClassifier, build_model
from advparity.reports.load import load_run
from torch import nn

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "covid19-image-dataset"
ROOT = Path(__file__).resolve().parents[2]


def test_a_torchvision_model_gets_a_new_head_and_normalisation_inside() -> None:
    torch.manual_seed(0)
    model = build_model("torchvision:resnet18", num_classes=3).eval()
    assert isinstance(model, CXRClassifier) and isinstance(model.backbone.fc, nn.Linear)
    assert model.backbone.fc.out_features == 3
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    assert target_layer(model)[0] == "backbone.layer4.1.conv2"
    assert target_layer(model, "backbone.layer3") == ("backbone.layer3", model.backbone.layer3)
    with pytest.raises(ValueError, match="--cam-layer 'backbone.layer9': no such module in CXRClassifier"):
        target_layer(model, "backbone.layer9")


def test_a_factory_builds_the_user_s_module() -> None:
    model = build_model("support.factory_models:small_cnn", num_classes=5)
    assert type(model).__name__ == "SmallCNN" and model(torch.rand(2, 3, 16, 16)).shape == (2, 5)


@pytest.mark.parametrize(
    ("spec", "weights", "message"),
    [
        ("torchvision:no_such_net", None, "not an image classifier in torchvision.models.list_models()"),
        ("support.factory_models:missing", None, "cannot import the factory"),
        ("support.factory_models:not_a_model", None, "expected the factory to return an nn.Module, got str"),
        ("support.factory_models:small_cnn", "imagenet", "a factory builds its own weights"),
        ("resnet", None, "expected 'densenet121', 'torchvision:NAME' or 'package.module:factory'"),
    ],
)
def test_bad_model_specs_say_what_is_expected(spec: str, weights: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model(spec, num_classes=3, weights=weights)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the shared real data set is not at {SHARED}")
def test_resnet18_on_the_real_chest_xrays_end_to_end(tmp_path: Path) -> None:
    """317 real X-rays (3 classes, split folders, jpeg/png, RGB/grey): train ResNet-18 at 64 px, run, report."""
    preset = tmp_path / "resnet64.toml"
    text = (ROOT / "harness" / "presets" / "smoke.toml").read_text()
    preset.write_text(
        text.replace("image_size = 32", "image_size = 64").replace("max_epochs = 1", "max_epochs = 2")
    )
    model_dir, run_dir = tmp_path / "model", tmp_path / "run"
    common = ["--preset", str(preset)]
    assert (
        main(
            [
                "-q",
                "train",
                *common,
                "--data",
                str(SHARED),
                "--model",
                "torchvision:resnet18",
                "--out",
                str(model_dir),
            ]
        )
        == EXIT_OK
    )
    model, card = load_checkpoint(model_dir / "model.safetensors")
    assert model_spec(card) == "torchvision:resnet18" and card["classes"] == [
        "Covid",
        "Normal",
        "Viral Pneumonia",
    ]
    assert type(model.backbone).__name__ == "ResNet" and card["image_size"] == 64
    assert (
        main(
            [
                "-q",
                "run",
                *common,
                "--checkpoint",
                str(model_dir / "model.safetensors"),
                "--out",
                str(run_dir),
            ]
        )
        == EXIT_OK
    )
    assert main(["-q", "report", str(run_dir)]) == EXIT_OK  # every library agrees, judged on x_adv
    run = load_run(run_dir)
    assert run.manifest["classes"] == ["Covid", "Normal", "Viral Pneumonia"]
    assert set(run.results["label"]) <= {0, 1, 2}
    assert (
        main(["-q", "gradcam", str(run_dir), "--per-class", "1", "--cam-layer", "backbone.layer4"]) == EXIT_OK
    )
    assert (run_dir / "gradcam").is_dir()
