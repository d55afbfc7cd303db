"""Methods with state resume exactly: a run killed in the middle of phase 2 (after phase 1's
checkpoint holds the method's Fisher / buffer / importances / bases, or side-tuning's side
networks) ends with the same performance.json as an uninterrupted run (docs/design.md, "Invariants"), as
tests/engine/test_resume.py does for vanilla."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = '''
import os, signal
from lhl.methods.der import DER
from lhl.methods.ewc import EWC
from lhl.methods.frozen import Frozen
from lhl.methods.icarl import ICaRL
from lhl.methods.sgp import SGP
from lhl.methods.side_tuning import SideTuning
from lhl.methods.spg import SPG
from lhl.registry import METHODS


def killable(base):
    class Killable(base):
        """SIGKILLs its own process after the step named by LHL_TEST_KILL_AT=phase:step."""

        def after_step(self, ctx):
            super().after_step(ctx)
            if os.environ.get("LHL_TEST_KILL_AT") == f"{ctx.phase}:{ctx.step}":
                os.kill(os.getpid(), signal.SIGKILL)

    return Killable


for cls in (DER, EWC, ICaRL, SGP, SPG, Frozen, SideTuning):
    METHODS.register("killable-" + cls.name)(killable(cls))
'''


def _run(tmp_path: Path, out: Path, method: str, *extra: str, kill_at: str | None = None):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    if kill_at:
        env["LHL_TEST_KILL_AT"] = kill_at
    command = [sys.executable, "-m", "lhl.cli", "run", "--preset", "smoke", "--method", f"killable-{method}",
               "--set", "plugins=[killable_methods]", "--set", "train.epochs=2", "--out", str(out), "--quiet", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ewc", "der", "icarl", "sgp", "spg", "frozen", "side-tuning"])
def test_killed_in_phase_2_then_resumed_matches_uninterrupted_run(tmp_path, method):
    (tmp_path / "killable_methods.py").write_text(PLUGIN)
    killed = tmp_path / "killed"
    # 8 images per phase, batch 4, 2 epochs → 4 steps a phase; killed after step 2 of phase 2
    result = _run(tmp_path, killed, method, kill_at="2:2")
    assert result.returncode == -9, result.stderr
    assert sorted(p.name for p in (killed / "checkpoints").iterdir() if p.suffix == ".pt") == ["phase-1.pt"]
    resumed = _run(tmp_path, killed, method, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    assert _run(tmp_path, straight, method).returncode == 0
    final = [json.loads((run / "performance.json").read_text()) for run in (killed, straight)]
    assert final[0] == final[1]
