"""lhl sweep: the grid of run directories, selection on validation results only, selected.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lhl.cli import main
from lhl.config import load_config
from lhl.experiments import sweep as sweep_mod
from lhl.experiments.plan import plan_runs
from lhl.experiments.sweep import load_sweep, select, validation_pairs, with_val_size, write_report, write_selected

ORDER = "segmentation-depth-normal"
DIRECTIONS = {"segmentation": {"miou": True}, "depth": {"abs_err": False}}


def _sweep_file(path: Path, **extra) -> Path:
    tree = {"base": "smoke", "set": {"data.val_size": 4}, "method": "dis", "seeds": [0],
            "grid": {"method.alpha": [0, 3]}, **extra}
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def test_sweep_runs_the_grid_and_writes_a_loadable_selection(tmp_path):
    path = _sweep_file(tmp_path / "s.yaml")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert sorted(str(d.relative_to(out)) for d in out.glob("runs/*/*")) == [
        f"runs/{ORDER}/{name}-s0" for name in ("dis.alpha-0", "dis.alpha-3", "vanilla")]
    for run_dir in out.glob("runs/*/*"):
        assert "validation" in json.loads((run_dir / "performance.json").read_text())
    config = load_config(config_file=str(out / "selected.yaml"))
    assert config.method["name"] == "dis" and config.method["alpha"] in (0, 3) and config.data.val_size == 4
    text = (out / "sweep.md").read_text()
    assert "dis[alpha=0]" in text and "dis[alpha=3]" in text and "## Test set" in text
    # a second sweep finds every run complete
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/performance.json")}
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/performance.json")}


def _fabricate(out: Path, runs, validation: dict, test: dict) -> None:
    """performance.json of every run with chosen validation and test numbers (by label)."""
    for run in runs:
        run_dir = out / run.rel_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        performance = {"tasks": ["segmentation", "depth"], "directions": DIRECTIONS,
                       "phases": [{"phase": 1, "task": "segmentation", "metrics": test[run.label]}],
                       "validation": validation[run.label]}
        (run_dir / "performance.json").write_text(json.dumps(performance))


def _result(miou: float, abs_err: float) -> dict:
    return {"segmentation": {"miou": miou}, "depth": {"abs_err": abs_err}}


@pytest.fixture
def fabricated(tmp_path):
    spec = load_sweep(_sweep_file(tmp_path / "s.yaml", grid={"method.alpha": [0, 3, 10]}))
    runs = plan_runs(spec.experiment())
    out = tmp_path / "out"
    # validation ranks alpha=3 first; the test set ranks alpha=10 first
    validation = {"vanilla": _result(0.5, 1.0), "dis.alpha-0": _result(0.5, 1.0), "dis.alpha-3": _result(0.6, 0.9),
                  "dis.alpha-10": _result(0.4, 1.2)}
    test = {"vanilla": _result(0.5, 1.0), "dis.alpha-0": _result(0.5, 1.0), "dis.alpha-3": _result(0.4, 1.2),
            "dis.alpha-10": _result(0.7, 0.5)}
    _fabricate(out, runs, validation, test)
    return spec, runs, out


def test_selection_follows_validation_not_test(fabricated):
    spec, runs, out = fabricated
    points, directions = validation_pairs(spec, runs, out)
    winner, means = select(points, directions)
    assert winner == "dis[alpha=3]" and means["dis[alpha=0]"] == 0
    assert means["dis[alpha=3]"] > 0 > means["dis[alpha=10]"]
    write_selected(spec, out, winner, means)
    assert load_config(config_file=str(out / "selected.yaml")).method["alpha"] == 3
    report = write_report(spec, runs, out, winner, points, directions).read_text()
    assert "dis[alpha=3]" in report.split("## Test set")[1] and "alpha=10" not in report.split("## Test set")[1]


def test_selection_never_reads_test_metrics(fabricated, monkeypatch):
    spec, runs, out = fabricated
    for path in out.glob("runs/*/*/performance.json"):  # no test metric left anywhere
        performance = json.loads(path.read_text())
        del performance["phases"]
        path.write_text(json.dumps(performance))

    def no_test(*args, **kwargs):
        raise AssertionError("selection read a test metric")

    monkeypatch.setattr(sweep_mod, "read_final_test", no_test)
    points, directions = validation_pairs(spec, runs, out)
    winner, means = select(points, directions)
    assert winner == "dis[alpha=3]"
    write_selected(spec, out, winner, means)
    with pytest.raises(AssertionError, match="test metric"):  # only the report reads test numbers
        write_report(spec, runs, out, winner, points, directions)


def test_ties_go_to_the_first_point_and_zip_mode(tmp_path):
    same = _result(0.5, 1.0)
    points = {"a": [(0, ORDER, same, same)], "b": [(0, ORDER, same, same)]}
    assert select(points, DIRECTIONS)[0] == "a"
    spec = load_sweep(_sweep_file(tmp_path / "z.yaml", method="had", mode="zip",
                                  grid={"method.alpha": [1, 3], "method.edge_threshold": [0.5, 0.9]}))
    assert [p.label for p in spec.points] == ["had[alpha=1,edge_threshold=0.5]", "had[alpha=3,edge_threshold=0.9]"]
    assert [p.name for p in spec.points] == ["had.alpha-1.edge_threshold-0.5", "had.alpha-3.edge_threshold-0.9"]
    product = load_sweep(_sweep_file(tmp_path / "p.yaml", method="had",
                                     grid={"method.alpha": [1, 3], "method.edge_threshold": [0.5, 0.9]}))
    assert len(product.points) == 4


def test_default_val_size_and_bad_files(tmp_path):
    spec = with_val_size(load_sweep(_sweep_file(tmp_path / "d.yaml", set={"train.epochs": 1})))
    assert spec.overrides["data.val_size"] == sweep_mod.DEFAULT_VAL_SIZE
    with pytest.raises(Exception, match="mode"):
        load_sweep(_sweep_file(tmp_path / "m.yaml", mode="grid"))
    with pytest.raises(Exception, match="zip"):
        load_sweep(_sweep_file(tmp_path / "m.yaml", mode="zip", grid={"method.alpha": [1], "train.lr": [0.1, 0.2]}))


def test_example_sweep_file_is_valid():
    root = Path(__file__).resolve().parents[2]
    spec = with_val_size(load_sweep(root / "experiments" / "sweep-had-alpha.yaml"))
    runs = plan_runs(spec.experiment())
    assert spec.method == "had" and len(spec.points) == 5
    assert len(runs) == 6 * len(spec.seeds) and all(r.config.data.val_size > 0 for r in runs)
