"""DIS, naive self-distillation (eq. 3): composition, options, end to end."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lhl.config import ConfigError, load_config, resolve_method
from lhl.engine.hooks import StepOutput
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer


@pytest.mark.parametrize("alpha", [3.0, 0.5])
def test_total_is_alpha_over_t_minus_1_times_pixel_means(smoke_config, phase_context, stub_teacher, fixed_step,
                                                         alpha):
    ctx, method = phase_context(smoke_config(f"method.alpha={alpha}", method="dis"), 3)
    batch, out, teacher = fixed_step(ctx)
    method.teacher = stub_teacher(teacher)
    terms = method.loss_terms(ctx, batch, out)
    s, t = out.outputs, teacher
    seg = F.cross_entropy(s["segmentation"], t["segmentation"].argmax(1), reduction="none").mean()
    depth = (s["depth"] - t["depth"]).abs().mean()
    assert set(terms) == {"dis/segmentation", "dis/depth"} and method.teacher.calls == 1
    assert torch.allclose(terms["dis/segmentation"], alpha / 2 * seg)
    assert torch.allclose(terms["dis/depth"], alpha / 2 * depth)
    assert torch.allclose(sum(terms.values()), alpha / (3 - 1) * (seg + depth))


def test_normal_term_is_one_minus_cos(smoke_config, phase_context, stub_teacher, fixed_step):
    ctx, method = phase_context(smoke_config("tasks=[normal,segmentation]", method="dis"), 2)
    batch, out, teacher = fixed_step(ctx)
    method.teacher = stub_teacher(teacher)
    terms = method.loss_terms(ctx, batch, out)
    cos = (F.normalize(out.outputs["normal"], dim=1) * F.normalize(teacher["normal"], dim=1)).sum(1)
    assert set(terms) == {"dis/normal"}
    assert torch.allclose(terms["dis/normal"], 3.0 * (1 - cos).mean())


def test_depth_term_is_exactly_zero_when_student_equals_teacher(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config(method="dis"), 3)
    ctx.model.eval()  # the teacher is an eval-mode copy: same weights, same mode, same outputs
    images = torch.rand(2, 3, 32, 32)
    terms = method.loss_terms(ctx, {"image": images}, StepOutput(ctx.model(images, method.forward_tasks(ctx)), []))
    assert terms["dis/depth"].item() == 0.0
    assert terms["dis/segmentation"].item() > 0


def test_phase_one_and_state(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config(method="dis"), 1)
    assert method.loss_terms(ctx, {"image": torch.rand(1, 3, 8, 8)}, StepOutput({}, [])) == {}
    assert method.state_dict() == {}


@pytest.mark.parametrize("override, key", [("method.alpha=-2", "method.alpha"), ("method.alpha=yes", "method.alpha"),
                                           ("method.group_threshold=0.5", "method.group_threshold")])
def test_invalid_options_name_the_key(smoke_config, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_method(smoke_config(override, method="dis"))


def test_end_to_end(run_smoke, tmp_path):
    performance, run_dir = run_smoke(method="dis")
    events = read_events(run_dir / "events.jsonl")
    expected = {1: {"new"}, 2: {"new", "dis/segmentation"}, 3: {"new", "dis/segmentation", "dis/depth"}}
    for event in events:
        if event["event"] == "epoch_end":
            assert set(event["losses"]) == expected[event["phase"]]
        if event["event"] == "grad_norms":
            assert set(event["encoder"]) == expected[event["phase"]]
            assert all(v > 0 for v in event["encoder"].values())
    vanilla = Trainer(load_config(preset="smoke"), tmp_path / "vanilla", quiet=True).run()
    assert performance["phases"][-1]["metrics"] != vanilla["phases"][-1]["metrics"]
