"""Experiment arms: the grid runs once per arm (e.g. from scratch and pretrained) into
runs/<arm>/<order-id>/<label>-s<seed>, the arm's ``set`` between the experiment's and the
variant's; strict validation; lhl bench (--list, --status, --shard, resume) and lhl report keep
the arms apart."""

from __future__ import annotations

import json

import pytest
import yaml

from lhl.cli import main
from lhl.experiments import load_experiment, plan_runs
from lhl.experiments.plan import shard_slice

from .conftest import assert_refused, bench, files_of, write_experiment

ARMS = {"narrow": {}, "wide": {"set": {"model.head_channels": 16}}}


def test_arms_are_read_and_written_back(tmp_path):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla"],
                            arms={"a": None, "b": {"set": {"train": {"lr": 0.01}}}})
    experiment = load_experiment(path)
    assert experiment.arms == {"a": {}, "b": {"train.lr": 0.01}}
    assert experiment.to_dict()["arms"] == {"a": {}, "b": {"set": {"train.lr": 0.01}}}
    again = tmp_path / "again.yaml"
    again.write_text(experiment.to_yaml())
    assert load_experiment(again).arms == experiment.arms
    # no arms: nothing changes (runs/<order-id>/<label>-s<seed>, no arms key written back)
    plain = load_experiment(write_experiment(tmp_path / "p.yaml", methods=["vanilla"], orders=[["depth"]]))
    assert plain.arms is None and "arms" not in plain.to_dict()
    assert [r.rel_dir for r in plan_runs(plain, validate=False)] == ["runs/depth/vanilla-s0"]


def test_plan_runs_every_entry_seed_and_order_once_per_arm(tmp_path):
    path = write_experiment(
        tmp_path / "e.yaml", set={"train.lr": 0.002, "model.head_channels": 4}, methods=["vanilla"],
        variants={"v": {"method": "had", "set": {"train.lr": 0.004}}}, seeds=[0, 1],
        orders=[["segmentation", "depth"], ["depth", "segmentation"]],
        arms={"narrow": {}, "wide": {"set": {"model.head_channels": 16, "train.lr": 0.003}}})
    runs = plan_runs(load_experiment(path))
    assert len(runs) == 2 * 2 * 2 * 2 and len({r.rel_dir for r in runs}) == len(runs)
    # seed-major, then arm, order and label as written
    assert [r.rel_dir for r in runs[:8]] == [f"runs/{arm}/{order}/{label}-s0" for arm in ("narrow", "wide")
                                             for order in ("segmentation-depth", "depth-segmentation")
                                             for label in ("vanilla", "v")]
    by_dir = {r.rel_dir: r for r in runs}
    # the arm's set after the experiment's, the variant's after the arm's
    narrow, wide = by_dir["runs/narrow/depth-segmentation/v-s1"], by_dir["runs/wide/depth-segmentation/v-s1"]
    assert wide.overrides == ["train.lr=0.002", "model.head_channels=4", "model.head_channels=16", "train.lr=0.003",
                              "train.lr=0.004", "seed=1", "tasks=[depth, segmentation]"]
    assert (narrow.config.model.head_channels, narrow.config.train.lr) == (4, 0.004)
    assert (wide.config.model.head_channels, wide.config.train.lr) == (16, 0.004)
    vanilla = by_dir["runs/wide/segmentation-depth/vanilla-s0"]
    assert (vanilla.config.model.head_channels, vanilla.config.train.lr) == (16, 0.003)
    assert vanilla.arm == "wide" and "arm wide" in vanilla.describe()
    # shards split the whole list, arms included
    assert sorted(r.index for n in (1, 2, 3) for r in shard_slice(runs, (n, 3))) == list(range(len(runs)))


BAD = [
    ("arms a list", ["a", "b"], "arms: invalid value ['a', 'b']; expected a mapping"),
    ("arms empty", {}, "arms: invalid value {}"),
    ("arm bad name", {"a/b": {}}, "arms: invalid arm name 'a/b'"),
    ("arm not a mapping", {"a": 3}, "arms.a: invalid value 3"),
    ("arm unknown key", {"a": {"sett": {}}}, "arms.a: unknown key 'sett'; allowed keys: set"),
    ("arm sets seed", {"a": {"set": {"seed": 1}}}, "arms.a.set.seed: set by the experiment's grid; use seeds"),
    ("arm sets tasks", {"a": {"set": {"tasks": ["depth"]}}}, "arms.a.set.tasks: set by the experiment's grid"),
    ("arm sets method.name", {"a": {"set": {"method": {"name": "had"}}}},
     "arms.a.set.method.name: set by the experiment's grid; use methods or a variant's method"),
    ("arm unknown config key", {"a": {"set": {"model.bogus": 1}}}, "arms.a.set: unknown config key 'model.bogus'"),
    ("arm bad value", {"a": {"set": {"train.epochs": "many"}}}, "arms.a.set: train.epochs"),
    ("arm weight file missing", {"a": {}, "p": {"set": {"model.weights": "synthetic-pretrained"}}},
     "arms.p: model.weights: synthetic-pretrained: "),
    ("first arm weight file missing", {"p": {"set": {"model.weights": "nope.pt"}}, "a": {}},
     "arms.p: model.weights: 'nope.pt' is not a file"),
    ("arms alike", {"a": {}, "b": {"set": {"train.epochs": 1}}},
     "arms.b: gives the same configuration as the arm a"),
]


