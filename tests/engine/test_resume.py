"""Resume is real: a run killed in the middle of phase 2 continues from phase 1's checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lhl.engine.events import read_events

PLUGIN = '''
import os, signal
from lhl.methods.vanilla import Vanilla
from lhl.registry import METHODS


@METHODS.register("killable-vanilla")
class KillableVanilla(Vanilla):
    """Vanilla that SIGKILLs its own process at the step named by LHL_TEST_KILL_AT=phase:step."""

    def after_step(self, ctx):
        if os.environ.get("LHL_TEST_KILL_AT") == f"{ctx.phase}:{ctx.step}":
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _run(tmp_path: Path, out: Path, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    if kill_at:
        env["LHL_TEST_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "lhl.cli", "run", "--preset", "smoke", "--method", "killable-vanilla",
               "--set", "plugins=[killable_plugin]", "--set", "train.epochs=2", "--out", str(out), "--quiet", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_kill_in_phase_2_then_resume_matches_uninterrupted_run(tmp_path):
    (tmp_path / "killable_plugin.py").write_text(PLUGIN)
    killed = tmp_path / "killed"
    # 8 images per phase, batch 4, 2 epochs → 4 steps a phase; kill after step 2 of phase 2 (epoch 2 of 2 pending).
    result = _run(tmp_path, killed, kill_at="2:2")
    assert result.returncode == -9, result.stderr
    checkpoints = killed / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.suffix == ".pt") == ["phase-1.pt"]
    phase1_bytes = (checkpoints / "phase-1.pt").read_bytes()
    events_before = read_events(killed / "events.jsonl")
    assert any(e["event"] == "epoch_end" and e["phase"] == 2 for e in events_before)  # killed mid-phase 2

    resumed = _run(tmp_path, killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    events = read_events(killed / "events.jsonl")
    after_resume = events[[e["event"] for e in events].index("resume"):]
    assert not any(e["phase"] == 1 and e["event"] in ("phase_start", "epoch_end") for e in after_resume)
    assert [e["phase"] for e in after_resume if e["event"] == "phase_start"] == [2, 3]
    assert (checkpoints / "phase-1.pt").read_bytes() == phase1_bytes

    straight = tmp_path / "straight"
    assert _run(tmp_path, straight).returncode == 0
    assert json.loads((killed / "performance.json").read_text()) == json.loads((straight / "performance.json").read_text())
