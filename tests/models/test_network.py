import torch

from lhl.models import MultiTaskNet
from lhl.models.encoders import resnet18, resnet50, tiny


def test_tiny_output_stride_8_and_heads():
    net = MultiTaskNet(tiny(), (1, 2, 3), 16)
    net.add_task("segmentation", 5)
    net.add_task("depth", 1)
    x = torch.rand(2, 3, 32, 48)
    out, features = net(x, return_features=True)
    assert out["segmentation"].shape == (2, 5, 32, 48) and out["depth"].shape == (2, 1, 32, 48)
    assert features[-1].shape[-2:] == (4, 6)  # output stride 8
    assert len(features) == 4


def test_encoder_runs_once_for_many_heads():
    net = MultiTaskNet(tiny(), (1, 2), 8)
    for name in ("a", "b", "c"):
        net.add_task(name, 2)
    calls = []
    net.encoder.register_forward_hook(lambda *args: calls.append(1))
    net(torch.rand(1, 3, 16, 16))
    assert len(calls) == 1


def test_batch_of_one_in_training_mode():
    net = MultiTaskNet(tiny(), (1, 2), 8)
    net.add_task("a", 3)
    net.train()
    out = net(torch.rand(1, 3, 16, 16))["a"]
    out.sum().backward()


def test_selected_tasks_only():
    net = MultiTaskNet(tiny(), (1,), 8)
    net.add_task("a", 3)
    net.add_task("b", 1)
    assert set(net(torch.rand(1, 3, 16, 16), ["b"])) == {"b"}


def test_resnet18_dilated_output_stride_8():
    encoder = resnet18()
    features = encoder(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == [64, 128, 256, 512]
    assert features[-1].shape[-2:] == (8, 8)
    convs = [m for m in encoder.layer4.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs[0].dilation == (2, 2) and convs[-1].dilation == (4, 4)


def test_resnet50_dilated_output_stride_8():
    features = resnet50()(torch.rand(1, 3, 48, 64))
    assert features[-1].shape[1:] == (2048, 6, 8)


def test_adapters_are_empty_by_default_and_rebuilt_from_their_specs():
    net = MultiTaskNet(tiny(), (1,), 8)
    net.add_task("a", 3)
    net.add_task("b", 1)
    assert len(net.adapters) == 0 and net.adapter_specs == {}
    net.add_adapter("b", "side", width=4, alpha=0.25, learn_alpha=False)
    assert net.adapter_specs == {"b": {"kind": "side", "width": 4, "alpha": 0.25, "learn_alpha": False}}
    try:
        net.add_adapter("b", "side")
    except ValueError as exc:
        assert "already has an adapter" in str(exc)
    else:
        raise AssertionError("a second adapter for one task was accepted")
    rebuilt = MultiTaskNet(tiny(), (1,), 8)
    rebuilt.add_task("a", 3)
    rebuilt.add_task("b", 1)
    rebuilt.add_adapters(net.adapter_specs)
    rebuilt.load_state_dict(net.state_dict())  # strict: the same keys
    net.eval(), rebuilt.eval()
    x = torch.rand(2, 3, 21, 19)  # odd sizes: the side map still matches the encoder's
    for task in ("a", "b"):
        assert torch.equal(net(x, [task])[task], rebuilt(x, [task])[task])


def test_decode_with_an_adapter_needs_the_images():
    net = MultiTaskNet(tiny(), (1,), 8)
    net.add_task("a", 3)
    net.add_adapter("a", "side", width=4)
    features = net.encoder(torch.rand(1, 3, 16, 16))
    try:
        net.decode(features, ["a"], (16, 16))
    except ValueError as exc:
        assert "needs the images" in str(exc)
    else:
        raise AssertionError("decode ignored the adapter")
