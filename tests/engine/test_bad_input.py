"""Non-finite losses stop the run and leave the last good checkpoint intact; plugins from outside."""

import json

import pytest

from lhl.engine.checkpoint import load_checkpoint
from lhl.engine.trainer import NonFiniteLossError, Trainer

NAN_PLUGIN = '''
import torch
from lhl.engine.hooks import Method
from lhl.registry import METHODS


@METHODS.register("nan-at-phase-2")
class NanAtPhase2(Method):
    def loss_terms(self, ctx, batch, out):
        if ctx.phase == 2 and ctx.step == 1:
            return {"exploding": torch.tensor(float("nan"))}
        return {"exploding": torch.tensor(0.0)}
'''


def test_non_finite_loss_names_phase_step_term(tmp_path, monkeypatch, smoke_config):
    (tmp_path / "nan_plugin.py").write_text(NAN_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    config = smoke_config("plugins=[nan_plugin]", "method.name=nan-at-phase-2")
    with pytest.raises(NonFiniteLossError, match=r"'exploding'.*phase 2, epoch 1, step 1"):
        Trainer(config, out, quiet=True).run()
    assert load_checkpoint(out / "checkpoints" / "phase-1.pt")["phase"] == 1
    assert not (out / "checkpoints" / "phase-2.pt").exists()
    assert len(json.loads((out / "performance.json").read_text())["phases"]) == 1


USER_PLUGIN = '''
import torch
from lhl.data.base import TaskSpec
from lhl.data.synthetic_benchmark import SyntheticBenchmark
from lhl.engine.hooks import Method
from lhl.registry import BENCHMARKS, METHODS, TASKS
from lhl.tasks import RegressionTask

CALLS = {"loss_terms": 0}


@TASKS.register("brightness")
class BrightnessTask(RegressionTask):
    """Predict the image's grey level (a user-defined task)."""


class BrightnessDataset(torch.utils.data.Dataset):
    def __init__(self, inner, tasks):
        self.inner, self.tasks = inner, tasks

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        item = self.inner[i]
        if "brightness" in self.tasks:
            item["brightness"] = item["image"].mean(0, keepdim=True)
        return item


@BENCHMARKS.register("user-bench")
class UserBenchmark(SyntheticBenchmark):
    name = "user-bench"
    default_tasks = ("segmentation", "brightness")

    def task_specs(self):
        specs = super().task_specs()
        specs["brightness"] = TaskSpec("brightness", 1)
        return specs

    def dataset(self, split, indices, tasks):
        inner = super().dataset(split, indices, [t for t in tasks if t != "brightness"])
        return BrightnessDataset(inner, tasks)


@METHODS.register("user-method")
class UserMethod(Method):
    from dataclasses import dataclass

    @dataclass
    class Options:
        weight: float = 0.5

    def loss_terms(self, ctx, batch, out):
        CALLS["loss_terms"] += 1
        return {"user_term": self.options.weight * out.features[-1].pow(2).mean()}
'''


def test_method_task_benchmark_from_outside_the_package(tmp_path, monkeypatch):
    from lhl.config import load_config

    (tmp_path / "user_plugin.py").write_text(USER_PLUGIN)
    (tmp_path / "user.yaml").write_text(
        "base: smoke\nplugins: [user_plugin]\nbenchmark: user-bench\nmethod: {name: user-method, weight: 0.25}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    performance = Trainer(load_config(config_file=tmp_path / "user.yaml"), tmp_path / "run", quiet=True).run()
    assert performance["tasks"] == ["segmentation", "brightness"]
    assert set(performance["phases"][-1]["metrics"]["brightness"]) == {"loss"}
    import user_plugin

    assert user_plugin.CALLS["loss_terms"] > 0
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "weight: 0.25" in saved
