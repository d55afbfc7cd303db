"""Experiment files: every file in experiments/ validates (every run's configuration builds), and
a bad file is one line naming the file and the key, before anything is created."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from lhl.config import load_config
from lhl.engine.build import build_run
from lhl.errors import ConfigError
from lhl.experiments import experiment_from_options, load_experiment, plan_runs, shard_slice
from lhl.experiments.plan import parse_shard

from .conftest import assert_refused, bench, write_experiment

# sweep-*.yaml are lhl sweep files (tests/experiments/test_sweep.py validates them)
EXPERIMENTS = sorted(p for p in (Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml")
                     if not p.name.startswith("sweep-"))


def test_the_experiment_files_are_there():
    names = {p.name for p in EXPERIMENTS}
    assert {"demo.yaml", "had-ablations.yaml", "table1-nyuv2-r18.yaml", "table3-4-ablations.yaml",
            "table7-orders.yaml", "table10-pod.yaml", "synthetic-nyu-orders.yaml", "regimes.yaml"} <= names
    assert not (EXPERIMENTS[0].parent / "had_ablations.sh").exists()


def _plan(experiment):
    """plan_runs; an arm whose ``model.weights`` file is not on this machine (``synthetic-pretrained``,
    cached by ``lhl pretrain``) is planned with another model setting in its place."""
    try:
        return plan_runs(experiment)
    except ConfigError as exc:
        if not (experiment.arms and "arms." in str(exc) and "model.weights" in str(exc)):
            raise
    experiment.arms = {name: ({k: v for k, v in sets.items() if k != "model.weights"} | {"model.head_channels": 32}
                              if "model.weights" in sets else sets) for name, sets in experiment.arms.items()}
    return plan_runs(experiment)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_experiment_file_validates(path, tmp_path, monkeypatch):
    monkeypatch.setenv("LHL_HOME", str(tmp_path))  # the same whether or not this machine has pretrained weights
    experiment = load_experiment(path)
    runs = _plan(experiment)
    assert len(runs) == (len(experiment.entries()) * len(experiment.seeds) * len(experiment.orders or [None])
                         * len(experiment.arms or [None]))
    assert len({r.rel_dir for r in runs}) == len(runs)
    for run in runs:
        assert run.config is not None and run.config.seed == run.seed and run.config.tasks == run.order
        # the arguments a worker passes to `lhl run` give the same configuration
        args = dict(zip(run.run_args()[::2], run.run_args()[1::2]))
        assert args["--preset"] == experiment.base and args["--method"] == run.method
        assert build_run(load_config(preset=experiment.base, method=run.method,
                                     overrides=run.overrides)).config == run.config


def test_paper_tables_have_their_grids():
    table1 = load_experiment(EXPERIMENTS[0].parent / "table1-nyuv2-r18.yaml")
    assert table1.methods == ["vanilla", "joint", "dis", "had", "ewc", "lwf", "icarl", "der", "pod", "spg", "sgp"]
    table7 = load_experiment(EXPERIMENTS[0].parent / "table7-orders.yaml")
    assert table7.orders == [["segmentation", "depth", "normal"], ["normal", "depth", "segmentation"],
                             ["depth", "segmentation", "normal"]]
    pod = plan_runs(load_experiment(EXPERIMENTS[0].parent / "table10-pod.yaml"))
    options = {(r.config.method["mode"], r.config.method["distance"]) for r in pod if r.method == "pod"}
    assert options == {("local", "frobenius"), ("local", "l1"), ("local", "l2"), ("global", "frobenius"),
                       ("global", "l1")}
    ablations = {r.label: r.config.method for r in plan_runs(load_experiment(EXPERIMENTS[0].parent /
                                                                             "had-ablations.yaml"))}
    assert ablations["had-eps1e-4"]["eps"] == 1e-4 and ablations["had-no-sg"]["use_sg"] is False
    assert ablations["had-reference"]["variant"] == "reference" and ablations["had"]["eps"] == 1e-8


def test_issue_15_experiments_have_their_grids():
    folder = EXPERIMENTS[0].parent
    orders = load_experiment(folder / "synthetic-nyu-orders.yaml")
    assert sorted(map(tuple, orders.orders)) == sorted(itertools.permutations(["segmentation", "depth", "normal"]))
    assert orders.methods == ["vanilla", "joint", "dis", "had"] and orders.base == "synthetic-nyu-demo"
    regimes = load_experiment(folder / "regimes.yaml")
    assert regimes.base == "synthetic-nyu-demo" and regimes.seeds == [0, 1, 2]
    assert regimes.orders == [["segmentation", "depth", "normal"], ["normal", "depth", "segmentation"]]
    assert [e.label for e in regimes.entries()] == ["vanilla", "joint", "dis", "had", "ewc", "lwf", "pod", "frozen",
                                                    "side-tuning", "had-arithmetic", "had-eps1e-4"]
    assert regimes.arms == {"scratch": {}, "pretrained": {"model.weights": "synthetic-pretrained"}}
    assert regimes.default_baseline() == "vanilla"
    runs = plan_runs(regimes, validate=False)
    assert len(runs) == 132 and len({r.rel_dir for r in runs}) == 132
    assert "lhl bench experiments/regimes.yaml --out runs/regimes --jobs 2 && lhl report runs/regimes" in \
        (folder / "regimes.yaml").read_text()


def test_a_variant_names_the_run_directory_and_takes_any_config_key(tmp_path):
    path = write_experiment(tmp_path / "e.yaml", set={"train": {"epochs": 2}}, methods=["vanilla"],
                            variants={"had-big": {"method": "had", "set": {"method.eps": 1e-4, "train.lr": 0.01}}},
                            seeds=[0, 3], orders=[["normal", "depth"]])
    runs = plan_runs(load_experiment(path))
    assert [r.rel_dir for r in runs] == ["runs/normal-depth/vanilla-s0", "runs/normal-depth/had-big-s0",
                                         "runs/normal-depth/vanilla-s3", "runs/normal-depth/had-big-s3"]
    assert runs[1].config.method["eps"] == 1e-4 and runs[1].config.train.lr == 0.01
    assert runs[0].config.train.epochs == 2 and runs[0].config.train.lr == 0.001


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_are_disjoint_and_cover_the_list(tmp_path, count, capsys):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla", "dis", "had"], seeds=[0, 1],
                            orders=[["segmentation", "depth", "normal"], ["normal", "depth", "segmentation"]])
    runs = plan_runs(load_experiment(path))
    slices = [shard_slice(runs, (i, count)) for i in range(1, count + 1)]
    indices = [r.index for s in slices for r in s]
    assert sorted(indices) == list(range(len(runs))) == [r.index for r in runs]
    assert all(r.index % count == i - 1 for i, s in enumerate(slices, start=1) for r in s)
    listed = []
    for i in range(1, count + 1):  # the same through `lhl bench --list --shard I/N`
        assert bench(path, "--list", "--shard", f"{i}/{count}") == 0
        listed += [int(line.split()[0]) for line in capsys.readouterr().out.splitlines()[1:]]
    assert sorted(listed) == list(range(12))


def test_list_prints_one_line_per_run(tmp_path, capsys):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla"], variants={"v2": {"method": "dis"}},
                            seeds=[0, 1])
    assert bench(path, "--list", "--out", tmp_path / "out") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "label", "order", "seed", "run", "directory"]
    assert [line.split() for line in lines[1:]] == [
        [str(i), label, "segmentation-depth-normal", str(seed),
         str(tmp_path / "out" / "runs" / "segmentation-depth-normal" / f"{label}-s{seed}")]
        for i, (seed, label) in enumerate([(0, "vanilla"), (0, "v2"), (1, "vanilla"), (1, "v2")])]
    assert not (tmp_path / "out").exists()


def test_command_line_form(tmp_path, capsys):
    experiment = experiment_from_options(preset="smoke", methods="vanilla,had", seeds="0,1",
                                         orders="segmentation,depth,normal;normal,depth,segmentation",
                                         sets=["train.epochs=2"])
    runs = plan_runs(experiment)
    assert len(runs) == 8 and runs[0].config.train.epochs == 2
    assert bench("--preset", "smoke", "--methods", "vanilla,had", "--orders", "depth,normal", "--list") == 0
    out = capsys.readouterr().out
    assert "runs/depth-normal/had-s0" in out and len(out.splitlines()) == 3


BAD = [
    ("unknown top-level key", {"methds": ["vanilla"]}, "unknown key 'methds'; allowed keys: base, set, methods"),
    ("no base", {"base": None}, "base: invalid value None"),
    ("unknown preset", {"base": "nope"}, "base: unknown preset 'nope'"),
    ("methods not a list", {"methods": "vanilla"}, "methods: invalid value 'vanilla'; expected a list"),
    ("method twice", {"methods": ["vanilla", "vanilla"]}, "methods: 'vanilla' is listed twice"),
    ("unknown method", {"methods": ["vanilla", "nope"]}, "methods: nope: unknown method 'nope'"),
    ("no runs", {"methods": []}, "methods: no run"),
    ("seeds missing", {"seeds": None}, "seeds: missing; expected a list of seeds"),
    ("seeds empty", {"seeds": []}, "seeds: invalid value []"),
    ("seed not an int", {"seeds": [0, "one"]}, "seeds: invalid value 'one'; expected integers >= 0"),
    ("seed twice", {"seeds": [1, 1]}, "seeds: a seed is listed twice"),
    ("variant without method", {"variants": {"v": {"set": {"train.lr": 0.1}}}}, "variants.v.method: missing"),
    ("variant unknown key", {"variants": {"v": {"method": "had", "sett": {}}}}, "variants.v: unknown key 'sett'"),
    ("variant named like a method", {"variants": {"vanilla": {"method": "had"}}},
     "variants.vanilla: the name 'vanilla' is also listed under methods"),
    ("variant bad option value", {"variants": {"v": {"method": "had", "set": {"method.eps": -1}}}},
     "variants.v: method.eps"),
    ("variant option of another method", {"variants": {"v": {"method": "dis", "set": {"method.eps": 1}}}},
     "variants.v: unknown config key 'method.eps'"),
    ("variant bad name", {"variants": {"a/b": {"method": "had"}}}, "variants: invalid variant name 'a/b'"),
    ("variant same as a method", {"variants": {"v": {"method": "vanilla"}}},
     "variants.v: gives the same configuration as methods (vanilla)"),
    ("set unknown key", {"set": {"train.bogus": 1}}, "set: unknown config key 'train.bogus'"),
    ("set bad value", {"set": {"train.epochs": "many"}}, "set: train.epochs"),
    ("set seed", {"set": {"seed": 3}}, "set.seed: set by the experiment's grid; use seeds"),
    ("set tasks", {"set": {"tasks": ["depth"]}}, "set.tasks: set by the experiment's grid; use orders"),
    ("set not a mapping", {"set": ["train.epochs=2"]}, "set: invalid value"),
    ("order unknown task", {"orders": [["segmentation", "depht"]]}, "orders[0]: tasks: benchmark 'synthetic-nyu' has no task 'depht'"),
    ("order not a list", {"orders": ["segmentation,depth"]}, "orders[0]: invalid value 'segmentation,depth'"),
    ("order twice", {"orders": [["depth"], ["depth"]]}, "orders[1]: the order ['depth'] is listed twice"),
    ("task twice", {"orders": [["depth", "depth"]]}, "orders[0]: a task is listed twice"),
    ("baseline unknown", {"baseline": "had"}, "baseline: invalid value 'had'"),
]


@pytest.mark.parametrize("name, change, message", BAD, ids=[b[0] for b in BAD])
def test_bad_experiment_file_is_one_line_naming_the_key(tmp_path, capsys, name, change, message):
    tree = {"base": "smoke", "methods": ["vanilla"], "seeds": [0], **change}
    tree = {k: v for k, v in tree.items() if not (v is None and "missing" in name)}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tree))
    assert_refused(path, tmp_path / "out", capsys, message)


def test_duplicate_variant_names_are_refused(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text("base: smoke\nseeds: [0]\nvariants:\n  v: {method: had}\n  v: {method: dis}\n")
    assert bench(path, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lhl: error: {path}: not valid YAML: duplicate key 'v' (line 5)") and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--preset", "smoke", "--methods", "vanilla", "--seeds", "0,x"], "--seeds: invalid value 'x'"),
    (["--preset", "smoke", "--methods", "vanilla", "--shard", "0/2"], "--shard: invalid value '0/2'"),
    (["--preset", "smoke", "--methods", "vanilla", "--shard", "3/2"], "--shard: invalid value '3/2'"),
    (["--preset", "smoke", "--methods", "vanilla", "--jobs", "0"], "--jobs: invalid value 0"),
    (["--preset", "smoke", "--methods", "vanilla,,had"], "--methods: invalid value 'vanilla,,had'"),
    (["--preset", "smoke", "--methods", "vanilla", "--orders", "depth;nope"], "orders[1]: tasks: benchmark"),
    (["--preset", "smoke", "--methods", "vanilla"], "--out DIR is required"),
    (["--preset", "nope", "--methods", "vanilla"], "--preset: unknown preset 'nope'"),
    ([], "expected an experiment file"),
    (["--status", "/nonexistent"], "--status: '/nonexistent' holds no experiment.yaml"),
])
def test_bad_command_line_form_is_one_line(capsys, args, message):
    assert bench(*args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_options_of_a_file_experiment_are_refused(tmp_path, capsys):
    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla"])
    assert bench(path, "--methods", "had", "--out", tmp_path / "out") == 2
    assert "--methods: not allowed with an experiment file" in capsys.readouterr().err


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    for text in ("4", "a/b", "5/4", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(text)


def test_base_config_file_is_relative_to_the_experiment(tmp_path, capsys):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.yaml").write_text("base: smoke\nmethod: {name: had, alpha: 2}\ntrain: {epochs: 2}\n")
    (tmp_path / "exps").mkdir()
    path = write_experiment(tmp_path / "exps" / "e.yaml", base="../configs/tiny.yaml", methods=["had", "vanilla"])
    experiment = load_experiment(path)
    assert experiment.base == str(tmp_path / "configs" / "tiny.yaml") and experiment.base_is_file
    had, vanilla = plan_runs(experiment)
    assert had.config.method["alpha"] == 2 and had.config.train.epochs == 2 and vanilla.config.method == {"name": "vanilla"}
    assert had.run_args()[:2] == ["--config", str(tmp_path / "configs" / "tiny.yaml")]
    # --method vanilla drops had's options: the note is printed once, not once per check
    assert capsys.readouterr().err.count("lhl: note: --method vanilla replaces method 'had'") == 1


def test_set_on_the_command_line_adds_to_a_file(tmp_path, capsys):
    from lhl.experiments.command import _experiment

    path = write_experiment(tmp_path / "e.yaml", methods=["vanilla"], set={"train.epochs": 3})
    experiment = _experiment(str(path), None, None, None, None, None, ["train.lr=0.01", "train.epochs=2"], None)
    assert experiment.overrides == {"train.epochs": 2, "train.lr": 0.01}
    assert plan_runs(experiment)[0].config.train.epochs == 2
    assert bench(path, "--set", "seed=4", "--list") == 2
    assert "set.seed: set by the experiment's grid; use seeds" in capsys.readouterr().err
