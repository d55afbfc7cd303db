"""Encoder construction: the dilated trunks and their classification-stride form (lhl.models.encoders)."""

import pytest
import torch

from lhl.registry import ENCODERS, load_builtins


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "tiny"])
def test_undilate_gives_torchvision_classification_trunk_and_keeps_the_tensors(name):
    from torchvision.models import resnet
    from lhl.models.encoders import _TinyResNet, undilate

    load_builtins()
    torch.manual_seed(0)
    reference = _TinyResNet() if name == "tiny" else getattr(resnet, name)(weights=None)
    encoder = ENCODERS.get(name)()
    encoder.load_state_dict({("stem.0." + k[6:] if k.startswith("conv1.") else "stem.1." + k[4:] if k.startswith("bn1.")
                              else k): v for k, v in reference.state_dict().items() if not k.startswith("fc.")})
    before = {k: v.data_ptr() for k, v in encoder.state_dict().items()}
    undilate(encoder)
    assert {k: v.data_ptr() for k, v in encoder.state_dict().items()} == before
    reference.eval(), encoder.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ours = encoder(x)
        y = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        theirs = []
        for stage in (reference.layer1, reference.layer2, reference.layer3, reference.layer4):
            y = stage(y)
            theirs.append(y)
    assert [tuple(o.shape[-2:]) for o in ours] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
