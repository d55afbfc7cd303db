"""iCaRL-style replay (HAD paper App. C.3; docs/deviations.md): herding selection at the end of a
phase, rebalancing, stored sigmoid / post-processed outputs, the replay losses, end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lhl.config import ConfigError, load_config, resolve_method
from lhl.engine.checkpoint import load_checkpoint
from lhl.engine.hooks import StepOutput
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.methods.buffer import herding


def loader_of(images):
    return DataLoader([{"image": image} for image in images], batch_size=2, shuffle=True)


def no_step(ctx, method):
    return method.loss_terms(ctx, {"image": torch.rand(1, 3, 32, 32)}, StepOutput({}, []))


def test_herding_selection_with_rebalancing_and_stored_outputs(smoke_config, phase_context):
    config = smoke_config("tasks=[segmentation,depth]", "method.buffer_size=4", "method.augment=false",
                          method="icarl")
    ctx, method = phase_context(config, 1)
    method.setup(ctx)
    seg_images = torch.rand(6, 3, 32, 32)
    method.after_phase(ctx, loader_of(seg_images))
    ctx.model.eval()
    with torch.no_grad():
        pooled = F.normalize(ctx.model.encoder(seg_images)[-1].mean(dim=(2, 3)), dim=1)
        chosen = herding(pooled, 4)  # phase 1: the whole buffer for segmentation
        logits = ctx.model(seg_images[chosen], ["segmentation"])["segmentation"]
    assert method.buffer.tasks == ["segmentation"] * 4
    assert torch.equal(torch.stack(method.buffer.images), seg_images[chosen].half())
    assert torch.allclose(torch.stack(method.buffer.targets).float(), logits.sigmoid(), atol=1e-3)

    ctx.phase, ctx.phase_tasks = 2, ["depth"]
    ctx.model.add_task("depth", 1)
    depth_images = torch.rand(5, 3, 32, 32)
    method.after_phase(ctx, loader_of(depth_images))
    with torch.no_grad():
        chosen_depth = herding(F.normalize(ctx.model.encoder(depth_images)[-1].mean(dim=(2, 3)), dim=1), 2)
        depth = ctx.model(depth_images[chosen_depth], ["depth"])["depth"]
    # 4 slots over 2 tasks: segmentation keeps its first 2 (best) items, depth gets 2
    assert method.buffer.tasks == ["segmentation"] * 2 + ["depth"] * 2
    assert torch.equal(torch.stack(method.buffer.images[:2]), seg_images[chosen[:2]].half())
    assert torch.equal(torch.stack(method.buffer.images[2:]), depth_images[chosen_depth].half())
    assert torch.allclose(torch.stack(method.buffer.targets[2:]).float(), depth, atol=1e-2)


def test_sigmoid_bce_matches_hand_computation(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config("tasks=[segmentation,depth]", "method.weight=2", "method.augment=false",
                                             method="icarl"), 2)
    method.setup(ctx)
    for parameter in ctx.model.heads["segmentation"].parameters():  # head output ≡ 0 (logit 0, σ = 1/2)
        parameter.data.zero_()
    channels = ctx.tasks["segmentation"].out_channels
    method.buffer.add(torch.rand(1, 3, 32, 32), "segmentation", torch.full((1, channels, 32, 32), 0.25))
    # BCE(σ(0) = 1/2, 0.25) = −(0.25 ln ½ + 0.75 ln ½) = ln 2 per pixel and channel; × weight 2
    # Tolerance: a float32 mean of n = channels·32·32 equal terms, summed in an order that depends on
    # the CPU's SIMD width and the thread count, is within n·eps (eps = 1.2e-7) of the exact mean.
    n = channels * 32 * 32
    assert no_step(ctx, method)["icarl"].item() == pytest.approx(2 * math.log(2), rel=n * 1.2e-7)


def test_replay_at_the_stored_output_is_stationary_and_reaches_its_heads(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config("method.buffer_size=4", "method.augment=false", method="icarl"), 3)
    method.setup(ctx)
    ctx.model.eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = ctx.model(images, ["segmentation", "depth"])
    method.buffer.add(images[:1], "segmentation", out["segmentation"][:1].sigmoid())
    method.buffer.add(images[1:], "depth", out["depth"][1:])
    term = no_step(ctx, method)["icarl"]
    heads = ctx.model.heads
    # BCE(s, σ(s)) has zero gradient in s, and |S − T| = 0 up to fp16 storage: nothing moves
    grads = torch.autograd.grad(term, list(heads["segmentation"].parameters()), retain_graph=True)
    assert max(g.abs().max() for g in grads) < 1e-3
    assert all(g is None for g in torch.autograd.grad(term, list(heads["normal"].parameters()),
                                                      retain_graph=True, allow_unused=True))
    ctx.model.train()  # batch statistics move the outputs away from the stored ones
    term = no_step(ctx, method)["icarl"]
    for part in (ctx.model.encoder, heads["segmentation"], heads["depth"]):
        grads = torch.autograd.grad(term, list(part.parameters()), retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("override, key", [("method.weight=-1", "method.weight"),
                                           ("method.selection=best", "method.selection"),
                                           ("method.buffer_size=0", "method.buffer_size")])
def test_invalid_options_name_the_key(smoke_config, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_method(smoke_config(override, method="icarl"))


def test_end_to_end(run_smoke, tmp_path):
    performance, run_dir = run_smoke("method.buffer_size=6", "method.weight=1", method="icarl")
    expected = {1: {"new"}, 2: {"new", "icarl"}, 3: {"new", "icarl"}}
    for event in read_events(run_dir / "events.jsonl"):
        if event["event"] == "epoch_end":
            assert set(event["losses"]) == expected[event["phase"]]
    buffers = [load_checkpoint(run_dir / "checkpoints" / f"phase-{t}.pt")["method"]["buffer"] for t in (1, 2, 3)]
    assert [b["tasks"] for b in buffers] == [["segmentation"] * 6, ["segmentation"] * 3 + ["depth"] * 3,
                                             ["segmentation"] * 2 + ["depth"] * 2 + ["normal"] * 2]
    vanilla = Trainer(load_config(preset="smoke"), tmp_path / "vanilla", quiet=True).run()
    assert performance["phases"][-1]["metrics"] != vanilla["phases"][-1]["metrics"]
