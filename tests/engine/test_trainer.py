import json

import pytest
import torch
import yaml

from lhl.config import ConfigError
from lhl.data import synthetic as synthetic_module
from lhl.engine.checkpoint import load_checkpoint
from lhl.engine.events import read_events
from lhl.engine.trainer import RunDirectoryError, Trainer, linear_warmup_decay


def test_run_directory_files_and_schema(run_smoke):
    performance, out = run_smoke()
    for name in ("config.yaml", "events.jsonl", "performance.json", "summary.md", "provenance.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "performance.json").read_text())
    assert saved == performance
    assert set(saved) == {"benchmark", "method", "tasks", "directions", "phases"}
    assert saved["directions"]["depth"] == {"abs_err": False, "rel_err": False}
    assert saved["directions"]["segmentation"] == {"miou": True, "pixel_acc": True}
    assert saved["tasks"] == ["segmentation", "depth", "normal"]
    for t, phase in enumerate(saved["phases"], start=1):
        assert phase["phase"] == t and phase["task"] == saved["tasks"][t - 1]
        assert list(phase["metrics"]) == saved["tasks"][:t]  # every task seen so far
    assert set(saved["phases"][-1]["metrics"]["normal"]) == {"mean", "median", "within_11.25", "within_22.5", "within_30"}
    for t in (1, 2, 3):
        state = load_checkpoint(out / "checkpoints" / f"phase-{t}.pt")  # weights_only
        assert state["phase"] == t and state["tasks"] == saved["tasks"][:t]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["initialisation"] == "random" and provenance["torch"] == torch.__version__
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["encoder"] == "tiny" and config["method"] == {"name": "vanilla"}
    events = read_events(out / "events.jsonl")
    assert all({"time", "phase", "epoch", "event"} <= set(e) for e in events)
    assert [e["phase"] for e in events if e["event"] == "epoch_end"] == [1, 2, 3]
    assert "new" in next(e for e in events if e["event"] == "epoch_end")["losses"]


def test_label_isolation_by_instrumenting_the_renderer(run_smoke, monkeypatch):
    """Phase t's training data computes only task t's label (counted inside the renderer)."""
    calls = []
    current = {}
    original_render = synthetic_module.render

    def recording_render(seed, split, indices, resolution=(64, 64), tasks=()):
        current["split"] = split
        return original_render(seed, split, indices, resolution, tasks)

    for task, fn in list(synthetic_module.LABEL_FUNCTIONS.items()):
        def counting(*args, _task=task, _fn=fn, **kwargs):
            calls.append((current["split"], _task))
            return _fn(*args, **kwargs)
        monkeypatch.setitem(synthetic_module.LABEL_FUNCTIONS, task, counting)
    monkeypatch.setattr("lhl.data.synthetic_benchmark.render", recording_render)
    run_smoke("train.epochs=2")
    train_calls = [task for split, task in calls if split == "train"]
    # 24 images / 3 phases = 8 per phase = 2 batches of 4, 2 epochs: one batched label computation per batch,
    # and phase t computes only task t's label.
    assert train_calls == ["segmentation"] * 4 + ["depth"] * 4 + ["normal"] * 4


def test_joint_trains_all_tasks_once(run_smoke):
    performance, out = run_smoke(method="joint")
    assert len(performance["phases"]) == 1
    assert performance["phases"][0]["task"] == "joint"
    assert list(performance["phases"][0]["metrics"]) == ["segmentation", "depth", "normal"]
    events = read_events(out / "events.jsonl")
    losses = next(e for e in events if e["event"] == "epoch_end")["losses"]
    assert set(losses) == {"new/segmentation", "new/depth", "new/normal"}


def test_same_seed_same_result_different_seed_differs(run_smoke):
    a, _ = run_smoke(name="a")
    b, _ = run_smoke(name="b")
    c, _ = run_smoke("seed=1", name="c")
    assert a == b
    assert a != c


def test_existing_run_directory_is_not_overwritten(run_smoke, smoke_config):
    _, out = run_smoke()
    before = (out / "performance.json").read_bytes()
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        Trainer(smoke_config(), out, quiet=True).run()
    assert (out / "performance.json").read_bytes() == before


def test_resume_with_different_config_names_the_keys(run_smoke, smoke_config):
    _, out = run_smoke()
    with pytest.raises(RunDirectoryError, match=r"train\.lr.*\n.*seed|seed") as info:
        Trainer(smoke_config("train.lr=0.5", "seed=3"), out, quiet=True, resume=True).run()
    assert "train.lr" in str(info.value) and "seed" in str(info.value)


def test_resume_of_finished_run_changes_nothing(run_smoke, smoke_config):
    performance, out = run_smoke()
    checkpoint = (out / "checkpoints" / "phase-3.pt").read_bytes()
    again = Trainer(smoke_config(), out, quiet=True, resume=True).run()
    assert again == performance
    assert (out / "checkpoints" / "phase-3.pt").read_bytes() == checkpoint


def test_keep_checkpoints(run_smoke):
    _, out = run_smoke("train.keep_checkpoints=1")
    assert sorted(p.name for p in (out / "checkpoints").glob("phase-*.pt")) == ["phase-3.pt"]


@pytest.mark.parametrize("override, message", [
    ("method.name=nope", "unknown method 'nope'; valid methods: .*vanilla"),
    ("benchmark=nope", "unknown benchmark 'nope'; valid benchmarks: .*synthetic-nyu"),
    ("model.encoder=nope", "unknown encoder 'nope'; valid encoders: .*resnet18.*tiny"),
    ("tasks=[segmentation,nope]", "no task 'nope'; its tasks: segmentation, depth"),
])
def test_unknown_names_list_valid_ones(tmp_path, smoke_config, override, message):
    with pytest.raises((KeyError, ValueError), match=message):
        Trainer(smoke_config(override), tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()


def test_bad_method_hyperparameter(smoke_config):
    with pytest.raises(ConfigError, match="unknown config key 'method.alpha'"):
        Trainer(smoke_config("method.alpha=3"), "unused", quiet=True)


def test_warmup_decay_schedule():
    f = linear_warmup_decay(10, 0.5)
    assert [round(f(s), 3) for s in range(10)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2]
    g = linear_warmup_decay(4, 0.0)
    assert [g(s) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]


def test_grad_norms_logged_once_per_epoch(run_smoke):
    _, out = run_smoke("train.epochs=2")
    records = [e for e in read_events(out / "events.jsonl") if e["event"] == "grad_norms"]
    assert [(e["phase"], e["epoch"]) for e in records] == [(p, ep) for p in (1, 2, 3) for ep in (1, 2)]
    assert all(e["encoder"]["new"] > 0 for e in records)


def test_histogram_normal_median_is_within_half_a_bin_of_the_exact_one(smoke_config, tmp_path):
    exact = Trainer(smoke_config(), tmp_path / "exact", quiet=True).run()
    hist = Trainer(smoke_config("train.eval_normal_median=histogram"), tmp_path / "hist", quiet=True).run()
    a, b = exact["phases"][-1]["metrics"]["normal"], hist["phases"][-1]["metrics"]["normal"]
    assert abs(a["median"] - b["median"]) <= 0.0005 + 1e-9
    assert abs(a["mean"] - b["mean"]) <= 1e-9 * a["mean"] and a["within_30"] == b["within_30"]
