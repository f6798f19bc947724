"""Grad-CAM maps from the package equal the hand computation, and the model is left as it was."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from advparity.harness.cam import grad_cam, last_conv_block, target_layer
from advparity.model.network import build_densenet121
from support.gradcam_nets import GapNet, InplaceReluNet, hand_cam
from torch import nn

# Float32 activations and the package's 1e-7 in its scaling: agreement to ~1e-6 is all float32 allows.
ATOL = 1e-5


def _hooks(model: nn.Module) -> list[str]:
    """Every module hook and every parameter tensor hook still registered."""
    found = []
    for name, module in model.named_modules():
        for kind in ("_forward_hooks", "_backward_hooks", "_forward_pre_hooks", "_backward_pre_hooks"):
            if getattr(module, kind):
                found.append(f"{name or 'model'}.{kind}")
    for name, param in model.named_parameters():
        if param._backward_hooks or getattr(param, "_post_accumulate_grad_hooks", None):
            found.append(f"{name} tensor hook")
    return found


def test_gap_net_map_equals_the_hand_computation(gap_net: GapNet) -> None:
    # Same-size feature map (stride 1, padding 1): the package's resize is the identity, so this
    # compares the CAM itself after the same min-max scaling on both sides.
    x = torch.rand(3, 3, 6, 6)
    classes = [0, 2, 1]
    maps = grad_cam(gap_net, x, gap_net.relu, classes)
    assert maps.maps.shape == (3, 6, 6) and maps.feature_shape == (6, 6)
    with torch.no_grad():
        activation = gap_net.relu(gap_net.conv(x)).numpy()
    weight = gap_net.fc.weight.detach().numpy()
    for i, c in enumerate(classes):
        expected = hand_cam(activation[i], weight[c], relu_after=False)
        assert expected.max() == pytest.approx(1.0, abs=1e-6), "a degenerate case would test nothing"
        np.testing.assert_allclose(maps.maps[i], expected, atol=ATOL)


def test_upsampled_map_equals_the_hand_computation_resized() -> None:
    # Stride 2: 4x4 features upsampled to 8x8. The hand map goes through the package's steps in its
    # order (scale, OpenCV bilinear resize, scale again); what is checked is the CAM and that order.
    torch.manual_seed(3)
    net = GapNet(stride=2).eval()
    x = torch.rand(2, 3, 8, 8)
    maps = grad_cam(net, x, net.relu, [1, 1])
    assert maps.maps.shape == (2, 8, 8) and maps.feature_shape == (4, 4)
    with torch.no_grad():
        activation = net.relu(net.conv(x)).numpy()
    for i in range(2):
        expected = hand_cam(activation[i], net.fc.weight[1].detach().numpy(), relu_after=False, size=(8, 8))
        np.testing.assert_allclose(maps.maps[i], expected, atol=ATOL)


def test_inplace_relu_after_the_target_layer(inplace_net: InplaceReluNet) -> None:
    # The target's output is overwritten by F.relu(..., inplace=True). The map must be Grad-CAM of the
    # BatchNorm output (activations and gradients both pre-ReLU); without the copy in grad_cam the
    # package would store the post-ReLU values on CPU and this comparison fails.
    x = torch.rand(4, 3, 5, 5)
    classes = [0, 1, 2, 0]
    maps = grad_cam(inplace_net, x, inplace_net.bn, classes)
    with torch.no_grad():
        activation = inplace_net.bn(inplace_net.conv(x)).numpy()
    assert (activation < 0).any(), "the ReLU must remove something for this test to mean anything"
    weight = inplace_net.fc.weight.detach().numpy()
    for i, c in enumerate(classes):
        expected = hand_cam(activation[i], weight[c], relu_after=True)
        np.testing.assert_allclose(maps.maps[i], expected, atol=ATOL)


def test_each_image_gets_its_own_class_and_batches_do_not_matter(gap_net: GapNet) -> None:
    x = torch.rand(5, 3, 6, 6)
    classes = [0, 1, 2, 1, 0]
    together = grad_cam(gap_net, x, gap_net.relu, classes, batch_size=16).maps
    one_by_one = grad_cam(gap_net, x, gap_net.relu, classes, batch_size=1).maps
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    other_class = grad_cam(gap_net, x[:1], gap_net.relu, [2]).maps
    assert not np.allclose(other_class[0], together[0], atol=1e-3)


def test_model_state_is_restored_and_no_hooks_remain(inplace_net: InplaceReluNet) -> None:
    net = inplace_net
    net.train()
    net.bn.eval()  # a frozen BatchNorm inside a model in train mode: restored per module
    net.conv.bias.requires_grad_(False)
    marker = torch.full_like(net.fc.weight, 7.0)
    net.fc.weight.grad = marker
    modes = {name: m.training for name, m in net.named_modules()}
    flags = {name: p.requires_grad for name, p in net.named_parameters()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(2, 3, 5, 5)
    x_before = x.clone()

    for _ in range(3):
        grad_cam(net, x, net.bn, [0, 1])

    assert {name: m.training for name, m in net.named_modules()} == modes
    assert {name: p.requires_grad for name, p in net.named_parameters()} == flags
    assert net.fc.weight.grad is marker and bool((marker == 7.0).all())
    assert all(p.grad is None for name, p in net.named_parameters() if name != "fc.weight")
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())  # running stats too
    assert _hooks(net) == []
    assert torch.equal(x, x_before) and not x.requires_grad and x.grad is None


def test_the_autograd_graph_and_its_tensor_hooks_are_released(gap_net: GapNet) -> None:
    # The package registers a gradient hook on the target's output at every forward and keeps the
    # graph (retain_graph=True); once grad_cam returns, that output must be gone, hooks with it.
    outputs: list[weakref.ref[torch.Tensor]] = []
    probe = gap_net.relu.register_forward_hook(lambda _m, _i, out: outputs.append(weakref.ref(out)))
    try:
        grad_cam(gap_net, torch.rand(2, 3, 6, 6), gap_net.relu, [0, 1])
    finally:
        probe.remove()
    gc.collect()
    assert len(outputs) == 1 and outputs[0]() is None


def test_a_failure_inside_the_package_is_raised_and_cleaned_up(inplace_net: InplaceReluNet) -> None:
    # Class 9 does not exist: the package raises IndexError, which its own __exit__ would swallow.
    inplace_net.train()
    with pytest.raises(IndexError):
        grad_cam(inplace_net, torch.rand(1, 3, 5, 5), inplace_net.bn, [9])
    assert _hooks(inplace_net) == []
    assert all(m.training for m in inplace_net.modules())


def test_works_inside_no_grad_and_checks_its_input(gap_net: GapNet) -> None:
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        inside = grad_cam(gap_net, x, gap_net.relu, [1]).maps
    np.testing.assert_array_equal(inside, grad_cam(gap_net, x, gap_net.relu, [1]).maps)
    with pytest.raises(ValueError, match="one class per image"):
        grad_cam(gap_net, x, gap_net.relu, [0, 1])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        grad_cam(gap_net, x[0], gap_net.relu, [0])
    with pytest.raises(ValueError, match="finite"):
        grad_cam(gap_net, x * float("nan"), gap_net.relu, [0])


def _densenet_hand_cam(model: nn.Module, x: torch.Tensor, c: int) -> np.ndarray:
    with torch.no_grad():
        features = model.backbone.features(model.normalize(x))[0].numpy()  # norm5's output, pre-ReLU
    weight = model.backbone.classifier.weight[c].detach().numpy()
    return hand_cam(features, weight, relu_after=True, size=tuple(x.shape[-2:]))


def test_densenet121_maps() -> None:
    torch.manual_seed(0)
    model = build_densenet121(weights=None).eval()
    layer = last_conv_block(model)
    # 32 px: the last block is 1x1, one value per map, which the package's min-max scaling turns into
    # an all-zero map. Shapes and ranges still hold; reports.gradcam documents what a zero map scores.
    x32 = torch.rand(2, 3, 32, 32)
    small = grad_cam(model, x32, layer, [0, 3])
    assert small.maps.shape == (2, 32, 32) and small.feature_shape == (1, 1)
    assert np.isfinite(small.maps).all() and (small.maps >= 0).all() and (small.maps == 0).all()
    # 64 px: a 2x2 block; the maps equal the hand computation through norm5 and the in-place ReLU.
    x64 = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        pred = model(x64).argmax(dim=1)
    maps = grad_cam(model, x64, layer, pred)
    assert maps.maps.shape == (3, 64, 64) and maps.feature_shape == (2, 2)
    assert np.isfinite(maps.maps).all() and (maps.maps >= 0).all() and (maps.maps <= 1).all()
    for i in range(3):
        np.testing.assert_allclose(
            maps.maps[i], _densenet_hand_cam(model, x64[i : i + 1], int(pred[i])), atol=ATOL
        )
    assert not model.training and _hooks(model) == []
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_the_target_layer_is_norm5_for_densenet_and_the_last_conv_otherwise() -> None:
    model = build_densenet121(weights=None)
    assert last_conv_block(model) is model.backbone.features.norm5
    gap = GapNet()
    assert target_layer(gap) == ("conv", gap.conv)
    with pytest.raises(ValueError, match="without nn.Conv2d"):
        target_layer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)))


def test_hand_model_matches_the_torch_forward(inplace_net: InplaceReluNet) -> None:
    # The closed-form head in gradcam_nets assumes score = fc(mean(ReLU(A))); check that it is.
    x = torch.rand(2, 3, 5, 5)
    with torch.no_grad():
        a = inplace_net.bn(inplace_net.conv(x))
        by_hand = inplace_net.fc(F.relu(a).mean(dim=(2, 3)))
        np.testing.assert_allclose(inplace_net(x).numpy(), by_hand.numpy(), atol=1e-6)
