"""EWC (HAD paper App. C.3): Fisher by hand on a linear model, the quadratic penalty, modes, end to
end."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lhl.config import ConfigError, load_config, resolve_method
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.methods.ewc import EWC
from lhl.methods.encoder_params import encoder_parameters, quadratic_penalty, snapshot


class LinearNet(nn.Module):
    """encoder: y = w·x with w = [1, −1] (no bias); one head that the penalty must never see."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 1, bias=False)
        self.encoder.weight.data = torch.tensor([[1.0, -1.0]])
        self.heads = nn.ModuleDict({"t": nn.Linear(1, 1)})

    def forward(self, x, tasks):
        return {t: self.encoder(x) for t in tasks}


def linear_context(options):
    model = LinearNet()
    task = SimpleNamespace(name="t", loss=lambda p, y: ((p.squeeze(-1) - y) ** 2).mean())
    ctx = SimpleNamespace(model=model, tasks={"t": task}, phase_tasks=["t"], phase=1, device=torch.device("cpu"),
                          log=lambda *a, **k: None)
    method = EWC(options)
    method.setup(ctx)
    # x1 = [1, 2], y1 = 0: residual w·x1 − y1 = −1, gradient 2·(−1)·x1 = [−2, −4]
    # x2 = [3, 1], y2 = 1: residual 2 − 1 = 1,    gradient 2·1·x2 = [6, 2]
    loader = [{"image": torch.tensor([[1.0, 2.0], [3.0, 1.0]]), "t": torch.tensor([0.0, 1.0])}]
    return ctx, method, loader


@pytest.mark.parametrize("fisher, expected", [
    ("minibatch", [4.0, 1.0]),     # one batch: mean gradient ([−2,−4] + [6,2]) / 2 = [2, −1], squared
    ("per_sample", [20.0, 10.0]),  # ([4, 16] + [36, 4]) / 2
])
def test_fisher_of_a_linear_model_matches_hand_computation(fisher, expected):
    ctx, method, loader = linear_context(EWC.Options(fisher=fisher))
    method.after_phase(ctx, loader)
    assert list(method.fishers[0]) == ["weight"]  # encoder only: the head is not in the Fisher
    assert torch.allclose(method.fishers[0]["weight"], torch.tensor([expected]))
    assert torch.equal(method.anchors[0]["weight"], torch.tensor([[1.0, -1.0]]))


def test_online_mode_decays_and_sums_with_one_anchor():
    ctx, method, loader = linear_context(EWC.Options(mode="online", gamma=0.5))
    method.after_phase(ctx, loader)
    ctx.model.encoder.weight.data = torch.tensor([[0.0, 0.0]])  # phase 2 moved w; x·w = 0 for both images
    method.after_phase(ctx, loader)
    # phase 2: residuals 0 − 0 = 0 and 0 − 1 = −1
    #   → mean gradient (0 + 2·(−1)·[3, 1]) / 2 = [−3, −1] → F2 = [9, 1]
    assert len(method.fishers) == 1
    assert torch.allclose(method.fishers[0]["weight"], torch.tensor([[0.5 * 4 + 9, 0.5 * 1 + 1]]))
    assert torch.equal(method.anchors[0]["weight"], torch.tensor([[0.0, 0.0]]))


def test_offline_mode_keeps_one_term_per_task():
    ctx, method, loader = linear_context(EWC.Options(lam=2.0))
    method.after_phase(ctx, loader)  # F1 = [4, 1] at [1, −1]
    ctx.model.encoder.weight.data = torch.tensor([[0.0, 0.0]])
    method.after_phase(ctx, loader)  # F2 = [9, 1] at [0, 0]
    ctx.model.encoder.weight.data = torch.tensor([[1.0, 1.0]])
    # λ (F1·(θ−θ1*)² + F2·(θ−θ2*)²) = 2·(4·0 + 1·4 + 9·1 + 1·1) = 28
    assert method.loss_terms(ctx, {}, None)["ewc_penalty"].item() == pytest.approx(28.0)


