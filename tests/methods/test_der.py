"""DER (HAD paper App. C.3): reservoir insertion of raw outputs, the replay MSE, gradients, end to
end."""

from __future__ import annotations

import pytest
import torch

from lhl.config import ConfigError, load_config, resolve_method
from lhl.engine.checkpoint import load_checkpoint
from lhl.engine.hooks import StepOutput
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer


def step(ctx, method, images):
    outputs, features = ctx.model(images, method.forward_tasks(ctx), return_features=True)
    return method.loss_terms(ctx, {"image": images}, StepOutput(outputs, features)), outputs


def test_stores_raw_outputs_then_replays_them_at_zero_loss(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config("tasks=[segmentation,depth]", "method.weight=1", "method.augment=false",
                                             method="der"), 1)
    method.setup(ctx)
    ctx.model.eval()
    images = torch.rand(3, 3, 32, 32)
    terms, outputs = step(ctx, method, images)
    assert terms == {}  # empty buffer: nothing to replay at the first step
    assert len(method.buffer) == 3 and method.buffer.tasks == ["segmentation"] * 3
    assert torch.equal(method.buffer.targets[0], outputs["segmentation"][0].detach().half())
    terms, _ = step(ctx, method, images)  # eval mode, unchanged weights: replay = stored output up to fp16
    assert 0 <= terms["der"].item() < 1e-5
    ctx.model.train()  # batch statistics change the outputs: the term becomes positive
    terms, _ = step(ctx, method, images)
    assert terms["der"].item() > 1e-4


def test_term_is_weighted_mean_squared_error_through_each_samples_head(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config("tasks=[segmentation,depth]", "method.weight=0.5", "method.augment=false",
                                             "method.replay_batch=8", method="der"), 2)
    method.setup(ctx)
    ctx.model.eval()
    seg_images, depth_images = torch.rand(2, 3, 32, 32), torch.rand(1, 3, 32, 32)
    seg_targets = torch.zeros(2, ctx.tasks["segmentation"].out_channels, 32, 32)
    depth_targets = torch.full((1, 1, 32, 32), 2.0)
    method.buffer.add(seg_images, "segmentation", seg_targets)
    method.buffer.add(depth_images, "depth", depth_targets)
    terms = method.loss_terms(ctx, {"image": torch.rand(1, 3, 32, 32)},
                              StepOutput({"depth": torch.zeros(1, 1, 32, 32)}, []))
    seg = ctx.model(seg_images.half().float(), ["segmentation"])["segmentation"]
    depth = ctx.model(depth_images.half().float(), ["depth"])["depth"]
    # mean over the 3 samples of each one's mean squared error against its stored map, × 0.5
    per_sample = torch.cat([seg.pow(2).flatten(1).mean(1), (depth - 2).pow(2).flatten(1).mean(1)])
    assert torch.allclose(terms["der"], 0.5 * per_sample.mean(), rtol=1e-4)
    heads = ctx.model.heads
    for part, reached in ((ctx.model.encoder, True), (heads["segmentation"], True), (heads["depth"], True)):
        grads = torch.autograd.grad(terms["der"], list(part.parameters()), retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads) == reached


def test_replay_of_old_samples_never_reaches_another_tasks_head(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config("tasks=[segmentation,depth]", method="der"), 2)
    method.setup(ctx)
    channels = ctx.tasks["segmentation"].out_channels
    method.buffer.add(torch.rand(2, 3, 32, 32), "segmentation", torch.rand(2, channels, 32, 32))
    terms = method.loss_terms(ctx, {"image": torch.rand(1, 3, 32, 32)},
                              StepOutput({"depth": torch.zeros(1, 1, 32, 32)}, []))
    depth_head = list(ctx.model.heads["depth"].parameters())
    assert all(g is None for g in torch.autograd.grad(terms["der"], depth_head, allow_unused=True))


@pytest.mark.parametrize("override, key", [("method.weight=-1", "method.weight"),
                                           ("method.buffer_size=0", "method.buffer_size"),
                                           ("method.replay_batch=0", "method.replay_batch")])
def test_invalid_options_name_the_key(smoke_config, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_method(smoke_config(override, method="der"))


def test_end_to_end(run_smoke, tmp_path):
    performance, run_dir = run_smoke("tasks=[segmentation,depth]", method="der")
    for event in read_events(run_dir / "events.jsonl"):
        if event["event"] == "epoch_end":
            assert set(event["losses"]) == {"new", "der"} and event["losses"]["der"] > 0
    state = load_checkpoint(run_dir / "checkpoints" / "phase-1.pt")["method"]["buffer"]
    assert state["seen"] == 12 and state["tasks"] == ["segmentation"] * 12  # 24 images / 2 phases, all kept
    final = load_checkpoint(run_dir / "checkpoints" / "phase-2.pt")["method"]["buffer"]
    assert final["seen"] == 24 and set(final["tasks"]) == {"segmentation", "depth"}
    vanilla = Trainer(load_config(preset="smoke", overrides=["tasks=[segmentation,depth]"]), tmp_path / "vanilla",
                      quiet=True).run()
    assert performance["phases"][-1]["metrics"] != vanilla["phases"][-1]["metrics"]
