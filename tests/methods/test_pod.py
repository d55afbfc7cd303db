"""POD (PLOP; HAD paper App. E): zero at the teacher, gradient into the encoder only, end to end."""

from __future__ import annotations

import pytest
import torch

from lhl.config import ConfigError, load_config, resolve_method
from lhl.engine.hooks import StepOutput
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.losses.pod import pod_loss


def step(ctx, method, images):
    outputs, features = ctx.model(images, method.forward_tasks(ctx), return_features=True)
    return method.loss_terms(ctx, {"image": images}, StepOutput(outputs, features))


@pytest.mark.parametrize("mode, distance", [("local", "frobenius"), ("local", "l1"), ("local", "l2"),
                                            ("global", "frobenius"), ("global", "l1")])
def test_zero_at_the_teacher_then_weighted_pod_of_the_stage_features(smoke_config, phase_context, mode, distance):
    ctx, method = phase_context(smoke_config(f"method.mode={mode}", f"method.distance={distance}",
                                             "method.weight=0.5", "tasks=[segmentation,depth]", method="pod"), 2)
    assert method.forward_tasks(ctx) == ["depth"]
    images = torch.rand(2, 3, 32, 32)
    ctx.model.eval()  # the teacher is an eval-mode copy: same weights, same mode, same features
    assert step(ctx, method, images)["pod"].item() == 0.0
    ctx.model.train()
    _, student = ctx.model(images, [], return_features=True)
    _, teacher = method.teacher.outputs(images, [], return_features=True)
    term = step(ctx, method, images)["pod"]
    assert term.item() > 0
    assert torch.allclose(term, 0.5 * pod_loss(student, teacher, mode, distance))
    heads = list(ctx.model.heads.parameters())
    assert all(g is None for g in torch.autograd.grad(term, heads, retain_graph=True, allow_unused=True))
    grads = torch.autograd.grad(term, list(ctx.model.encoder.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_phase_one_has_no_term(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config(method="pod"), 1)
    assert step(ctx, method, torch.rand(1, 3, 32, 32)) == {}


@pytest.mark.parametrize("override, key", [("method.weight=-1", "method.weight"),
                                           ("method.mode=pyramid", "method.mode"),
                                           ("method.distance=cosine", "method.distance")])
def test_invalid_options_name_the_key(smoke_config, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_method(smoke_config(override, method="pod"))


def test_end_to_end(run_smoke, tmp_path):
    performance, run_dir = run_smoke("tasks=[segmentation,depth]", "method.weight=10", method="pod")
    expected = {1: {"new"}, 2: {"new", "pod"}}
    for event in read_events(run_dir / "events.jsonl"):
        if event["event"] == "epoch_end":
            assert set(event["losses"]) == expected[event["phase"]]
            assert all(v > 0 for v in event["losses"].values())
    vanilla = Trainer(load_config(preset="smoke", overrides=["tasks=[segmentation,depth]"]), tmp_path / "vanilla",
                      quiet=True).run()
    assert performance["phases"][-1]["metrics"] != vanilla["phases"][-1]["metrics"]
