"""``logging.tensorboard`` / ``lhl run --tensorboard``: TensorBoard event files beside events.jsonl."""

from __future__ import annotations

import importlib.util
import json

import pytest

from lhl.cli import main
from lhl.config import config_differences, load_config
from lhl.config.schema import TENSORBOARD_MISSING
from lhl.engine.events import read_events
from lhl.engine.trainer import Trainer
from lhl.errors import ConfigError

MISSING = "logging.tensorboard: the tensorboard package is not installed; pip install 'lhl[tensorboard]'"


@pytest.fixture
def without_tensorboard(monkeypatch):
    """As if the optional package were not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name.split(".")[0] == "tensorboard" else real(name, *args))


def test_missing_package_is_a_config_error(without_tensorboard, tmp_path, capsys):
    assert TENSORBOARD_MISSING == MISSING
    with pytest.raises(ConfigError) as caught:
        load_config(preset="smoke", overrides=["logging.tensorboard=true"])
    assert str(caught.value) == MISSING
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--tensorboard", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == f"lhl: error: {MISSING}\n"
    assert not out.exists()  # refused before anything is written
    load_config(preset="smoke", overrides=["logging.tensorboard=false"])  # off: no package needed


def test_off_by_default_and_tolerated_on_resume(run_smoke):
    _, out = run_smoke()
    assert not (out / "tensorboard").exists()
    saved = load_config(preset="smoke").to_dict()
    del saved["logging"]  # a run written before the section existed
    current = {**saved, "logging": {"tensorboard": True}}
    assert config_differences(saved, current) == []


def test_event_files_hold_losses_per_step_and_metrics_per_phase(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed "
                                              "(pip install 'lhl[tensorboard]'); the writer cannot be tested")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--method", "dis", "--tensorboard", "--out", str(out), "--quiet",
                 "--set", "train.epochs=2"]) == 0
    assert (out / "config.yaml").read_text().count("tensorboard: true") == 1
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/new", "train/dis/segmentation", "train/dis/depth", "train/lr", "epoch/new",
            "eval/segmentation/miou", "eval/depth/abs_err", "eval/normal/mean"} <= tags
    log = read_events(out / "events.jsonl")
    steps_per_phase = sum(e["steps"] for e in log if e["event"] == "epoch_end" and e["phase"] == 1)
    assert [s.step for s in events.Scalars("train/new")] == list(range(3 * steps_per_phase))
    assert [s.step for s in events.Scalars("train/dis/segmentation")] == list(range(steps_per_phase,
                                                                                   3 * steps_per_phase))
    epoch_means = [e["losses"]["new"] for e in log if e["event"] == "epoch_end"]
    assert [s.value for s in events.Scalars("epoch/new")] == pytest.approx(epoch_means, rel=1e-6)
    performance = json.loads((out / "performance.json").read_text())
    miou = events.Scalars("eval/segmentation/miou")
    assert [s.step for s in miou] == [steps_per_phase * t for t in (1, 2, 3)]
    assert [s.value for s in miou] == pytest.approx(
        [p["metrics"]["segmentation"]["miou"] for p in performance["phases"]], rel=1e-6)


def test_writer_is_created_at_the_first_scalar(tmp_path):
    pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed")
    config = load_config(preset="smoke", overrides=["logging.tensorboard=true"])
    trainer = Trainer(config, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()  # constructing (validating) writes nothing
    trainer.run()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_a_resumed_phase_replaces_what_the_interrupted_attempt_logged(tmp_path):
    pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    config = load_config(preset="smoke", overrides=["logging.tensorboard=true"])
    Trainer(config, out, quiet=True).run()
    # make phase 3 incomplete, as an interruption during it would have left the run
    performance = json.loads((out / "performance.json").read_text())
    performance["phases"] = performance["phases"][:2]
    (out / "performance.json").write_text(json.dumps(performance))
    manifest = json.loads((out / "checkpoints" / "manifest.json").read_text())
    del manifest["phase-3.pt"]
    (out / "checkpoints" / "manifest.json").write_text(json.dumps(manifest))
    Trainer(config, out, quiet=True, resume=True).run()
    assert len(list((out / "tensorboard").iterdir())) == 2
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    steps = [s.step for s in events.Scalars("train/new")]
    assert steps == sorted(set(steps)) == list(range(len(steps)))  # phase 3 once, not twice
    assert len(events.Scalars("eval/normal/mean")) == 1
