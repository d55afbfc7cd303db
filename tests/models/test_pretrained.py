"""``model.weights: imagenet`` finds torchvision's file in torch's hub cache, never downloads."""

import pytest
import torch
from torchvision.models import resnet18 as tv_resnet18

from lhl.engine.trainer import Trainer
from lhl.errors import ConfigError
from lhl.models import load_encoder_weights
from lhl.models.encoders import resnet18
from lhl.models.pretrained import resolve_weights


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def test_missing_file_says_where_to_put_it(hub, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(FileNotFoundError) as info:
        resolve_weights("imagenet", "resnet18")
    message = str(info.value)
    assert str(hub / "resnet18-f37072fd.pth") in message and "never downloads" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    with pytest.raises(FileNotFoundError, match="no ImageNet weights are known for encoder 'tiny'"):
        resolve_weights("imagenet", "tiny")


def test_finds_hub_file_and_loads_it(hub):
    reference = tv_resnet18(weights=None)
    torch.save(reference.state_dict(), hub / "resnet18-f37072fd.pth")
    path = resolve_weights("ImageNet", "resnet18")
    assert path == hub / "resnet18-f37072fd.pth"
    encoder = resnet18()
    load_encoder_weights(encoder, path)
    assert torch.equal(encoder.stem[0].weight, reference.conv1.weight)


def test_resnet50_falls_back_to_v2_and_paths_pass_through(hub, tmp_path):
    (hub / "resnet50-11ad3fa6.pth").write_bytes(b"")
    assert resolve_weights("imagenet", "resnet50").name == "resnet50-11ad3fa6.pth"
    (hub / "resnet50-0676ba61.pth").write_bytes(b"")
    assert resolve_weights("imagenet", "resnet50").name == "resnet50-0676ba61.pth"
    assert resolve_weights(str(tmp_path / "w.pth"), "resnet18") == tmp_path / "w.pth"


def test_trainer_resolves_imagenet(hub, smoke_config, tmp_path):
    config = smoke_config("model.encoder=resnet18", "model.weights=imagenet")
    with pytest.raises(ConfigError, match="resnet18-f37072fd.pth"):  # at validation, before any file is written
        Trainer(config, tmp_path / "run", quiet=True).run()
    assert not (tmp_path / "run").exists()
