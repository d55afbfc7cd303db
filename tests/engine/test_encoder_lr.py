"""train.encoder_lr_scale: the encoder's learning rate is train.lr × scale, everything else train.lr."""

import json
from types import SimpleNamespace

import pytest
import torch

from lhl.config import ConfigError
from lhl.engine.hooks import Method
from lhl.models import MultiTaskNet
from lhl.registry import ENCODERS, load_builtins


def _net() -> MultiTaskNet:
    load_builtins()
    torch.manual_seed(0)
    net = MultiTaskNet(ENCODERS.get("tiny")(), head_rates=[1, 2], head_channels=8, head_dropout=0.0)
    net.add_task("depth", 1)
    return net


def _one_adam_step(scale: float, lr: float = 1e-3) -> tuple[float, float, float, float]:
    """(median, max) |Δw| over the encoder's and over the head's parameters after one Adam step."""
    net = _net()
    ctx = SimpleNamespace(model=net, config=SimpleNamespace(train=SimpleNamespace(
        lr=lr, weight_decay=0.0, encoder_lr_scale=scale)))
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = Method(None).make_optimizer(ctx, params)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    net.train()
    net(torch.rand(2, 3, 16, 16), ["depth"])["depth"].square().mean().backward()
    optimizer.step()
    moved = {name: (p.detach() - before[name]).abs() for name, p in net.named_parameters() if p.grad is not None}
    enc = torch.cat([d.flatten() for n, d in moved.items() if n.startswith("encoder.")])
    head = torch.cat([d.flatten() for n, d in moved.items() if n.startswith("heads.")])
    enc, head = enc[enc > 0], head[head > 0]  # Adam's first step moves each parameter with a gradient by ±lr
    return enc.median().item(), enc.max().item(), head.median().item(), head.max().item()


@pytest.mark.parametrize("scale", [1.0, 0.1, 3.0])
def test_first_adam_step_moves_encoder_by_scaled_lr_and_heads_by_lr(scale):
    lr = 1e-3
    enc_median, enc_max, head_median, head_max = _one_adam_step(scale, lr)
    # Adam's first update is lr · g/(|g| + eps), ±lr wherever |g| ≫ eps (float32 rounding of w ± lr aside)
    assert enc_max == pytest.approx(lr * scale, rel=1e-3) and enc_median == pytest.approx(lr * scale, rel=1e-2)
    assert head_max == pytest.approx(lr, rel=1e-3) and head_median == pytest.approx(lr, rel=1e-2)


def test_scale_one_is_a_single_group_and_frozen_encoder_leaves_no_empty_group():
    net = _net()
    params = list(net.parameters())
    from lhl.engine.hooks import encoder_param_groups
    assert len(encoder_param_groups(net, params, 1e-3, 1.0)) == 1
    groups = encoder_param_groups(net, params, 1e-3, 0.1)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-4), 1e-3]
    assert sum(len(g["params"]) for g in groups) == len(params)
    heads_only = [p for n, p in net.named_parameters() if n.startswith("heads.")]
    assert [g["lr"] for g in encoder_param_groups(net, heads_only, 1e-3, 0.1)] == [1e-3]


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_bad_scale_is_one_line(smoke_config, value):
    with pytest.raises(ConfigError, match="train.encoder_lr_scale"):
        smoke_config(f"train.encoder_lr_scale={value}")


def test_runs_made_before_the_option_resume_and_extend_without_a_difference(smoke_config):
    from lhl.config import config_differences

    current = smoke_config().to_dict()
    older = {**current, "train": {k: v for k, v in current["train"].items() if k != "encoder_lr_scale"}}
    assert config_differences(older, current) == []
    scaled = smoke_config("train.encoder_lr_scale=0.1").to_dict()
    assert config_differences(older, scaled) == ["train.encoder_lr_scale: run has 1.0, now 0.1"]


def test_run_with_scaled_encoder_lr(run_smoke):
    performance, out = run_smoke("train.encoder_lr_scale=0.1", "train.epochs=2")  # lr > 0 after epoch 1
    assert len(performance["phases"]) == 3
    assert "encoder_lr_scale: 0.1" in (out / "config.yaml").read_text()
    # the logged lr is train.lr's schedule (the heads' group), the encoder's is logged beside it
    ends = [e for e in map(json.loads, (out / "events.jsonl").read_text().splitlines()) if e["event"] == "epoch_end"]
    assert ends and any(e["lr"] > 0 for e in ends)
    assert all(e["encoder_lr"] == pytest.approx(0.1 * e["lr"], rel=1e-12, abs=1e-300) for e in ends)


def test_single_group_logs_no_encoder_lr(run_smoke):
    _, out = run_smoke()
    ends = [e for e in map(json.loads, (out / "events.jsonl").read_text().splitlines()) if e["event"] == "epoch_end"]
    assert ends and all("encoder_lr" not in e for e in ends)
