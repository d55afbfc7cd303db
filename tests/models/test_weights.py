import hashlib

import pytest
import torch
from torchvision.models import resnet18 as tv_resnet18

from lhl.models import load_encoder_weights
from lhl.models.encoders import resnet18


def test_load_torchvision_state_dict_records_hash(tmp_path):
    reference = tv_resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    encoder = resnet18()
    digest = load_encoder_weights(encoder, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(encoder.stem[0].weight, reference.conv1.weight)
    assert torch.equal(encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_missing_weight_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_encoder_weights(resnet18(), tmp_path / "nope.pth")
