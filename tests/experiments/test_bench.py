"""lhl bench: every run of the grid into one directory; complete runs skipped, interrupted ones
resumed, failures recorded without stopping the others; status, sharding and worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from lhl.cli import main
from lhl.engine.rundir import RunDirectory
from lhl.experiments import runner
from lhl.report.compare import comparison_table, load_runs

from .conftest import bench, bench_subprocess, files_of, write_experiment

ORDERS = [["segmentation", "depth", "normal"], ["normal", "depth", "segmentation"]]


def _status(run_dir: Path) -> dict:
    return json.loads((run_dir / "bench-status.json").read_text())


def _phases(run_dir: Path) -> list:
    return json.loads((run_dir / "performance.json").read_text())["phases"]


def test_grid_runs_every_run_and_compares(tmp_path, capsys):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla"],
                            variants={"had-eps": {"method": "had", "set": {"method.eps": 1e-4}}}, seeds=[0, 1],
                            orders=ORDERS)
    out = tmp_path / "out"
    assert bench(path, "--out", out) == 0
    printed = capsys.readouterr().out
    dirs = sorted(out.glob("runs/*/*"))
    assert [str(d.relative_to(out)) for d in dirs] == [
        f"runs/{o}/{label}-s{seed}" for o in ("normal-depth-segmentation", "segmentation-depth-normal")
        for label in ("had-eps", "vanilla") for seed in (0, 1)]
    for run_dir in dirs:
        assert (run_dir / "summary.md").is_file() and _status(run_dir)["state"] == "done"
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["seed"] == int(run_dir.name[-1]) and "-".join(config["tasks"]) == run_dir.parent.name
    # the resolved experiment is kept, and is itself an experiment file
    saved = yaml.safe_load((out / "experiment.yaml").read_text())
    assert saved["orders"] == ORDERS and saved["variants"]["had-eps"]["set"] == {"method.eps": 1e-4}
    # lhl compare over DIR/runs/*/*: one table per order, rows labelled by the variant's name
    table = comparison_table(load_runs(dirs))
    assert table.count("## synthetic-nyu:") == 2 and table.count("| had-eps | 0,1 |") == 2
    assert "| had-eps | 0,1 |" in printed  # bench prints the comparison when every run is complete
    assert main(["compare", *map(str, dirs)]) == 0
    assert capsys.readouterr().out.count("| had-eps | 0,1 |") == 2
    # --status
    assert bench("--status", out) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{out}: 8 runs: 8 done, 0 failed, 0 running, 0 pending"
    # a second bench finds everything complete and touches nothing
    before = {d: files_of(d) for d in dirs}
    assert bench(out / "experiment.yaml", "--out", out) == 0
    assert "0 run(s) finished now, 8 were complete" in capsys.readouterr().out
    assert {d: files_of(d) for d in dirs} == before


def test_failing_run_is_recorded_and_the_others_finish(tmp_path, capsys, plugin):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla"], seeds=[0, 1],
                            variants={"diverges": {"method": "bench-fails", "set": {"plugins": ["bench_plugin"]}},
                                      "dis-fast": {"method": "dis", "set": {"train.lr": 0.01}}})
    out = tmp_path / "out"
    assert bench(path, "--out", out) == 1
    printed = capsys.readouterr().out
    runs = out / "runs" / "segmentation-depth-normal"
    for name in ("vanilla-s0", "dis-fast-s0", "vanilla-s1", "dis-fast-s1"):
        assert (runs / name / "summary.md").is_file()
    for seed in (0, 1):
        status = _status(runs / f"diverges-s{seed}")
        assert status["state"] == "failed" and "non-finite loss term 'injected' (nan) at phase 2" in status["error"]
        assert len(_phases(runs / f"diverges-s{seed}")) == 1  # the completed phase is kept
    assert "2 failed" in printed and "FAILED [1] diverges seed 0" in printed
    assert "lhl compare" not in printed  # not every run is complete
    assert bench("--status", out) == 0
    status = capsys.readouterr().out
    assert f"{out}: 6 runs: 4 done, 2 failed, 0 running, 0 pending" in status
    assert "[1] diverges seed 0 order segmentation-depth-normal" in status and "injected" in status
    # rerunning retries only the failed runs (they fail again)
    done = files_of(runs / "vanilla-s0")
    assert bench(path, "--out", out) == 1
    assert "0 run(s) finished now, 4 were complete, 2 failed" in capsys.readouterr().out
    assert files_of(runs / "vanilla-s0") == done
    assert _status(runs / "diverges-s0")["attempts"] == 2


def test_killed_bench_resumes_only_the_missing_runs(tmp_path, capsys, plugin):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla"], seeds=[0, 1],
                            variants={"killed": {"method": "bench-killer", "set": {"plugins": ["bench_plugin"]}}})
    out = tmp_path / "out"
    first = bench_subprocess(path, "--out", out)
    assert first.returncode == -9, first.stderr  # the run SIGKILLed the bench (in-process run)
    assert plugin.exists()
    runs = out / "runs" / "segmentation-depth-normal"
    assert (runs / "vanilla-s0" / "summary.md").is_file()
    assert len(_phases(runs / "killed-s0")) == 1 and not (runs / "vanilla-s1").exists()
    assert bench("--status", out) == 0
    status = capsys.readouterr().out
    assert f"{out}: 4 runs: 1 done, 0 failed, 0 running, 3 pending" in status
    assert "[1] killed seed 0 order segmentation-depth-normal" in status and "interrupted after phase 1" in status
    before = files_of(runs / "vanilla-s0")
    assert bench(path, "--out", out) == 0
    assert "3 run(s) finished now, 1 were complete, 0 failed" in capsys.readouterr().out
    assert files_of(runs / "vanilla-s0") == before  # untouched: same bytes, same mtimes
    for name in ("killed-s0", "vanilla-s1", "killed-s1"):
        assert (runs / name / "summary.md").is_file()
    events = [json.loads(line) for line in (runs / "killed-s0" / "events.jsonl").read_text().splitlines()]
    assert [e["phase"] for e in events if e["event"] == "resume"] == [1]
    # the killer behaves as vanilla: the resumed run gives vanilla's numbers exactly
    assert _phases(runs / "killed-s0") == _phases(runs / "vanilla-s0")


def test_run_locked_by_another_process_is_left_to_it(tmp_path, capsys):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla", "dis"])
    out = tmp_path / "out"
    other = RunDirectory(out / "runs" / "segmentation-depth-normal" / "dis-s0")
    other.acquire()  # another process is writing this run
    try:
        assert bench(path, "--out", out) == 0
        printed = capsys.readouterr().out
        assert "1 running elsewhere, 1 to run" in printed
        assert bench("--status", out) == 0
        assert "1 done, 0 failed, 1 running, 0 pending" in capsys.readouterr().out
    finally:
        other.release()
    assert bench(path, "--out", out) == 0
    assert "1 run(s) finished now, 1 were complete" in capsys.readouterr().out


def test_changed_experiment_is_refused_before_anything_starts(tmp_path, capsys):
    out = tmp_path / "out"
    assert bench(write_experiment(tmp_path / "e.yaml", methods=["vanilla"]), "--out", out) == 0
    changed = write_experiment(tmp_path / "e.yaml", methods=["vanilla", "dis"], set={"train.epochs": 2})
    capsys.readouterr()
    before = files_of(out)
    assert bench(changed, "--out", out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vanilla-s0' holds a run whose configuration differs" in err
    assert "train.epochs: run has 1, now 2" in err
    assert files_of(out) == before and not (out / "runs" / "segmentation-depth-normal" / "dis-s0").exists()


def test_jobs_2_gives_the_results_of_jobs_1_and_a_killed_worker_is_resumed(tmp_path, capsys, plugin, monkeypatch):
    monkeypatch.setattr(runner, "available_cores", lambda: 2)  # one thread per worker, like the tests
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla", "dis"],
                            variants={"killed": {"method": "bench-killer", "set": {"plugins": ["bench_plugin"]}}})
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    assert bench(path, "--out", parallel, "--jobs", "2") == 1  # the killed worker is a failure ...
    printed = capsys.readouterr().out
    assert "3 to run, 2 at a time" in printed and "killed seed 0 segmentation-depth-normal: FAILED: the worker " \
        "process was killed by SIGKILL" in printed
    runs = parallel / "runs" / "segmentation-depth-normal"
    assert "--set 'plugins=[bench_plugin]'" in (runs / "killed-s0" / "bench.log").read_text()
    kept = {name: files_of(runs / name) for name in ("vanilla-s0", "dis-s0")}
    assert bench(path, "--out", parallel, "--jobs", "2") == 0  # ... resumed by the next bench
    assert "1 run(s) finished now, 2 were complete" in capsys.readouterr().out
    assert {name: files_of(runs / name) for name in ("vanilla-s0", "dis-s0")} == kept
    assert bench(path, "--out", serial) == 0  # in this process, one after the other
    for name in ("vanilla-s0", "dis-s0", "killed-s0"):
        a = json.loads((runs / name / "performance.json").read_text())
        b = json.loads((serial / "runs" / "segmentation-depth-normal" / name / "performance.json").read_text())
        assert a == b
    assert _phases(runs / "killed-s0") == _phases(runs / "vanilla-s0")


def test_worker_environment_divides_threads_and_gpus(monkeypatch):
    monkeypatch.setattr(runner, "available_cores", lambda: 16)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    env = runner._child_env(1, 4, ["2", "5"])
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4" and env["CUDA_VISIBLE_DEVICES"] == "5"
    assert runner._child_env(2, 4, ["2", "5"])["CUDA_VISIBLE_DEVICES"] == "2"
    env = runner._child_env(0, 32, None)
    assert env["OMP_NUM_THREADS"] == "1" and env["CUDA_VISIBLE_DEVICES"] == "2,5"  # not spread: left as it is
    assert str(Path(runner.__file__).resolve().parents[2]) in env["PYTHONPATH"].split(os.pathsep)


@pytest.mark.parametrize("count", [2, 3])
def test_shards_together_complete_the_experiment(tmp_path, capsys, count):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla", "dis"], seeds=[0, 1])
    out = tmp_path / "out"
    for i in range(1, count + 1):
        assert bench(path, "--out", out, "--shard", f"{i}/{count}") == 0
        printed = capsys.readouterr().out
        assert f"(shard {i}/{count}:" in printed
        assert ("| dis | 0,1 |" in printed) == (i == count)  # the last shard sees the whole experiment done
    assert len(list(out.glob("runs/*/*/summary.md"))) == 4


def test_worker_error_is_its_lhl_error_line(tmp_path):
    log = tmp_path / "bench.log"
    log.write_text("--- old attempt\nlhl: error: old\n")
    offset = len(log.read_text())
    with open(log, "a") as handle:
        handle.write("progress\nlhl: error: non-finite loss term 'new' (nan) at phase 2\n")
    assert runner._error_line(log, offset) == "non-finite loss term 'new' (nan) at phase 2"
    with open(log, "a") as handle:
        handle.write("Traceback (most recent call last):\n  ...\nTypeError: a bug\n")
    assert runner._error_line(log, len(log.read_text()) - len("TypeError: a bug\n")) == "TypeError: a bug"
