"""train.channels_last and train.compile: the same training, another memory format or a compiled
student; a machine where torch cannot compile gets one line, not a traceback."""

from __future__ import annotations

import math

import pytest
import torch

from lhl.cli import main
from lhl.engine.fitting import PhaseFitter
from lhl.engine.trainer import Trainer
from lhl.errors import ConfigError


def _final(performance):
    return {f"{t}/{m}": v for t, ms in performance["phases"][-1]["metrics"].items() for m, v in ms.items()}


def _close(a, b, rel):
    assert a.keys() == b.keys()
    for key in a:
        assert math.isclose(a[key], b[key], rel_tol=rel, abs_tol=1e-6), (key, a[key], b[key])


def test_channels_last_trains_the_same_model_in_nhwc(smoke_config, tmp_path, monkeypatch):
    formats = []
    original = PhaseFitter.fit

    def spy(self, ctx, loader, phases):
        weight = next(m.weight for m in ctx.model.modules() if isinstance(m, torch.nn.Conv2d))
        formats.append(weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous())
        return original(self, ctx, loader, phases)

    monkeypatch.setattr(PhaseFitter, "fit", spy)
    plain = Trainer(smoke_config("model.head_dropout=0"), tmp_path / "plain", quiet=True).run()
    assert formats == [False] * 3
    formats.clear()
    nhwc = Trainer(smoke_config("model.head_dropout=0", "train.channels_last=true"), tmp_path / "nhwc",
                   quiet=True).run()
    assert formats == [True] * 3
    # NHWC convolutions sum in another order: float32 rounding only, after 3 phases of training
    _close(_final(nhwc), _final(plain), 1e-3)


def test_compile_runs_the_student_through_torch_compile(smoke_config, tmp_path, monkeypatch):
    compiled = []
    real = torch.compile

    def eager_compile(model, **kwargs):  # dynamo's eager backend: no C++ toolchain, seconds not minutes
        compiled.append(type(model).__name__)
        return real(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    config = smoke_config("tasks=[segmentation,depth]", "model.head_dropout=0", "train.compile=true")
    performance = Trainer(config, tmp_path / "compiled", quiet=True).run()
    assert compiled == ["MultiTaskNet", "MultiTaskNet"]
    plain = Trainer(smoke_config("tasks=[segmentation,depth]", "model.head_dropout=0"), tmp_path / "plain",
                    quiet=True).run()
    _close(_final(performance), _final(plain), 1e-4)


def test_a_machine_that_cannot_compile_gets_one_line(smoke_config, tmp_path, monkeypatch, capsys):
    def broken(model, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\nlong log ...")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(ConfigError, match="train.compile: torch.compile failed on this machine"):
        Trainer(smoke_config("train.compile=true"), tmp_path / "run", quiet=True).run()
    assert main(["run", "--preset", "smoke", "--set", "train.compile=true", "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert err.count("lhl: error:") == 1 and "set train.compile: false" in err and "Traceback" not in err
    assert not (tmp_path / "cli" / "checkpoints").exists()
