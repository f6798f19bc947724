"""Checkpoints: bit-exact round trip, cards, and no unpickling without --trust."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from advparity.model.checkpoint import CheckpointError, card_path, load_checkpoint, save_checkpoint
from advparity.model.network import build_densenet121
from torchvision.models import densenet121


@pytest.fixture()
def trained_like_model() -> torch.nn.Module:
    """A DenseNet whose BatchNorm statistics are no longer the defaults."""
    torch.manual_seed(0)
    model = build_densenet121(num_classes=4)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, 32, 32))
    return model.eval()


def test_round_trip_gives_bit_exact_logits(tmp_path: Path, trained_like_model: torch.nn.Module) -> None:
    path = save_checkpoint(
        trained_like_model, {"image_size": 32, "metrics": {"test_acc": 0.5}}, tmp_path / "m.safetensors"
    )
    loaded, card = load_checkpoint(path)
    assert not loaded.training
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained_like_model(x))
    assert card["image_size"] == 32 and card["classes"][0] == "COVID"
    assert len(card["weights_sha256"]) == 64 and "torch" in card["versions"]
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temp files


def test_pickle_files_are_refused_without_trust(tmp_path: Path, trained_like_model: torch.nn.Module) -> None:
    path = tmp_path / "model.pt"
    torch.save(trained_like_model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*model\.pt.*pickles.*--trust"):
        load_checkpoint(path)
    with pytest.warns(UserWarning, match="no card"):
        loaded, _ = load_checkpoint(path, trust=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained_like_model(x))


def test_a_bare_torchvision_densenet_loads_with_trust(tmp_path: Path) -> None:
    torch.manual_seed(3)
    bare = densenet121(weights=None, num_classes=4).eval()
    path = tmp_path / "bare.pth"
    torch.save(bare.state_dict(), path)
    with pytest.warns(UserWarning) as caught:
        loaded, _ = load_checkpoint(path, trust=True)
    messages = " | ".join(str(w.message) for w in caught)
    assert "no card" in messages and "ImageNet-normalised" in messages
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), bare(loaded.normalize(x)))


def test_tampered_weights_and_missing_cards_are_caught(
    tmp_path: Path, trained_like_model: torch.nn.Module
) -> None:
    path = save_checkpoint(trained_like_model, {"image_size": 32}, tmp_path / "m.safetensors")
    card = json.loads(card_path(path).read_text())
    card["weights_sha256"] = "0" * 64
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not match its card"):
        load_checkpoint(path)
    card_path(path).unlink()
    with pytest.raises(CheckpointError, match="card .* is missing"):
        load_checkpoint(path)


def test_bad_paths(tmp_path: Path, trained_like_model: torch.nn.Module) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="expected a .safetensors path"):
        save_checkpoint(trained_like_model, {}, tmp_path / "m.pt")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="expected a .safetensors"):
        load_checkpoint(tmp_path / "weights.npz")


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Linear(3, 4))
    path = save_checkpoint(other, {"image_size": 32}, tmp_path / "linear.safetensors")
    with pytest.raises(
        CheckpointError, match="does not hold the densenet121 model its card names: .* missing"
    ):
        load_checkpoint(path)
