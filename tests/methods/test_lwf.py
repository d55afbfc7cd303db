"""LwF (HAD paper App. C.3): soft-target KL by hand, regression terms, zero at the teacher, end to
end."""

from __future__ import annotations

import math

import pytest
import torch

from lhl.config import ConfigError, load_config, resolve_method
from lhl.engine.hooks import StepOutput
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.methods.lwf import soft_target_kl


def test_soft_target_kl_matches_hand_computation():
    # T = 2; teacher logits [0, 2 ln 3] → softmax([0, ln 3]) = [1/4, 3/4]; student [0, 0] → [1/2, 1/2]
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2) = −0.1732868 + 0.3040988 = 0.1308120; × T² = 0.5232481
    teacher = torch.tensor([0.0, 2 * math.log(3)]).view(1, 2, 1, 1)
    student = torch.zeros(1, 2, 1, 1)
    value = soft_target_kl(student, teacher, 2.0)
    assert value.shape == (1, 1, 1)
    # Tolerance: no long reduction here, but float32 log-softmax entries (|·| ≤ 1.4) carry a few ulp
    # each (≤ 3 · 1.2e-7 · 1.4 = 5e-7 when exp/log are not correctly rounded, which depends on the
    # CPU's vector code and the libm), the weighted difference log p − log q doubles that and T² = 4
    # scales it: |error| ≤ 4 · 2 · 5e-7 = 4e-6 (the literal itself is rounded to 1e-7).
    assert value.item() == pytest.approx(0.5232481, abs=4e-6)
    assert soft_target_kl(teacher, teacher, 2.0).abs().max() < 1e-7


def test_terms_are_weighted_sums_over_old_heads(smoke_config, phase_context, stub_teacher, fixed_step):
    ctx, method = phase_context(smoke_config("method.weight=0.5", "method.temperature=1", method="lwf"), 3)
    batch, out, teacher = fixed_step(ctx)
    method.teacher = stub_teacher(teacher)
    terms = method.loss_terms(ctx, batch, out)
    s, t = out.outputs, teacher
    kl = (t["segmentation"].softmax(1) * (t["segmentation"].log_softmax(1) - s["segmentation"].log_softmax(1))).sum(1)
    assert set(terms) == {"lwf/segmentation", "lwf/depth"} and method.teacher.calls == 1
    assert torch.allclose(terms["lwf/segmentation"], 0.5 * kl.mean())
    assert torch.allclose(terms["lwf/depth"], 0.5 * (s["depth"] - t["depth"]).abs().mean())


def test_zero_when_student_equals_teacher_and_gradient_reaches_old_heads_only(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config(method="lwf"), 3)
    images = torch.rand(2, 3, 32, 32)
    ctx.model.eval()  # the teacher is an eval-mode copy: same weights, same mode, same outputs
    terms = method.loss_terms(ctx, {"image": images}, StepOutput(ctx.model(images, method.forward_tasks(ctx)), []))
    assert all(abs(v.item()) < 1e-6 for v in terms.values())
    ctx.model.train()
    terms = method.loss_terms(ctx, {"image": images}, StepOutput(ctx.model(images, method.forward_tasks(ctx)), []))
    total = sum(terms.values())
    assert total.item() > 0
    new_head = list(ctx.model.heads["normal"].parameters())
    assert all(g is None for g in torch.autograd.grad(total, new_head, retain_graph=True, allow_unused=True))
    for part in (ctx.model.encoder, ctx.model.heads["segmentation"], ctx.model.heads["depth"]):
        grads = torch.autograd.grad(total, list(part.parameters()), retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("override, key", [("method.weight=-1", "method.weight"),
                                           ("method.temperature=0", "method.temperature")])
def test_invalid_options_name_the_key(smoke_config, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_method(smoke_config(override, method="lwf"))


def test_end_to_end(run_smoke, tmp_path):
    performance, run_dir = run_smoke("tasks=[segmentation,depth]", method="lwf")
    expected = {1: {"new"}, 2: {"new", "lwf/segmentation"}}
    for event in read_events(run_dir / "events.jsonl"):
        if event["event"] == "epoch_end":
            assert set(event["losses"]) == expected[event["phase"]]
            assert all(v > 0 for v in event["losses"].values())
        if event["event"] == "grad_norms":
            assert all(v > 0 for v in event["encoder"].values())
    vanilla = Trainer(load_config(preset="smoke", overrides=["tasks=[segmentation,depth]"]), tmp_path / "vanilla",
                      quiet=True).run()
    assert performance["phases"][-1]["metrics"] != vanilla["phases"][-1]["metrics"]
