"""Data-parallel training: two processes under torchrun (gloo, CPU) give the single-process result
with the same global batch and seed, and a DDP run killed mid-phase resumes.

Exact agreement needs what makes the two computations the same sum: SyncBatchNorm (batch
statistics over the global batch), no dropout (its masks are drawn per process) and a loss that
is a mean over equal shares (each process holds half of every batch). What remains is float
rounding in a different order, far below the 1e-3 relative tolerance.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lhl.engine.trainer import Trainer

SETTINGS = ["tasks=[segmentation,depth]", "data.train_size=24", "data.test_size=8", "train.epochs=2",
            "train.batch_size=4", "model.head_dropout=0", "train.sync_batchnorm=true",
            "train.log_grad_norms=false"]

#: imported by every process (config ``plugins``): SIGKILLs process 1 at phase 2, step 1 when asked
KILLER = '''
import os, signal
import lhl.engine.fitting as fitting

_original = fitting.PhaseFitter._agree_to_continue


def _agree(self, ctx, values, epoch=0):
    if (values is not None and os.environ.get("LHL_TEST_KILL") == "2:1" and os.environ.get("RANK") == "1"
            and ctx.phase == 2 and ctx.step == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return _original(self, ctx, values, epoch)


fitting.PhaseFitter._agree_to_continue = _agree
'''


def _env(plugin_dir: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(plugin_dir), str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, **extra)


def _command(out: Path, method: str, *flags: str, settings: tuple[str, ...] = ()) -> list[str]:
    command = [sys.executable, "-m", "lhl", "run", "--preset", "smoke", "--method", method, "--out", str(out),
               "--quiet", *flags]
    for setting in [*SETTINGS, "plugins=[ddp_killer]", *settings]:
        command += ["--set", setting]
    return command


def _lhl_run(out: Path, plugin_dir: Path, method: str, *flags: str, settings: tuple[str, ...] = (),
             kill: str = "") -> subprocess.CompletedProcess:
    command = _command(out, method, "--nproc", "2", *flags, settings=settings)
    return subprocess.run(command, env=_env(plugin_dir, LHL_TEST_KILL=kill), capture_output=True, text=True,
                          timeout=300)


def _final(performance: dict) -> dict[str, float]:
    return {f"{task}/{name}": value for task, metrics in performance["phases"][-1]["metrics"].items()
            for name, value in metrics.items()}


def _assert_close(two: dict[str, float], one: dict[str, float], rel: float) -> None:
    assert two.keys() == one.keys()
    for key in one:
        assert math.isclose(two[key], one[key], rel_tol=rel, abs_tol=1e-9), (key, two[key], one[key])


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "ddp_killer.py").write_text(KILLER)
    return folder


@pytest.fixture(scope="module")
def ddp_runs(plugin_dir, tmp_path_factory):
    """vanilla and HAD, two processes each (module scope: the resume test reuses HAD's)."""
    root = tmp_path_factory.mktemp("ddp")
    runs = {}
    for method in ("vanilla", "had"):
        result = _lhl_run(root / method, plugin_dir, method)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[method] = root / method
    return runs


@pytest.mark.parametrize("method", ["vanilla", "had"])
def test_two_processes_equal_one_with_the_same_global_batch(method, ddp_runs, plugin_dir, tmp_path, monkeypatch,
                                                          smoke_config):
    monkeypatch.syspath_prepend(str(plugin_dir))
    config = smoke_config(*SETTINGS, "plugins=[ddp_killer]", method=method)
    one = Trainer(config, tmp_path / "one", quiet=True).run()
    two = json.loads((ddp_runs[method] / "performance.json").read_text())
    _assert_close(_final(two), _final(one), 1e-3)
    provenance = json.loads((ddp_runs[method] / "provenance.json").read_text())
    assert provenance["processes"] == 2
    # process 0 alone wrote the run directory: one event log, one start
    events = [json.loads(line) for line in (ddp_runs[method] / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("run_start") == 1
    assert [e for e in events if e["event"] == "run_start"][0]["processes"] == 2


def test_a_ddp_run_killed_mid_phase_resumes(ddp_runs, plugin_dir, tmp_path):
    out = tmp_path / "killed"
    killed = _lhl_run(out, plugin_dir, "had", kill="2:1")
    assert killed.returncode != 0
    assert json.loads((out / "performance.json").read_text())["phases"][-1]["phase"] == 1
    resumed = _lhl_run(out, plugin_dir, "had", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = json.loads((ddp_runs["had"] / "performance.json").read_text())
    _assert_close(_final(json.loads((out / "performance.json").read_text())), _final(straight), 1e-6)
    # resuming with another number of processes is refused with one line
    other = subprocess.run(_command(out, "had", "--resume"), env=_env(plugin_dir), capture_output=True, text=True,
                           timeout=120)
    assert other.returncode == 1 and "--nproc 2" in other.stderr and "Traceback" not in other.stderr


def test_bad_process_counts_are_one_line_errors(plugin_dir, tmp_path):
    result = _lhl_run(tmp_path / "odd", plugin_dir, "vanilla", settings=("train.batch_size=3",))
    assert result.returncode == 2 and result.stderr.count("lhl: error:") == 1
    assert "train.batch_size" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "odd").exists()
