"""lhl compare (lhl.report.compare): identity from config.yaml, sections, groups, Δ and MR cells,
notes on undefined values and missing seeds, and one-line errors naming the path.

Every expected cell is worked out by hand in the comments (Δ: eq. 11, in %; σ = +1 for ↑ metrics)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from lhl.errors import ReportError
from lhl.report.compare import comparison_table, load_runs

# The shape of the config.yaml lhl run writes (smoke preset).
CONFIG = {
    "benchmark": "synthetic-nyu", "tasks": None, "seed": 0, "device": "cpu", "plugins": [],
    "method": {"name": "vanilla"},
    "model": {"encoder": "tiny", "weights": None, "head_rates": [1, 2, 3], "head_channels": 16,
              "head_dropout": 0.5},
    "data": {"root": None, "resolution": [32, 32], "train_size": 24, "test_size": 8, "chunking": "shuffle",
             "num_workers": 0, "augment": False, "normalize": "none", "taskonomy_split": "paper",
             "taskonomy_depth": "metres", "taskonomy_classes": "all"},
    "train": {"epochs": 1, "batch_size": 4, "eval_batch_size": None, "lr": 0.001, "weight_decay": 1e-05,
              "warmup": 0.5, "amp": "off", "keep_checkpoints": None, "log_grad_norms": True},
}
HAD = {"name": "had", "alpha": 3.0, "use_db": True, "use_sg": True, "eps": 1e-08}


def write_run(run_dir: Path, final: dict, *, method: dict | str = "vanilla", seed: int = 0,
              benchmark: str = "synthetic-nyu", order: list[str] | None = None, config_tasks="null",
              set_keys: dict | None = None, directions: dict | None = None) -> Path:
    """A finished run: config.yaml via yaml.safe_dump, performance.json whose last phase is ``final``."""
    order = order or list(final)
    config = copy.deepcopy(CONFIG)
    config.update(benchmark=benchmark, seed=seed, tasks=None if config_tasks == "null" else order,
                  method={"name": method} if isinstance(method, str) else dict(method))
    for dotted, value in (set_keys or {}).items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    phases = [{"phase": i, "task": task, "metrics": {t: {m: 99.0 for m in final[t]} for t in order[:i]}}
              for i, task in enumerate(order[:-1], start=1)]
    phases.append({"phase": len(order), "task": order[-1], "metrics": {t: final[t] for t in order}})
    performance = {"benchmark": benchmark, "method": config["method"]["name"], "tasks": order, "phases": phases}
    if directions is not None:
        performance["directions"] = directions
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / "performance.json").write_text(json.dumps(performance))
    return run_dir


def seg_depth(miou: float, abs_err: float) -> dict:
    return {"segmentation": {"miou": miou}, "depth": {"abs_err": abs_err}}


def compare(*dirs: Path, baseline: str = "vanilla") -> str:
    return comparison_table(load_runs(list(dirs)), baseline)


HEADER = "| method | seeds | segmentation/miou ↑ | depth/abs_err ↓ | Δ vs vanilla % | MR |"


def test_delta_per_seed_then_mean_std_any_directory_names(tmp_path):
    # seed 0: had seg (30 - 20)/20 = +50, depth 0                  -> Δ = 25
    # seed 1: had seg 0, depth -(0.25 - 1)/1 = +75                 -> Δ = 37.5
    # mean 31.25, sample std |37.5 - 25|/√2 = 8.8388
    # MR per seed: the winning task ranks had 1, vanilla 2; the tied task ranks both 1
    #   -> had (1 + 1)/2 = 1, vanilla (2 + 1)/2 = 1.5, on both seeds
    runs = [
        write_run(tmp_path / "a", seg_depth(20.0, 2.0)),
        write_run(tmp_path / "b" / "deeper", seg_depth(40.0, 1.0), seed=1),
        write_run(tmp_path / "had run 0", seg_depth(30.0, 2.0), method=HAD),
        write_run(tmp_path / "20240101", seg_depth(40.0, 0.25), method=HAD, seed=1),
    ]
    assert compare(*runs) == "\n".join([
        "## synthetic-nyu: segmentation → depth",
        "",
        HEADER,
        "|---|---|---|---|---|---|",
        "| vanilla | 0,1 | 30 | 1.5 | 0.00 ± 0.00 | 1.50 |",
        "| had | 0,1 | 35 | 1.125 | 31.25 ± 8.84 | 1.00 |",
    ])


def test_zero_baseline_metric_is_na_with_note_and_left_out(tmp_path):
    # vanilla normal/within_11.25 = 0: left out; edge_occlusion/loss = 0: the whole task undefined
    # had: seg (30 - 20)/20 = +50 ; normal mean -(27 - 30)/30 = +10 (within_11.25 n/a) -> 10
    #      edge_occlusion n/a -> Δ = (50 + 10)/2 = 30
    # MR over segmentation and normal (edge_occlusion left out): had 1, 1 -> 1 ; vanilla 2, 2 -> 2
    base = {"segmentation": {"miou": 20.0}, "normal": {"mean": 30.0, "within_11.25": 0.0},
            "edge_occlusion": {"loss": 0.0}}
    had = {"segmentation": {"miou": 30.0}, "normal": {"mean": 27.0, "within_11.25": 5.0},
           "edge_occlusion": {"loss": 0.1}}
    text = compare(write_run(tmp_path / "v", base), write_run(tmp_path / "h", had, method=HAD))
    assert text == "\n".join([
        "## synthetic-nyu: segmentation → normal → edge_occlusion",
        "",
        "| method | seeds | segmentation/miou ↑ | normal/mean ↓ | normal/within_11.25 ↑ † | edge_occlusion/loss ↓ † "
        "| Δ vs vanilla % | MR |",
        "|---|---|---|---|---|---|---|---|",
        "| vanilla | 0 | 20 | 30 | 0 | 0 | 0.00 | 2.00 |",
        "| had | 0 | 30 | 27 | 5 | 0.1 | 30.00 | 1.00 |",
        "",
        "- † n/a: the relative change over a zero baseline value is undefined — vanilla has 0 in "
        "normal/within_11.25, edge_occlusion/loss (seed 0). These metrics are left out of Δ and MR (a "
        "task's Δ is the mean over its other metrics).",
        "- MR for seed 0 ranks the tasks with a defined Δ in every row; it leaves out edge_occlusion.",
        "- edge_occlusion has no defined metric (seed 0): its Δ is n/a, left out of the average over tasks.",
    ])


def test_nothing_defined_gives_na_cells(tmp_path):
    text = compare(write_run(tmp_path / "v", {"depth": {"abs_err": 0.0}}),
                   write_run(tmp_path / "h", {"depth": {"abs_err": 1.0}}, method=HAD))
    assert "| vanilla | 0 | 0 | n/a | n/a |" in text and "| had | 0 | 1 | n/a | n/a |" in text
    assert "- Δ for had, seed 0: n/a (no task has a defined relative change); left out of its mean." in text


def test_missing_baseline_seed_uses_matched_seeds_and_says_so(tmp_path):
    # had seed 0: seg +50, depth 0 -> 25 ; seed 1 has no vanilla run: left out of Δ and of MR
    # MR seed 0: seg had 1, vanilla 2 ; depth tied 1, 1 -> had 1, vanilla 1.5
    text = compare(write_run(tmp_path / "v0", seg_depth(20.0, 2.0)),
                   write_run(tmp_path / "h0", seg_depth(30.0, 2.0), method=HAD),
                   write_run(tmp_path / "h1", seg_depth(10.0, 9.0), method=HAD, seed=1))
    assert text.splitlines()[4:] == [
        "| vanilla | 0 | 20 | 2 | 0.00 | 1.50 |",
        "| had | 0,1 | 20 | 5.5 | 25.00 | 1.00 |",
        "",
        "- Δ for had over seed 0 only: vanilla has no seed-1 run.",
        "- MR over seed 0 only (the seeds every row has).",
    ]


def test_two_orders_two_sections_each_with_its_baseline(tmp_path):
    # order seg → depth: had Δ = ((30 - 20)/20 + 0)/2 = 25 against the vanilla of that order
    # order depth → seg: had Δ = (-(1 - 2)/2 + 0)/2 = 25 against the vanilla of that order
    # synthetic-cityscapes, depth → seg: lwf alone, no baseline there
    runs = [
        write_run(tmp_path / "v-sd", seg_depth(20.0, 2.0)),
        write_run(tmp_path / "h-sd", seg_depth(30.0, 2.0), method=HAD),
        write_run(tmp_path / "v-ds", seg_depth(20.0, 2.0), order=["depth", "segmentation"]),
        write_run(tmp_path / "h-ds", seg_depth(20.0, 1.0), method=HAD, order=["depth", "segmentation"]),
        write_run(tmp_path / "lwf-other", seg_depth(20.0, 1.0), method="lwf",
                  order=["depth", "segmentation"], benchmark="synthetic-cityscapes"),
    ]
    text = compare(*runs)
    sections = text.split("\n\n## ")
    assert len(sections) == 3
    assert sections[0].splitlines()[0] == "## synthetic-nyu: segmentation → depth"
    assert "| had | 0 | 30 | 2 | 25.00 | 1.00 |" in sections[0]
    assert sections[1].splitlines()[0] == "synthetic-nyu: depth → segmentation"
    assert sections[1].splitlines()[2] == "| method | seeds | depth/abs_err ↓ | segmentation/miou ↑ | Δ vs vanilla % | MR |"
    assert "| had | 0 | 1 | 20 | 25.00 | 1.00 |" in sections[1]
    # a section without a baseline: n/a with a note
    assert sections[2].splitlines()[0] == "synthetic-cityscapes: depth → segmentation"
    assert "| lwf | 0 | 1 | 20 | n/a | n/a |" in sections[2]
    assert "- Δ and MR: n/a, no vanilla run among the synthetic-cityscapes: depth → segmentation runs." in sections[2]


def test_two_benchmarks_are_never_pooled(tmp_path):
    # same method, seed and order on two benchmarks: two sections, not duplicates
    text = compare(write_run(tmp_path / "nyu", seg_depth(20.0, 2.0)),
                   write_run(tmp_path / "city", seg_depth(40.0, 1.0), benchmark="synthetic-cityscapes"))
    assert "## synthetic-nyu: segmentation → depth" in text
    assert "## synthetic-cityscapes: segmentation → depth" in text
    assert "| vanilla | 0 | 20 | 2 | 0.00 | 1.00 |" in text and "| vanilla | 0 | 40 | 1 | 0.00 | 1.00 |" in text


def test_same_method_different_settings_are_labelled_apart(tmp_path):
    # had (use_sg=false): seg (25 - 20)/20 = +25, depth 0 -> 12.5 ; had: +50, 0 -> 25
    # MR: seg had 1, no-sg 2, vanilla 3 ; depth all tied 1 -> had 1, no-sg 1.5, vanilla 2
    no_sg = dict(HAD, use_sg=False)
    text = compare(write_run(tmp_path / "1", seg_depth(20.0, 2.0)),
                   write_run(tmp_path / "2", seg_depth(30.0, 2.0), method=HAD),
                   write_run(tmp_path / "3", seg_depth(25.0, 2.0), method=no_sg))
    assert text.splitlines()[4:] == [
        "| vanilla | 0 | 20 | 2 | 0.00 | 2.00 |",
        "| had (use_sg=true) | 0 | 30 | 2 | 25.00 | 1.00 |",
        "| had (use_sg=false) | 0 | 25 | 2 | 12.50 | 1.50 |",
    ]
    # a row label is a baseline too; the method name alone is ambiguous here
    text = comparison_table(load_runs([tmp_path / "2", tmp_path / "3"]), "had (use_sg=true)")
    # seg (25 - 30)/30 = -16.67, depth 0 -> -8.33 ; MR seg 2, depth 1 -> 1.5
    assert "| had (use_sg=false) | 0 | 25 | 2 | -8.33 | 1.50 |" in text
    with pytest.raises(ReportError, match=r"baseline 'had' is ambiguous .*'had \(use_sg=true\)', 'had \(use_sg=false\)'"):
        comparison_table(load_runs([tmp_path / "2", tmp_path / "3"]), "had")


def test_non_method_keys_in_labels_and_tolerated_keys(tmp_path):
    # had's train.epochs differs -> two had rows labelled by it; device, data.num_workers,
    # train.keep_checkpoints, data.root and logging do not split a row
    had5 = {"train.epochs": 5}
    tolerated = {"device": "cuda", "data.num_workers": 4, "train.keep_checkpoints": 1, "data.root": "/data",
                 "logging": {"wandb": True}}
    text = compare(
        write_run(tmp_path / "v", seg_depth(20.0, 2.0)),
        write_run(tmp_path / "v1", seg_depth(20.0, 2.0), seed=1, set_keys=tolerated),
        write_run(tmp_path / "h", seg_depth(30.0, 2.0), method=HAD),
        write_run(tmp_path / "h1", seg_depth(20.0, 1.0), method=HAD, seed=1, set_keys=tolerated),
        write_run(tmp_path / "h5", seg_depth(40.0, 2.0), method=HAD, set_keys=had5),
    )
    # had: seed 0 (+50 + 0)/2 = 25, seed 1 (0 + 50)/2 = 25 ; had (epochs 5): (+100 + 0)/2 = 50
    # MR seed 0 only (the seed every row has): seg h5 1, h 2, v 3 ; depth tie -> h5 1, h 1.5, v 2
    assert text.splitlines()[4:] == [
        "| vanilla | 0,1 | 20 | 2 | 0.00 ± 0.00 | 2.00 |",
        "| had (train.epochs=1) | 0,1 | 25 | 1.5 | 25.00 ± 0.00 | 1.50 |",
        "| had (train.epochs=5) | 0 | 40 | 2 | 50.00 | 1.00 |",
        "",
        "- MR over seed 0 only (the seeds every row has).",
    ]
    # two baseline rows: the method name alone is ambiguous
    write_run(tmp_path / "v5", seg_depth(20.0, 2.0), set_keys=had5)
    with pytest.raises(ReportError, match=r"baseline 'vanilla' is ambiguous"):
        compare(tmp_path / "v", tmp_path / "v5")


def test_directory_name_labels(tmp_path):
    # <label>-s<seed> names lend their label when the runs agree; tasks null = performance.json's
    runs = [write_run(tmp_path / "vanilla-s0", seg_depth(20.0, 2.0)),
            write_run(tmp_path / "had-no-sg-s0", seg_depth(25.0, 2.0), method=dict(HAD, use_sg=False)),
            write_run(tmp_path / "x" / "had-no-sg-s1", seg_depth(25.0, 2.0), method=dict(HAD, use_sg=False),
                      seed=1, config_tasks="explicit"),
            write_run(tmp_path / "vanilla-s1", seg_depth(25.0, 2.0), seed=1)]
    lines = compare(*runs).splitlines()
    assert lines[4].startswith("| vanilla | 0,1 |") and lines[5].startswith("| had-no-sg | 0,1 | 25 |")
    assert "Δ vs vanilla %" in lines[2]
    # the baseline may be a name label
    assert "Δ vs had-no-sg %" in comparison_table(load_runs(runs), "had-no-sg")


def test_refuses_to_pool_differing_configs_under_one_name(tmp_path):
    runs = [write_run(tmp_path / "had-s0", seg_depth(30.0, 2.0), method=HAD),
            write_run(tmp_path / "other" / "had-s1", seg_depth(30.0, 2.0), method=dict(HAD, use_sg=False, eps=1e-4),
                      seed=1, set_keys={"train.lr": 0.01}),
            write_run(tmp_path / "vanilla-s0", seg_depth(20.0, 2.0))]
    with pytest.raises(ReportError) as info:
        compare(*runs)
    message = str(info.value)
    assert "\n" not in message
    assert "had-s0" in message and "had-s1" in message and "'had'" in message
    assert "differ beyond the seed: method.eps (1e-08 vs 0.0001); method.use_sg (true vs false); train.lr (0.001 vs 0.01)" in message


def test_no_baseline_anywhere(tmp_path):
    runs = [write_run(tmp_path / "h", seg_depth(30.0, 2.0), method=HAD),
            write_run(tmp_path / "l", seg_depth(30.0, 2.0), method="lwf")]
    with pytest.raises(ReportError, match=r"no baseline run 'vanilla' .*method\(s\) had, lwf"):
        compare(*runs)
    with pytest.raises(ReportError, match="no baseline run 'ewc'"):
        compare(*runs, baseline="ewc")
    assert "Δ vs lwf %" in compare(*runs, baseline="lwf")


def test_directions_from_performance_json(tmp_path):
    final = {"t": {"score": 2.0}}
    runs = [write_run(tmp_path / "v", final, directions={"t": {"score": True}}),
            write_run(tmp_path / "h", {"t": {"score": 3.0}}, method=HAD, directions={"t": {"score": True}})]
    text = compare(*runs)
    assert "| method | seeds | t/score ↑ | Δ vs vanilla % | MR |" in text
    assert "| had | 0 | 3 | 50.00 | 1.00 |" in text  # (3 - 2)/2, higher is better
    # no direction anywhere -> the path is named
    write_run(tmp_path / "u", final)
    with pytest.raises(ReportError, match=r"'.*u/performance.json': unknown direction of metric 'score'"):
        load_runs([tmp_path / "u"])


# ------------------------------------------------------------------------------- bad inputs
def _truncate(path: Path) -> None:
    text = (path / "performance.json").read_text()
    (path / "performance.json").write_text(text[: len(text) // 2])


def _edit_json(path: Path, edit) -> None:
    data = json.loads((path / "performance.json").read_text())
    (path / "performance.json").write_text(json.dumps(edit(data)))


def _edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load((path / "config.yaml").read_text())
    (path / "config.yaml").write_text(yaml.safe_dump(edit(data)))


BAD = {
    "missing": (lambda p: None, "no such directory"),
    "file": (lambda p: p.write_text("x"), "not a directory"),
    "no-config": (lambda p: (p.mkdir(), (p / "performance.json").write_text("{}")), r"not a run directory \(no config.yaml\)"),
    "no-performance": (lambda p: (write_run(p, seg_depth(1.0, 1.0)), (p / "performance.json").unlink()),
                       "no performance.json"),
    "unfinished": (lambda p: (write_run(p, seg_depth(1.0, 1.0)),
                              _edit_json(p, lambda d: dict(d, phases=d["phases"][:1]))),
                   r"unfinished run: its last phase \(1\) has no metrics of depth"),
    "truncated": (lambda p: (write_run(p, seg_depth(1.0, 1.0)), _truncate(p)), "performance.json': not valid JSON"),
    "json-list": (lambda p: (write_run(p, seg_depth(1.0, 1.0)), _edit_json(p, lambda d: [d])),
                  "performance.json': expected a mapping"),
    "no-phases": (lambda p: (write_run(p, seg_depth(1.0, 1.0)),
                             _edit_json(p, lambda d: {k: v for k, v in d.items() if k != "phases"})),
                  "performance.json': missing key 'phases'"),
    "bad-metric": (lambda p: (write_run(p, seg_depth(1.0, 1.0)),
                              _edit_json(p, lambda d: dict(d, phases=[{"phase": 1, "metrics": {"depth": 3}}]))),
                   r"performance.json': phases\[0\] must be a mapping"),
    "bad-yaml": (lambda p: (write_run(p, seg_depth(1.0, 1.0)), (p / "config.yaml").write_text("a: [1, 2\nb: :")),
                 "config.yaml': not valid YAML"),
    "yaml-list": (lambda p: (write_run(p, seg_depth(1.0, 1.0)), (p / "config.yaml").write_text("- 1\n")),
                  "config.yaml': expected a mapping"),
    "no-seed": (lambda p: (write_run(p, seg_depth(1.0, 1.0)),
                           _edit_yaml(p, lambda d: {k: v for k, v in d.items() if k != "seed"})),
                "config.yaml': missing key\\(s\\) 'seed'"),
    "tasks-differ": (lambda p: (write_run(p, seg_depth(1.0, 1.0)),
                                _edit_yaml(p, lambda d: dict(d, tasks=["depth", "segmentation"]))),
                     r"config.yaml's tasks \['depth', 'segmentation'\] differ from performance.json's"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_report_error_naming_the_path(tmp_path, case):
    make, pattern = BAD[case]
    path = tmp_path / f"run-{case}"
    make(path)
    with pytest.raises(ReportError, match=pattern) as info:
        load_runs([path])
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_duplicates_and_same_directory_twice(tmp_path):
    a = write_run(tmp_path / "a", seg_depth(1.0, 1.0))
    b = write_run(tmp_path / "b", seg_depth(2.0, 1.0), set_keys={"device": "cuda"})  # same run, other device
    with pytest.raises(ReportError, match=r"'.*/a' and '.*/b': duplicate runs \(identical configuration and seed 0\)"):
        compare(a, b)
    with pytest.raises(ReportError, match="given twice"):
        compare(a, tmp_path / "." / "a")
    with pytest.raises(ReportError, match="no run to compare"):
        comparison_table([])


def test_non_finite_result_value_is_left_out_with_note(tmp_path):
    # had depth/abs_err is NaN: only segmentation counts -> Δ = (30 - 20)/20 = 50 ; MR over
    # segmentation only (depth undefined for had): had 1, vanilla 2
    text = compare(write_run(tmp_path / "v", seg_depth(20.0, 2.0)),
                   write_run(tmp_path / "h", seg_depth(30.0, float("nan")), method=HAD))
    assert text.splitlines()[4:] == [
        "| vanilla | 0 | 20 | 2 | 0.00 | 2.00 |",
        "| had | 0 | 30 | nan | 50.00 | 1.00 |",
        "",
        "- MR for seed 0 ranks the tasks with a defined Δ in every row; it leaves out depth.",
        "- had seed 0: depth/abs_err is nan: its relative change is undefined (n/a), left out of Δ and MR.",
    ]


def test_runs_disagreeing_on_a_direction(tmp_path):
    runs = [write_run(tmp_path / "v", {"t": {"score": 2.0}}, directions={"t": {"score": True}}),
            write_run(tmp_path / "h", {"t": {"score": 3.0}}, method=HAD, directions={"t": {"score": False}})]
    with pytest.raises(ReportError, match=r"'.*/v' and '.*/h' disagree on the direction of t/score"):
        compare(*runs)
