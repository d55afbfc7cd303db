"""Frozen encoder baseline: the encoder (parameters and buffers) and old heads are bit-identical
through later phases while the new head learns; a pretrained encoder never trains; options."""

from __future__ import annotations

import json

import pytest
import torch

from lhl.cli import main
from lhl.config import ConfigError, resolve_method
from lhl.engine.build import build_run
from lhl.engine.checkpoint import load_checkpoint
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.methods.frozen import Frozen


def _encoder(state):
    return {k: v for k, v in state["model"].items() if k.startswith("encoder.")}


def _checkpoints(out, phases=3):
    return [load_checkpoint(out / "checkpoints" / f"phase-{t}.pt") for t in range(1, phases + 1)]


def _assert_equal(a, b):
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_options_are_checked(smoke_config):
    assert resolve_method(smoke_config(method="frozen"))[1].first_phase == "auto"
    with pytest.raises(ConfigError, match="method.first_phase"):
        resolve_method(smoke_config("method.first_phase=always", method="frozen"))
    with pytest.raises(ConfigError, match="method.first_phase"):
        Frozen.Options(first_phase=True)  # built in Python: checked too


def test_phase_two_changes_only_the_new_head(smoke_config, tmp_path, record_phase_2):
    trainer = Trainer(smoke_config("tasks=[segmentation,depth]", "train.epochs=2", method="frozen"),
                      tmp_path / "run", quiet=True)
    states = record_phase_2(trainer)
    trainer.run()
    record_phase_2.assert_frozen_encoder(states)


def test_encoder_is_bit_identical_from_the_end_of_phase_one(run_smoke, smoke_config):
    performance, out = run_smoke("train.epochs=2", method="frozen")
    first, *later = _checkpoints(out)
    initial, _ = build_run(smoke_config(method="frozen")).build_model()  # the run's seeded initial model
    # from scratch (model.weights unset, first_phase auto): phase 1 trains the encoder ...
    assert any(not torch.equal(v, first["model"]["encoder." + k]) for k, v in initial.encoder.state_dict().items())
    for state in later:  # ... and nothing of it (BatchNorm statistics included) moves afterwards
        _assert_equal(_encoder(first), _encoder(state))
        _assert_equal({k: v for k, v in first["model"].items() if k.startswith("heads.segmentation.")},
                      {k: v for k, v in state["model"].items() if k.startswith("heads.segmentation.")})
    # so no old task forgets: its metrics are the same after every later phase
    phases = performance["phases"]
    for task in performance["tasks"]:
        seen = [p["metrics"][task] for p in phases if task in p["metrics"]]
        assert all(m == seen[0] for m in seen)
    flags = [e["encoder_frozen"] for e in read_events(out / "events.jsonl") if e["event"] == "frozen"]
    assert flags == [False, True, True]


@pytest.fixture
def pretrained(tmp_path, smoke_config):
    """A weight file for the smoke preset's tiny encoder (as if pretrained)."""
    torch.manual_seed(5)
    model, _ = build_run(smoke_config()).build_model()
    for module in model.encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
    path = tmp_path / "tiny.pth"
    torch.save(model.encoder.state_dict(), path)
    return path, model.encoder.state_dict()


@pytest.mark.parametrize("first_phase, trained", [("auto", False), ("freeze", False), ("train", True)])
def test_a_pretrained_encoder_never_trains_unless_asked(run_smoke, pretrained, first_phase, trained):
    path, weights = pretrained
    _, out = run_smoke(f"model.weights={path}", f"method.first_phase={first_phase}", method="frozen")
    encoders = [_encoder(s) for s in _checkpoints(out)]
    moved = [k for k, v in weights.items() if not torch.equal(v, encoders[0]["encoder." + k])]
    assert bool(moved) == trained
    for later in encoders[1:]:
        _assert_equal(encoders[0], later)


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["run", "--preset", "smoke", "--method", "frozen", "--out", str(out), "--quiet"]) == 0
    performance = json.loads((out / "performance.json").read_text())
    assert performance["method"] == "frozen" and len(performance["phases"]) == 3
