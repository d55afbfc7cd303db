import json

import pytest

from lhl.cli import main
from lhl.report.compare import comparison_table, load_runs


def _write(run_dir, miou, abs_err):
    run_dir.mkdir(parents=True)
    performance = {"benchmark": "b", "method": "m", "tasks": ["segmentation", "depth"], "phases": [
        {"phase": 1, "task": "segmentation", "metrics": {"segmentation": {"miou": 99.0}}},
        {"phase": 2, "task": "depth", "metrics": {"segmentation": {"miou": miou}, "depth": {"abs_err": abs_err}}}]}
    (run_dir / "performance.json").write_text(json.dumps(performance))


def test_delta_per_seed_then_mean_std(tmp_path):
    _write(tmp_path / "vanilla-s0", 20.0, 2.0)
    _write(tmp_path / "vanilla-s1", 40.0, 1.0)
    _write(tmp_path / "had-s0", 30.0, 2.0)   # Δ = ((30−20)/20 + 0)/2 = +25 %
    _write(tmp_path / "had-s1", 40.0, 0.5)   # Δ = (0 + (1−0.5)/1)/2 = +25 %
    table = comparison_table(load_runs(sorted(tmp_path.iterdir())))
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert "25.00 ± 0.00" in rows["had"]
    assert "0.00 ± 0.00" in rows["vanilla"]
    assert "| 35 |" in rows["had"]  # mean final mIoU over the seeds
    # mean rank per seed: each seed one task tied (both rank 1), one won by had → vanilla (1 + 2)/2
    assert rows["had"].endswith("| 1.00 |") and rows["vanilla"].endswith("| 1.50 |")


def test_errors(tmp_path, capsys):
    (tmp_path / "noseed").mkdir()
    (tmp_path / "noseed" / "performance.json").write_text("{}")
    with pytest.raises(ValueError, match="<label>-s<seed>"):
        load_runs([tmp_path / "noseed"])
    (tmp_path / "partial-s0").mkdir()
    (tmp_path / "partial-s0" / "performance.json").write_text(json.dumps(
        {"tasks": ["segmentation", "depth"], "phases": [{"phase": 1, "task": "segmentation",
                                                         "metrics": {"segmentation": {"miou": 1.0}}}]}))
    with pytest.raises(ValueError, match="unfinished run"):
        load_runs([tmp_path / "partial-s0"])
    _write(tmp_path / "had-s0", 30.0, 2.0)
    with pytest.raises(KeyError, match="no runs labelled 'vanilla'"):
        comparison_table(load_runs([tmp_path / "had-s0"]))
    assert main(["compare", str(tmp_path / "missing-s0")]) == 2
    assert "not a finished run" in capsys.readouterr().err
