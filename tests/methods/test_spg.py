"""SPG (HAD paper App. C.3): importance by hand (standardise, |tanh|, max over heads and phases),
the masked Adam update, and an end-to-end run (the fully protected run is in
test_gradient_space.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lhl.config import ConfigError, resolve_method
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.methods.encoder_params import soft_importance
from lhl.methods.spg import SPG

SMALL, LARGE = math.tanh(1 / math.sqrt(3)), math.tanh(2 / math.sqrt(3))


def test_soft_importance_by_hand():
    # [1, 2, 3]: mean 2, std 1 → z = [−1, 0, 1]
    assert torch.allclose(soft_importance(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([math.tanh(1), 0, math.tanh(1)]))
    # [0, 0, 1]: mean 1/3, std 1/√3 → z = [−1/√3, −1/√3, 2/√3]; the sign of the gradient does not matter
    expected = torch.tensor([SMALL, SMALL, LARGE])
    assert torch.allclose(soft_importance(torch.tensor([0.0, 0.0, 1.0])), expected)
    assert torch.allclose(soft_importance(torch.tensor([0.0, 0.0, -5.0])), expected)
    assert torch.equal(soft_importance(torch.full((2, 2), 3.0)), torch.zeros(2, 2))


class TwoHeadLinear(nn.Module):
    """encoder p = w·x (w = [0, 0, 1]); task ``new`` predicts p, old head ``old`` outputs p²/2."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 1, bias=False)
        self.encoder.weight.data = torch.tensor([[0.0, 0.0, 1.0]])
        self.heads = nn.ModuleDict({"old": nn.Identity(), "new": nn.Identity()})

    def forward(self, x, tasks):
        p = self.encoder(x).squeeze(-1)
        return {t: p if t == "new" else p.pow(2) / 2 for t in tasks}


def test_importance_is_max_over_heads_and_phases_by_hand():
    model = TwoHeadLinear()
    task = SimpleNamespace(name="new", loss=lambda p, y: ((p - y) ** 2).mean())
    ctx = SimpleNamespace(model=model, tasks={"new": task}, phase_tasks=["new"], old_tasks=["old"], phase=2,
                          task_order=["old", "new", "later"], device=torch.device("cpu"), log=lambda *a, **k: None)
    # batch 1: x = e1, y = 1: p = 0 → new-task gradient 2(0−1)e1 = [−2, 0, 0]; old: p·x = 0
    # batch 2: x = e3, y = 1: p = 1 → new-task gradient 0;                 old: p·x = [0, 0, 1]
    loader = [{"image": torch.tensor([[1.0, 0.0, 0.0]]), "new": torch.tensor([1.0])},
              {"image": torch.tensor([[0.0, 0.0, 1.0]]), "new": torch.tensor([1.0])}]
    method = SPG(SPG.Options())
    method.setup(ctx)
    method.importance = {"weight": torch.tensor([[0.9, 0.1, 0.1]])}  # after phase 1
    method.after_phase(ctx, loader)
    # new: |tanh z([−2, 0, 0])| = [L, S, S]; old: [S, S, L]; max over heads [L, S, L]; max with phase 1
    assert torch.allclose(method.importance["weight"], torch.tensor([[0.9, SMALL, LARGE]]))


def _adam_context(apply_to):
    torch.manual_seed(0)
    model = nn.Module()
    model.encoder = nn.Sequential(nn.Conv2d(2, 3, 1, bias=True), nn.BatchNorm2d(3))
    model.heads = nn.ModuleDict({"old": nn.Conv2d(3, 1, 1), "new": nn.Conv2d(3, 1, 1)})
    ctx = SimpleNamespace(model=model, phase=2, old_tasks=["old"], log=lambda *a, **k: None)
    method = SPG(SPG.Options(apply_to=apply_to))
    method.setup(ctx)
    # weight importance: row 0 fully important, row 1 half, row 2 free; bias: 1, 0.99, 0
    method.importance = {"0.weight": torch.tensor([1.0, 0.5, 0.0]).view(3, 1, 1, 1).expand(3, 2, 1, 1).clone(),
                         "0.bias": torch.tensor([1.0, 0.99, 0.0])}
    method.before_phase(ctx, None)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1, weight_decay=1e-2)
    return ctx, method, optimizer


def _steps(ctx, method, optimizer, steps=3):
    conv = ctx.model.encoder[0]
    start = [conv.weight.detach().clone(), conv.bias.detach().clone()]
    for _ in range(steps):
        loss = ctx.model.heads["new"](ctx.model.encoder(torch.randn(4, 2, 3, 3))).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        method.after_backward(ctx)
        method.before_step(ctx)
        optimizer.step()
        method.after_step(ctx)
    return conv.weight.detach() - start[0], conv.bias.detach() - start[1]


def test_masked_adam_update_is_zero_for_importance_one():
    ctx, method, optimizer = _adam_context("update")
    assert not ctx.model.encoder[1].weight.requires_grad and not ctx.model.heads["old"].weight.requires_grad
    weight, bias = _steps(ctx, method, optimizer)
    assert torch.equal(weight[0], torch.zeros_like(weight[0])) and bias[0] == 0  # importance 1: bit-exact
    assert weight[2].abs().min() > 1e-3 and bias[2].abs() > 1e-3  # importance 0: Adam's full step
    assert bias[1].abs() < 0.05 * bias[2].abs()  # importance 0.99: 1 % of a step of the same size


def test_gradient_masking_is_undone_by_adam():
    ctx, method, optimizer = _adam_context("gradient")
    weight, bias = _steps(ctx, method, optimizer, steps=1)
    # importance 1 zeroes the gradient, but Adam adds the coupled weight decay wd·θ and normalises
    # it: a full step of size lr (0.1) for a fully "protected" weight
    assert ((weight[0].abs() > 0.09) & (weight[0].abs() <= 0.1 + 1e-6)).all()
    # importance 0.99 scales the gradient by 0.01, yet Adam's first step is lr·sign(g) either way
    assert bias[1].abs() > 0.09 and bias[2].abs() > 0.09


def test_options_are_validated(smoke_config):
    with pytest.raises(ConfigError, match=r"method\.apply_to"):
        resolve_method(smoke_config("method.apply_to=weights", method="spg"))


def test_end_to_end_state_is_checkpointed_and_logged(smoke_config, tmp_path, record_phase_2):
    trainer = Trainer(smoke_config("tasks=[segmentation,depth,normal]", method="spg"), tmp_path / "run", quiet=True)
    states = record_phase_2(trainer)
    trainer.run()
    start, end = states["start"]["encoder"], states["end"]["encoder"]
    assert any(not torch.equal(v, end[k]) for k, v in start.items() if k.endswith("conv1.weight"))  # soft masks
    events = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["event"] == "spg_importance"]
    assert [e["phase"] for e in events] == [1, 2] and 0 < events[0]["mean"] < 1  # none after the last phase
    saved = torch.load(tmp_path / "run" / "checkpoints" / "phase-2.pt", weights_only=True)["method"]
    assert "layer1.0.conv1.weight" in saved["importance"] and "stem.1.weight" in saved["importance"]
    first = torch.load(tmp_path / "run" / "checkpoints" / "phase-1.pt", weights_only=True)["method"]
    assert all((saved["importance"][k] >= v).all() for k, v in first["importance"].items())  # running max
