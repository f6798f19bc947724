"""DenseNet-121 with normalisation inside: [0, 1] pixels in, logits out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from advparity.model.network import IMAGENET_MEAN, IMAGENET_STD, CXRClassifier, build_densenet121
from safetensors.torch import save_file
from torchvision.models import densenet121


def test_the_model_normalises_inside() -> None:
    torch.manual_seed(0)
    model = build_densenet121(num_classes=4).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        by_hand = model.backbone((x - mean) / std)
        assert torch.equal(model(x), by_hand)
        assert torch.equal(model.normalize(x), (x - mean) / std)
    assert model(x).shape == (2, 4)


@pytest.mark.parametrize("num_classes", [2, 4, 7])
def test_head_size_follows_num_classes(num_classes: int) -> None:
    model = build_densenet121(num_classes=num_classes).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 48)).shape == (1, num_classes)  # non-square works too


def test_wrong_input_shape_is_a_clear_error() -> None:
    model = build_densenet121().eval()
    with pytest.raises(ValueError, match=r"expected input of shape \[N, 3, H, W\], got \[2, 1, 32, 32\]"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="num_classes >= 2"):
        build_densenet121(num_classes=1)


def test_local_backbone_weights_load_and_head_is_replaced(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = densenet121(weights=None)
    path = tmp_path / "densenet121-imagenet.safetensors"
    save_file(source.state_dict(), str(path))
    model = build_densenet121(num_classes=4, weights=path)
    assert isinstance(model, CXRClassifier)
    assert torch.equal(model.backbone.features.conv0.weight, source.features.conv0.weight)
    assert model.backbone.classifier.out_features == 4


def test_torchvision_legacy_pth_keys_are_remapped(tmp_path: Path) -> None:
    # torchvision's published DenseNet .pth files use "norm.1" where modules are now "norm1".
    torch.manual_seed(2)
    source = densenet121(weights=None)
    legacy = {
        k.replace("norm1", "norm.1").replace("conv2", "conv.2") if "denselayer" in k else k: v
        for k, v in source.state_dict().items()
        if not k.endswith("num_batches_tracked")  # the 2017 files predate this buffer
    }
    assert any(".norm.1." in k for k in legacy)
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(legacy, path)
    model = build_densenet121(weights=path)
    layer = model.backbone.features.denseblock1.denselayer1
    assert torch.equal(layer.norm1.weight, source.features.denseblock1.denselayer1.norm1.weight)


def test_missing_weights_file() -> None:
    with pytest.raises(ValueError, match="no such file"):
        build_densenet121(weights="/nonexistent/densenet.safetensors")