def test_penalty_is_zero_at_the_anchor_and_quadratic_in_the_shift():
    model = LinearNet()
    anchor = snapshot(model)
    fisher = {"weight": torch.tensor([[3.0, 0.5]])}
    assert quadratic_penalty(model, fisher, anchor).item() == 0.0
    for delta in (0.1, 0.2, 0.4):
        model.encoder.weight.data = anchor["weight"] + delta
        # 3·δ² + 0.5·δ² = 3.5·δ²: doubling δ multiplies the penalty by 4
        assert quadratic_penalty(model, fisher, anchor).item() == pytest.approx(3.5 * delta ** 2)


def test_penalty_reaches_the_encoder_and_never_the_heads(smoke_config, phase_context):
    ctx, method = phase_context(smoke_config("tasks=[segmentation,depth]", method="ewc"), 2)
    method.setup(ctx)
    method.fishers = [{n: torch.ones_like(p) for n, p in encoder_parameters(ctx.model).items()}]
    method.anchors = [{n: p.detach() + 0.01 for n, p in encoder_parameters(ctx.model).items()}]
    penalty = method.loss_terms(ctx, {}, None)["ewc_penalty"]
    heads = list(ctx.model.heads.parameters())
    assert all(g is None for g in torch.autograd.grad(penalty, heads, retain_graph=True, allow_unused=True))
    grads = torch.autograd.grad(penalty, list(ctx.model.encoder.parameters()))
    assert all(g.abs().sum() > 0 for g in grads)


def test_state_round_trip_and_options(smoke_config, phase_context):
    ctx, method, loader = linear_context(EWC.Options())
    method.after_phase(ctx, loader)
    state = method.state_dict()
    other = EWC(EWC.Options())
    other.load_state_dict(state, ctx)
    assert torch.equal(other.fishers[0]["weight"], method.fishers[0]["weight"])
    assert torch.equal(other.anchors[0]["weight"], method.anchors[0]["weight"])
    with pytest.raises(ConfigError, match=r"method\.lam"):
        resolve_method(smoke_config("method.lam=-1", method="ewc"))
    with pytest.raises(ConfigError, match=r"method\.mode"):
        resolve_method(smoke_config("method.mode=sometimes", method="ewc"))


def test_end_to_end(smoke_config, tmp_path):
    trainer = Trainer(smoke_config("tasks=[segmentation,depth]", "train.epochs=2", method="ewc"), tmp_path / "ewc",
                      quiet=True)
    seen, loss_terms = [], trainer.method.loss_terms

    def record(ctx, batch, out):
        terms = loss_terms(ctx, batch, out)
        seen.append((ctx.phase, ctx.step, float(terms["ewc_penalty"].detach()) if terms else None))
        return terms

    trainer.method.loss_terms = record
    performance = trainer.run()
    assert all(value is None for phase, _, value in seen if phase == 1)
    phase2 = [value for phase, _, value in seen if phase == 2]
    assert phase2[0] == 0.0  # first step of phase 2: θ = θ*
    assert all(value > 0 for value in phase2[1:])
    events = read_events(tmp_path / "ewc" / "events.jsonl")
    assert [e["phase"] for e in events if e["event"] == "ewc_fisher" and e["sum"] > 0] == [1, 2]
    norms = {(e["phase"], e["epoch"]): e["encoder"] for e in events if e["event"] == "grad_norms"}
    assert "ewc_penalty" not in norms[1, 1] and norms[2, 1]["ewc_penalty"] == 0.0  # at the anchor
    assert norms[2, 2]["ewc_penalty"] > 0  # epoch 2 of phase 2: θ has moved, the penalty pulls the encoder back
    vanilla = Trainer(load_config(preset="smoke", overrides=["tasks=[segmentation,depth]", "train.epochs=2"]),
                      tmp_path / "vanilla", quiet=True).run()
    assert performance["phases"][-1]["metrics"] != vanilla["phases"][-1]["metrics"]