@pytest.mark.parametrize("name, arms, message", BAD, ids=[b[0] for b in BAD])
def test_bad_arms_are_one_line_naming_the_key(tmp_path, capsys, monkeypatch, name, arms, message):
    monkeypatch.setenv("LHL_HOME", str(tmp_path / "lhl-home"))  # no synthetic-pretrained file there
    path = write_experiment(tmp_path / "bad.yaml", methods=["vanilla"], arms=arms)
    assert_refused(path, tmp_path / "out", capsys, message)


def test_arm_named_twice_is_refused(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text("base: smoke\nseeds: [0]\nmethods: [vanilla]\narms:\n  a: {}\n  a: {set: {train.lr: 0.1}}\n")
    assert bench(path, "--list") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lhl: error: {path}: not valid YAML: duplicate key 'a'") and err.count("\n") == 1


def _status(run_dir):
    return json.loads((run_dir / "bench-status.json").read_text())


def test_bench_with_arms_lists_shards_resumes_and_reports_per_arm(tmp_path, capsys):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla", "had"], orders=[["segmentation", "depth"]],
                            arms=ARMS)
    out = tmp_path / "out"
    assert bench(path, "--list", "--out", out) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["#", "arm", "label", "order", "seed", "run", "directory"]
    assert listed[3].split() == ["2", "wide", "vanilla", "segmentation-depth", "0",
                                 str(out / "runs/wide/segmentation-depth/vanilla-s0")]
    # two shards into one directory complete the experiment
    assert bench(path, "--out", out, "--shard", "1/2") == 0
    capsys.readouterr()
    assert bench("--status", out) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{out}: 4 runs: 2 done, 0 failed, 0 running, 2 pending"
    assert bench(path, "--out", out, "--shard", "2/2") == 0
    printed = capsys.readouterr().out
    dirs = sorted(out.glob("runs/*/*/*"))
    assert [str(d.relative_to(out)) for d in dirs] == [f"runs/{arm}/segmentation-depth/{label}-s0"
                                                       for arm in ("narrow", "wide") for label in ("had", "vanilla")]
    for run_dir in dirs:
        assert _status(run_dir)["state"] == "done" and _status(run_dir)["arm"] == run_dir.parts[-3]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["model"]["head_channels"] == (16 if run_dir.parts[-3] == "wide" else 8)
    # the comparison bench prints: one table per arm, each against its own arm's vanilla
    assert f"lhl compare {out}/runs/*/*/* --baseline vanilla:" in printed
    assert "## synthetic-nyu (narrow): segmentation → depth" in printed
    assert "## synthetic-nyu (wide): segmentation → depth" in printed
    assert printed.count("| vanilla | 0 |") == 2
    # the resolved experiment keeps the arms; --status reads them; a rerun touches nothing
    assert yaml.safe_load((out / "experiment.yaml").read_text())["arms"] == ARMS
    assert bench("--status", out) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{out}: 4 runs: 4 done, 0 failed, 0 running, 0 pending"
    before = {d: files_of(d) for d in dirs}
    assert bench(out / "experiment.yaml", "--out", out) == 0
    assert "0 run(s) finished now, 4 were complete" in capsys.readouterr().out
    assert {d: files_of(d) for d in dirs} == before
    # lhl report: per arm, Δ of vanilla 0 against itself
    assert main(["report", str(out), "--samples", "0"]) == 0
    text = (out / "report" / "report.md").read_text()
    assert "## synthetic-nyu (narrow)\n" in text and "## synthetic-nyu (wide)\n" in text
    assert "### synthetic-nyu (wide): segmentation → depth\n" in text
    rows = [line for line in text.splitlines() if line.startswith("| vanilla | 0 |")]
    assert len(rows) == 2 and all("0.00" in [cell.strip(" *") for cell in row.split("|")] for row in rows)
    # the cost columns tell the arms apart: the wide heads have more parameters
    params = sorted(float(row.split("|")[-5].strip().rstrip("K")) for row in rows)
    assert params[0] < params[1]
