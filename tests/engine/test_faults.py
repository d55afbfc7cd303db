"""Faults end cleanly and lose nothing: a second process on the same run directory, a NaN gradient
behind a finite loss, SIGTERM/SIGINT mid-phase, a checkpoint write killed half-way, a full disk.

The faults are injected from a plugin method (or a patched writer) at a chosen phase and step, so
every test is deterministic — no race with a watcher process.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lhl.cli import main
from lhl.engine.events import read_events
from lhl.errors import NonFiniteError

PLUGIN = '''
import os, signal, time
from pathlib import Path

import torch

import lhl.engine.checkpoint as checkpoint
from lhl.methods.vanilla import Vanilla
from lhl.registry import METHODS

ACTION = os.environ.get("LHL_TEST_FAULT", "")  # e.g. "term@2:1", "int@2:1", "hold@1:0", "nangrad@2:last"


class _NanGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss with a non-finite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@METHODS.register("faulty")
class Faulty(Vanilla):
    def _due(self, ctx, kind):
        if not ACTION.startswith(kind + "@"):
            return False
        phase, step = ACTION.split("@")[1].split(":")
        steps_per_phase = ctx.config.train.epochs * self.batches
        return int(phase) == ctx.phase and (ctx.step == steps_per_phase - 1 if step == "last" else int(step) == ctx.step)

    def before_phase(self, ctx, loader):
        self.batches = -(-len(range(ctx.config.data.train_size // len(ctx.task_order))) // ctx.config.train.batch_size)

    def loss_terms(self, ctx, batch, out):
        if self._due(ctx, "nangrad"):
            return {"nan_gradient": _NanGradient.apply(out.features[-1].mean()) * 0.0}
        return {}

    def after_step(self, ctx):
        if self._due(ctx, "term"):
            os.kill(os.getpid(), signal.SIGTERM)
        if self._due(ctx, "int"):
            os.kill(os.getpid(), signal.SIGINT)
        if self._due(ctx, "hold"):
            Path(os.environ["LHL_TEST_READY"]).write_text("ready")
            deadline = time.time() + 120
            while not Path(os.environ["LHL_TEST_GO"]).exists() and time.time() < deadline:
                time.sleep(0.05)


if ACTION.startswith("killwrite@"):
    _phase = ACTION.split("@")[1]
    _save = torch.save

    def _half_then_die(obj, handle, *args, **kwargs):
        if obj.get("phase") == int(_phase):
            handle.write(b"PK\\x03\\x04 half a checkpoint")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return _save(obj, handle, *args, **kwargs)

    checkpoint.torch.save = _half_then_die
'''


@pytest.fixture
def plugin_dir(tmp_path):
    (tmp_path / "faulty_plugin.py").write_text(PLUGIN)
    return tmp_path


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lhl", "run", "--preset", "smoke", "--method", "faulty", "--set",
            "plugins=[faulty_plugin]", "--set", "train.epochs=2", "--out", str(out), "--quiet", *extra]


def _env(plugin_dir: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, **extra)


def _run(plugin_dir: Path, out: Path, *extra: str, fault: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(_command(out, *extra), env=_env(plugin_dir, LHL_TEST_FAULT=fault), capture_output=True,
                          text=True, timeout=300)


def _error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lhl: error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _performance(out: Path) -> dict:
    return json.loads((out / "performance.json").read_text())


@pytest.fixture
def straight(plugin_dir):
    out = plugin_dir / "straight"
    result = _run(plugin_dir, out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("signame, code", [("term", 143), ("int", 130)])
def test_signal_mid_phase_stops_cleanly_and_resumes_bit_identically(plugin_dir, straight, signame, code):
    out = plugin_dir / "interrupted"
    result = _run(plugin_dir, out, fault=f"{signame}@2:1")
    assert result.returncode == code, result.stderr
    line = _error_line(result)
    assert "phase 2" in line and "--resume" in line and str(out) in line
    assert sorted(p.name for p in (out / "checkpoints").glob("phase-*.pt")) == ["phase-1.pt"]
    assert [e["event"] for e in read_events(out / "events.jsonl")][-1] == "interrupted"
    resumed = _run(plugin_dir, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _performance(out) == _performance(straight)
    for phase in (1, 2, 3):
        assert (out / "checkpoints" / f"phase-{phase}.pt").read_bytes() == \
            (straight / "checkpoints" / f"phase-{phase}.pt").read_bytes()


def test_second_process_on_the_same_directory_is_refused(plugin_dir, straight):
    out = plugin_dir / "shared"
    ready, go = plugin_dir / "ready", plugin_dir / "go"
    first = subprocess.Popen(_command(out), env=_env(plugin_dir, LHL_TEST_FAULT="hold@1:0", LHL_TEST_READY=str(ready),
                                                     LHL_TEST_GO=str(go)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):
            if ready.exists() or first.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        assert ready.exists(), first.communicate()[1]
        for extra in ((), ("--resume",)):
            second = _run(plugin_dir, out, *extra)
            assert second.returncode == 1
            assert f"pid {first.pid}" in _error_line(second)
    finally:
        go.write_text("go")
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert _performance(out) == _performance(straight)


@pytest.mark.parametrize("step, epoch", [("last", 2), ("2", 2)])  # a fully checked step; a sentinel-only step
def test_nan_gradient_with_finite_loss_is_never_saved(plugin_dir, step, epoch):
    out = plugin_dir / "nan"
    result = _run(plugin_dir, out, fault=f"nangrad@2:{step}")
    assert result.returncode == 1
    line = _error_line(result)
    assert "non-finite gradient" in line and f"phase 2, epoch {epoch}" in line
    assert sorted(p.name for p in (out / "checkpoints").glob("phase-*.pt")) == ["phase-1.pt"]
    assert len(_performance(out)["phases"]) == 1
    assert read_events(out / "events.jsonl")[-1]["event"] == "non_finite_gradient"


def test_non_finite_parameters_are_never_saved(smoke_config, tmp_path, monkeypatch):
    """The last line of defence: a phase whose weights hold NaN (however they got there) is not saved."""
    from lhl.engine.fitting import PhaseFitter
    from lhl.engine.trainer import Trainer

    original = PhaseFitter.fit

    def poison(self, ctx, loader, phases):
        original(self, ctx, loader, phases)
        if ctx.phase == 2:
            with __import__("torch").no_grad():
                next(ctx.model.heads[ctx.phase_tasks[0]].parameters()).fill_(float("nan"))

    monkeypatch.setattr(PhaseFitter, "fit", poison)
    with pytest.raises(NonFiniteError, match="not finite after phase 2"):
        Trainer(smoke_config(), tmp_path / "run", quiet=True).run()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("phase-*.pt")) == ["phase-1.pt"]


def test_killed_checkpoint_write_leaves_no_temporary_after_resume(plugin_dir, straight):
    out = plugin_dir / "killwrite"
    result = _run(plugin_dir, out, fault="killwrite@2")
    assert result.returncode == -signal.SIGKILL
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers, "the simulated crash should leave a temporary file behind"
    assert not (out / "checkpoints" / "phase-2.pt").exists()
    resumed = _run(plugin_dir, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert _performance(out) == _performance(straight)


def test_full_disk_during_a_checkpoint_write(smoke_config, tmp_path, monkeypatch, capsys):
    import errno

    import lhl.engine.checkpoint as checkpoint

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint._HashingWriter, "write", no_space)
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--quiet", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lhl: error: ") and "No space left on device" in err and len(err.splitlines()) == 1
    assert not [p for p in (out / "checkpoints").iterdir() if p.name != "manifest.json"] \
        if (out / "checkpoints").exists() else True
    monkeypatch.undo()
    assert main(["run", "--preset", "smoke", "--quiet", "--resume", "--out", str(out)]) == 0
    assert len(_performance(out)["phases"]) == 3


def test_run_directory_records_order_attempts_and_permissions(plugin_dir, tmp_path):
    out = plugin_dir / "attempts"
    old_mask = os.umask(0o022)
    try:
        assert _run(plugin_dir, out, fault="term@2:1").returncode == 143
        assert _run(plugin_dir, out, "--resume").returncode == 0
    finally:
        os.umask(old_mask)
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text())["tasks"] == ["segmentation", "depth", "normal"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert "--resume" not in provenance["command"]
    assert [r["attempt"] for r in provenance["resumes"]] == [2] and "--resume" in provenance["resumes"][0]["command"]
    events = read_events(out / "events.jsonl")
    assert {e["attempt"] for e in events} == {1, 2}
    current = read_events(out / "events.jsonl", current=True)
    assert not any(e["attempt"] == 1 and (e["phase"] or 0) >= 2 for e in current)
    assert [e["phase"] for e in current if e["event"] == "phase_start"] == [1, 2, 3]
    for name in ("config.yaml", "performance.json", "provenance.json", "events.jsonl", "summary.md",
                 "checkpoints/phase-1.pt", "checkpoints/manifest.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_resume_with_other_data_is_refused_and_a_moved_copy_is_accepted(tmp_path, capsys):
    import shutil

    import numpy as np

    from lhl.data.testing import write_mtan

    write_mtan(tmp_path / "nyu", "nyuv2", n_train=6, n_test=2, size=(16, 16))
    args = ["run", "--preset", "smoke", "--quiet", "--set", "benchmark=nyuv2", "--set", "data.resolution=[16,16]"]
    out = tmp_path / "run"
    assert main(args + ["--out", str(out), "--set", f"data.root={tmp_path / 'nyu'}"]) == 0
    shutil.copytree(tmp_path / "nyu", tmp_path / "moved")
    shutil.copytree(tmp_path / "nyu", tmp_path / "other")
    depth = tmp_path / "other" / "train" / "depth" / "0.npy"
    values = np.load(depth)
    values[8, 8, 0] += 1.0
    np.save(depth, values)
    capsys.readouterr()
    assert main(args + ["--resume", "--out", str(out), "--set", f"data.root={tmp_path / 'other'}"]) == 1
    assert "dataset fingerprint" in capsys.readouterr().err
    assert main(args + ["--resume", "--out", str(out), "--set", f"data.root={tmp_path / 'moved'}"]) == 0
