"""Progress output: bars on a terminal, one plain line per epoch in a log file or a pipe."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from lhl.config import load_config
from lhl.engine.trainer import Trainer, epoch_line

EPOCH_LINE = re.compile(r"^phase (\d)/3 epoch (\d)/2: \d+ steps, \d+\.\d s, loss \S+")


def test_a_pipe_gets_one_line_per_epoch_and_no_carriage_return(tmp_path):
    command = [sys.executable, "-m", "lhl", "run", "--preset", "smoke", "--method", "dis", "--set", "train.epochs=2",
               "--out", str(tmp_path / "run")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=300)
    text = result.stdout.decode()
    assert result.returncode == 0, text
    assert "\r" not in text
    lines = [line for line in text.splitlines() if EPOCH_LINE.match(line)]
    assert [EPOCH_LINE.match(line).groups() for line in lines] == [
        (str(p), str(e)) for p in (1, 2, 3) for e in (1, 2)]
    assert "(new " in lines[-1] and "dis/segmentation" in lines[-1]  # the terms, when there are several
    assert "after phase 3 (normal):" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_bars_and_no_epoch_lines(tmp_path, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    Trainer(load_config(preset="smoke"), tmp_path / "run").run()
    assert "\r" in terminal.getvalue() and "phase 1 epoch 1" in terminal.getvalue()
    assert not any(EPOCH_LINE.match(line) for line in capsys.readouterr().out.splitlines())


def test_quiet_prints_nothing(tmp_path, capsys):
    Trainer(load_config(preset="smoke"), tmp_path / "run", quiet=True).run()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_epoch_line():
    assert epoch_line(2, 3, 1, 3, 96, 41.23, {"new": 0.532}) == "phase 2/3 epoch 1/3: 96 steps, 41.2 s, loss 0.532"
    assert epoch_line(1, 1, 1, 1, 2, 0.04, {"new": 0.5, "dis/depth": 0.25}) == (
        "phase 1/1 epoch 1/1: 2 steps, 0.0 s, loss 0.75 (new 0.5, dis/depth 0.25)")
