"""``lhl eval``: a checkpoint re-evaluated reproduces the run's own metrics."""

from __future__ import annotations

import json

import pytest

from lhl.cli import main
from lhl.config import load_config
from lhl.engine.trainer import Trainer
from lhl.report.tables import format_phase_metrics


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    Trainer(load_config(preset="smoke", method="dis"), out, quiet=True).run()
    return out


def test_eval_reproduces_performance_json(finished, capsys):
    phases = json.loads((finished / "performance.json").read_text())["phases"]
    assert main(["eval", str(finished), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == phases[-1]  # {"phase", "task", "metrics"}, exactly
    assert main(["eval", str(finished), "--phase", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == phases[0]
    assert main(["eval", str(finished), "--phase", "2"]) == 0
    assert capsys.readouterr().out == format_phase_metrics(2, phases[1]["task"], phases[1]["metrics"]) + "\n"


def test_eval_batch_size_and_device(finished, capsys):
    phases = json.loads((finished / "performance.json").read_text())["phases"]
    assert main(["eval", str(finished), "--json", "--batch-size", "3", "--device", "cpu"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    for task, values in phases[-1]["metrics"].items():
        assert metrics[task] == pytest.approx(values, rel=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--split", "val"], "--split: 'val' needs a run with a validation split"),
    (["--split", "train"], "--split: invalid value 'train'; expected test or val"),
    (["--batch-size", "0"], "--batch-size: invalid value 0"),
    (["--phase", "7"], "phase 7 of"),
])
def test_eval_errors(finished, capsys, args, message):
    assert main(["eval", str(finished), *args]) != 0
    err = capsys.readouterr().err
    assert err.startswith("lhl: error: ") and message in err and err.count("\n") == 1


def test_eval_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 1
    assert f"lhl: error: '{tmp_path}' is not a run directory (no config.yaml" in capsys.readouterr().err
