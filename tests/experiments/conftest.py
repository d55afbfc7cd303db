"""Helpers for the lhl bench tests: experiment files on the smoke preset, a plugin with methods that
fail or kill their own process, and a bench runner (in this process, or as a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lhl.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"

PLUGIN = '''
import os, signal
from pathlib import Path

from lhl.errors import NonFiniteError
from lhl.methods.vanilla import Vanilla
from lhl.registry import METHODS


@METHODS.register("bench-fails")
class Fails(Vanilla):
    """Vanilla until phase 2, then a NaN, as a diverging run would report it."""

    def loss_terms(self, ctx, batch, out):
        if ctx.phase == 2:
            raise NonFiniteError(f"non-finite loss term 'injected' (nan) at phase 2, epoch 1, step {ctx.step}")
        return {}


@METHODS.register("bench-killer")
class Killer(Vanilla):
    """Vanilla, except that the first time it reaches phase 2 (no marker file yet) it SIGKILLs its process."""

    def loss_terms(self, ctx, batch, out):
        marker = Path(os.environ["LHL_TEST_KILL_MARKER"])
        if ctx.phase == 2 and not marker.exists():
            marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        return {}
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plugin module ``bench_plugin`` on sys.path and PYTHONPATH (for worker processes); the
    killer's marker file in ``tmp_path``. Returns the marker's path."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "bench_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(SRC), os.environ.get("PYTHONPATH", "")]))
    marker = tmp_path / "killed.marker"
    monkeypatch.setenv("LHL_TEST_KILL_MARKER", str(marker))
    return marker


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tests compare runs made in this process with runs made by subprocesses and workers,
    which use one torch thread; the results are bit-identical only at equal thread counts (the
    reduction order changes), so this process uses one thread here too, whatever LHL_TEST_THREADS says."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_experiment(path: Path, **tree) -> Path:
    tree.setdefault("base", "smoke")
    tree.setdefault("seeds", [0])
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def bench(*args: str) -> int:
    return main(["bench", *map(str, args)])


def bench_subprocess(*args: str) -> subprocess.CompletedProcess:
    """``python -m lhl bench ...`` with one torch thread (what a killed bench looks like from outside)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "lhl", "bench", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def files_of(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a run directory: (mtime in ns, bytes)."""
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def assert_refused(path: Path, out: Path, capsys, message: str) -> None:
    """``lhl bench path --out out`` fails with exit 2 and one ``lhl: error: <path>: …`` line
    containing ``message``, and creates nothing."""
    assert bench(path, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lhl: error: {path}: "), err
    assert message in err, err
    assert not out.exists()
