"""Side-tuning (Zhang et al., ECCV 2020): the blend α·B(x) + (1−α)·S_t(x) by hand, one side
network per task, the base and old side networks bit-identical through later phases, resume and
``lhl.load_run`` reproducing the run's evaluation, options."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import lhl
from lhl.config import ConfigError, resolve_method
from lhl.engine.checkpoint import load_checkpoint
from lhl.engine.evaluation import evaluate_run
from lhl.engine.events import read_events
from lhl.engine.fitting import gradient_sentinels
from lhl.engine.rundir import RunDirectory
from lhl.engine.trainer import Trainer
from lhl.methods.side_tuning import SideTuning


def _part(state, prefix):
    return {k: v for k, v in state["model"].items() if k.startswith(prefix)}


def _assert_equal(a, b):
    assert a.keys() == b.keys() and a
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_options_are_checked(smoke_config):
    options = resolve_method(smoke_config(method="side-tuning"))[1]
    assert (options.alpha, options.learn_alpha, options.first_phase) == (0.5, True, "auto")
    assert SideTuning.Options(alpha=1.0, learn_alpha=False).alpha == 1.0  # base only: allowed when fixed
    for bad in ("method.alpha=1", "method.alpha=0", "method.alpha=-0.5", "method.width=0", "method.first_phase=x"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            resolve_method(smoke_config(bad, method="side-tuning"))
    with pytest.raises(ConfigError, match="method.alpha"):
        SideTuning.Options(alpha=1.5, learn_alpha=False)


@pytest.mark.parametrize("learn", [True, False])
def test_the_head_reads_alpha_base_plus_one_minus_alpha_side(phase_context, smoke_config, learn):
    ctx, method = phase_context(smoke_config(f"method.learn_alpha={str(learn).lower()}", "method.alpha=0.3",
                                             method="side-tuning"), 1)
    model, task = ctx.model, ctx.phase_tasks[0]
    adapter = model.adapters[task]
    assert list(model.adapters) == [task]
    assert isinstance(adapter.blend.logit if learn else adapter.blend.value, torch.Tensor)
    model.eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        base, side = model.encoder(x)[-1], adapter.side(x)
        alpha = torch.sigmoid(adapter.blend.logit) if learn else adapter.blend.value
        assert float(alpha) == pytest.approx(0.3)
        by_hand = model.heads[task](alpha * base + (1 - alpha) * side)
        by_hand = F.interpolate(by_hand, size=(16, 16), mode="bilinear", align_corners=False)
        assert side.shape == base.shape
        assert torch.allclose(model(x, [task])[task], by_hand, atol=1e-6)
    assert any(p is adapter.side[0][0].weight for p in gradient_sentinels(model))  # a NaN in the side branch is seen


def test_phase_two_freezes_the_base_the_old_side_network_and_head(phase_context, smoke_config):
    ctx, method = phase_context(smoke_config(method="side-tuning"), 2)
    first, second = ctx.task_order[:2]
    assert list(ctx.model.adapters) == [second]  # phase_context built phase 1's model without the method
    method.after_phase(ctx, None)
    ctx.model.add_adapter(first, "side", width=64, alpha=0.5, learn_alpha=True)  # as phase 1 would have
    method.before_phase(ctx, None)  # again: still one side network per task
    assert sorted(ctx.model.adapters) == sorted([first, second])
    trainable = {n for n, p in ctx.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith((f"heads.{second}.", f"adapters.{second}.")) for n in trainable)
    assert f"adapters.{second}.blend.logit" in trainable
    ctx.model.train()
    method.on_train_mode(ctx)
    assert not ctx.model.encoder.training and not ctx.model.adapters[first].training
    assert ctx.model.adapters[second].training
    method.after_phase(ctx, None)
    assert all(p.requires_grad for p in ctx.model.parameters())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("side") / "run"
    config = lhl.load_config(preset="smoke", method="side-tuning", overrides=["train.epochs=2"])
    return Trainer(config, out, quiet=True).run(), out


def test_base_and_old_side_networks_are_bit_identical_after_their_phase(finished):
    performance, out = finished
    states = [load_checkpoint(out / "checkpoints" / f"phase-{t}.pt") for t in (1, 2, 3)]
    order = performance["tasks"]
    for t, state in enumerate(states, start=1):
        assert list(state["adapters"]) == order[:t]  # one side network per seen task
        assert {s["kind"] for s in state["adapters"].values()} == {"side"}
    for later in states[1:]:
        _assert_equal(_part(states[0], "encoder."), _part(later, "encoder."))  # the base (trained in phase 1)
    for t, task in enumerate(order):
        for later in states[t + 1:]:
            _assert_equal(_part(states[t], f"adapters.{task}."), _part(later, f"adapters.{task}."))
            _assert_equal(_part(states[t], f"heads.{task}."), _part(later, f"heads.{task}."))
    for task in order:  # hence no forgetting at all
        seen = [p["metrics"][task] for p in performance["phases"] if task in p["metrics"]]
        assert all(m == seen[0] for m in seen)
    alphas = [e for e in read_events(out / "events.jsonl") if e["event"] == "side_tuning_alpha"]
    assert [e["task"] for e in alphas] == order and all(0 < e["alpha"] < 1 for e in alphas)
    assert any(e["alpha"] != 0.5 for e in alphas)  # learnt


def test_load_run_reproduces_the_evaluation_of_every_phase(finished):
    performance, out = finished
    for phase in (1, 2, 3):
        loaded = lhl.load_run(out, phase=phase)
        assert list(loaded.model.adapters) == performance["tasks"][:phase]
        assert json.loads(json.dumps(evaluate_run(loaded))) == performance["phases"][phase - 1]["metrics"]


def test_a_checkpoint_without_adapter_specs_loads_with_none(run_smoke):
    _, out = run_smoke(method="vanilla")
    directory = RunDirectory(out)
    state = load_checkpoint(out / "checkpoints" / "phase-3.pt")
    assert state.pop("adapters") == {}
    state.pop("format")
    directory.save_checkpoint(3, state, "vanilla", None)  # as written before adapters existed
    assert len(lhl.load_run(out).model.adapters) == 0
