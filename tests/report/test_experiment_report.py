"""``lhl report`` (lhl.report.experiment) on experiment directories the tests write with known numbers:
the paper-style table in Markdown and CSV — final metrics mean ± std over seeds, Δ per seed then
aggregated (eq. 11), MR, step time — per order and averaged over orders, with a zero baseline metric,
a missing seed and NaN; and, on real smoke runs, the cost columns and the qualitative grid.

Every expected number is worked out by hand in the comments (Δ in %, σ = +1 for ↑ metrics)."""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from lhl.cli import main
from lhl.config import load_config
from lhl.engine.trainer import Trainer
from lhl.errors import ReportError
from lhl.report.compare import comparison_table, load_runs
from lhl.report.experiment import collect_experiment, find_run_dirs, paper_table, write_report

# The shape of the config.yaml lhl run writes (smoke preset).
CONFIG = {
    "benchmark": "synthetic-nyu", "tasks": None, "seed": 0, "device": "cpu", "plugins": [],
    "method": {"name": "vanilla"},
    "model": {"encoder": "tiny", "weights": None, "head_rates": [1], "head_channels": 8, "head_dropout": 0.5},
    "data": {"root": None, "resolution": [16, 16], "train_size": 24, "test_size": 8, "chunking": "shuffle",
             "num_workers": 0, "augment": False, "normalize": "none", "taskonomy_split": "paper",
             "taskonomy_depth": "metres", "taskonomy_classes": "all"},
    "train": {"epochs": 1, "batch_size": 4, "eval_batch_size": None, "lr": 0.001, "weight_decay": 1e-05,
              "warmup": 0.5, "amp": "off", "keep_checkpoints": None, "log_grad_norms": True},
}
METHODS = {"vanilla": {"name": "vanilla"}, "joint": {"name": "joint"}, "dis": {"name": "dis", "alpha": 3.0},
           "had": {"name": "had", "alpha": 3.0, "use_db": True, "use_sg": True, "eps": 1e-08}}
DIRECTIONS = {"segmentation": {"miou": True, "pixel_acc": True}, "depth": {"abs_err": False}}


def result(miou: float, pixel_acc: float, abs_err: float) -> dict:
    return {"segmentation": {"miou": miou, "pixel_acc": pixel_acc}, "depth": {"abs_err": abs_err}}


def write_run(run_dir: Path, final: dict, method: str, seed: int, order: list[str],
              seconds_per_step: float = 1.0, weights: str | None = None) -> Path:
    """A finished run directory: config.yaml (yaml.safe_dump), performance.json whose last phase is
    ``final`` (earlier phases: the tasks seen so far, every value 99), and events.jsonl with 10 steps
    a phase taking ``seconds_per_step`` each (joint: one phase)."""
    config = copy.deepcopy(CONFIG)
    config.update(seed=seed, tasks=order, method=dict(METHODS[method]))
    config["model"]["weights"] = weights
    if method == "joint":
        phases = [{"phase": 1, "task": "joint", "metrics": {t: final[t] for t in order}}]
    else:
        phases = [{"phase": i, "task": task, "metrics": {t: {m: 99.0 for m in final[t]} for t in order[:i]}}
                  for i, task in enumerate(order[:-1], start=1)]
        phases.append({"phase": len(order), "task": order[-1], "metrics": {t: final[t] for t in order}})
    performance = {"benchmark": "synthetic-nyu", "method": method, "tasks": order,
                   "directions": {t: DIRECTIONS[t] for t in order}, "phases": phases}
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / "performance.json").write_text(json.dumps(performance))
    events, clock = [{"time": 1000.0, "attempt": 1, "phase": None, "epoch": None, "event": "run_start",
                      "completed_phases": 0}], 1000.0
    for phase in phases:
        steps = 10 * (len(order) if method == "joint" else 1)
        events.append({"time": clock, "attempt": 1, "phase": phase["phase"], "epoch": None, "event": "phase_start"})
        for epoch in (1, 2):
            clock += seconds_per_step * steps / 2
            events.append({"time": clock, "attempt": 1, "phase": phase["phase"], "epoch": epoch, "event": "epoch_end",
                           "steps": steps // 2, "losses": {"new": 1.0 / (phase["phase"] + epoch)}, "lr": 0.001})
        clock += 5.0  # evaluation and checkpoint: not training time
        events.append({"time": clock, "attempt": 1, "phase": phase["phase"], "epoch": None, "event": "evaluation",
                       "metrics": phase["metrics"]})
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run_dir


SEG_DEPTH, DEPTH_SEG = ["segmentation", "depth"], ["depth", "segmentation"]


@pytest.fixture
def experiment(tmp_path) -> Path:
    return make_experiment(tmp_path)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of :func:`make_experiment`'s experiment (written once; tests only read it)."""
    return write_report(make_experiment(tmp_path_factory.mktemp("fabricated")), samples=0)


def make_experiment(tmp_path: Path) -> Path:
    """Two orders; a zero baseline metric (vanilla seed 0 pixel_acc); dis without seed 1; in the
    depth → segmentation order, vanilla (the baseline) without seed 1; an unfinished run."""
    exp = tmp_path / "exp"
    (exp / "experiment.yaml").parent.mkdir(parents=True)
    (exp / "experiment.yaml").write_text("name: test\n")
    a, b = exp / "runs" / "segmentation-depth", exp / "runs" / "depth-segmentation"
    write_run(a / "vanilla-s0", result(20, 0, 2.0), "vanilla", 0, SEG_DEPTH)
    write_run(a / "vanilla-s1", result(40, 50, 1.0), "vanilla", 1, SEG_DEPTH)
    write_run(a / "had-s0", result(30, 10, 2.0), "had", 0, SEG_DEPTH, seconds_per_step=1.5)
    write_run(a / "had-s1", result(40, 60, 0.5), "had", 1, SEG_DEPTH, seconds_per_step=2.0)
    write_run(a / "joint-s0", result(50, 80, 0.5), "joint", 0, SEG_DEPTH, seconds_per_step=1.5)
    write_run(a / "joint-s1", result(60, 75, 0.5), "joint", 1, SEG_DEPTH, seconds_per_step=1.5)
    write_run(a / "dis-s0", result(25, 5, 1.5), "dis", 0, SEG_DEPTH, seconds_per_step=1.2)
    write_run(b / "vanilla-s0", result(20, 40, 1.0), "vanilla", 0, DEPTH_SEG)
    write_run(b / "had-s0", result(22, 44, 0.8), "had", 0, DEPTH_SEG, seconds_per_step=1.5)
    write_run(b / "had-s1", result(30, 30, 0.5), "had", 1, DEPTH_SEG)
    write_run(b / "dis-s0", result(20, 40, 1.2), "dis", 0, DEPTH_SEG)
    write_run(b / "joint-s0", result(50, 80, 0.5), "joint", 0, DEPTH_SEG)
    unfinished = write_run(b / "dis-s1", result(1, 1, 1.0), "dis", 1, DEPTH_SEG)
    performance = json.loads((unfinished / "performance.json").read_text())
    performance["phases"] = performance["phases"][:1]
    (unfinished / "performance.json").write_text(json.dumps(performance))
    return exp


def _section(markdown: str, heading: str) -> list[str]:
    """The table rows and notes under ``### heading`` (up to the next heading)."""
    text = markdown.split(f"### {heading}\n", 1)[1]
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            break
        if line.startswith(("|", "- ")):
            lines.append(line)
    return lines


def test_per_order_table_reproduces_metrics_delta_mr_and_step_time(report):
    assert report.directory == report.experiment.root / "report"
    text = report.markdown.read_text()
    assert text.startswith("# Experiment report: test\n")  # experiment.yaml's name
    lines = _section(text, "synthetic-nyu: segmentation → depth")
    # metrics, mean ± sample std over seeds:
    #   vanilla miou (20, 40) 30.00 ± 14.14 ; pixel_acc (0, 50) 25.00 ± 35.36 ; abs_err (2, 1) 1.500 ± 0.707
    #   had     (30, 40) 35.00 ± 7.07 ; (10, 60) 35.00 ± 35.36 ; (2, 0.5) 1.250 ± 1.061
    #   joint   (50, 60) 55.00 ± 7.07 ; (80, 75) 77.50 ± 3.54 ; (0.5, 0.5) 0.5000 ± 0.0000 ; dis seed 0 only
    # Δ per seed (pixel_acc n/a in seed 0: vanilla has 0 there):
    #   had   s0: seg (30-20)/20 = 50, depth 0 -> 25 ; s1: seg (0 + (60-50)/50=20)/2 = 10, depth +50 -> 30
    #         -> 27.50 ± 3.54
    #   joint s0: seg 150, depth 75 -> 112.5 ; s1: seg (50 + 50)/2, depth 50 -> 50 -> 81.25 ± 44.19
    #   dis   s0: seg 25, depth 25 -> 25
    # MR over seed 0 only (dis has no seed 1): seg joint 1, had 2, dis 3, vanilla 4 ;
    #   depth joint 1, dis 2, had = vanilla 3 -> joint 1, had 2.5, dis 2.5, vanilla 3.5
    # step time vs vanilla (1 s/step): had 1.5, 2.0 -> 1.75 ± 0.35 ; joint 1.5 ; dis 1.2
    # time of a run (20 steps): vanilla 20 s ; had 30, 40 -> 35 s ; joint 30 s ; dis 24 s
    # bold: best among the rows but joint (had: miou, pixel_acc, abs_err, Δ; had and dis tie on MR)
    assert lines == [
        "| method | seeds | segmentation/miou ↑ | segmentation/pixel_acc ↑ † | depth/abs_err ↓ | Δ vs vanilla % | MR "
        "| params | stored | step vs vanilla | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "| joint | 0,1 | 55.00 ± 7.07 | 77.50 ± 3.54 | 0.5000 ± 0.0000 | 81.25 ± 44.19 | 1.00 | n/a | n/a | 1.50 ± 0.00× "
        "| 30 s |",
        "| vanilla | 0,1 | 30.00 ± 14.14 | 25.00 ± 35.36 | 1.500 ± 0.707 | 0.00 ± 0.00 | 3.50 | n/a | n/a | 1.00 ± 0.00× "
        "| 20 s |",
        "| dis | 0 | 25.00 | 5.000 | 1.500 | 25.00 | **2.50** | n/a | n/a | 1.20× | 24 s |",
        "| had | 0,1 | **35.00 ± 7.07** | **35.00 ± 35.36** | **1.250 ± 1.061** | **27.50 ± 3.54** | **2.50** | n/a | n/a "
        "| 1.75 ± 0.35× | 35 s |",
        "- † n/a: the relative change over a zero baseline value is undefined — vanilla has 0 in "
        "segmentation/pixel_acc (seed 0). These metrics are left out of Δ and MR (a task's Δ is the mean over its "
        "other metrics).",
        "- MR over seed 0 only (the seeds every row has).",
        "- dis has no seed-1 run: its cells are over the other seeds.",
        "- no checkpoint of the last phase (params and stored n/a): every run.",
        "- joint learns every task in one phase: shown after the last phase only.",
    ]
    assert "Left out (1 unfinished): " in text and "dis-s1` (unfinished: 1 of 2 phases evaluated)" in text
    assert "Encoder: tiny, random initialisation in every run — encoders were not pretrained (model.weights null)" \
        in text


def test_missing_baseline_seed_and_mean_over_orders(report):
    text = report.markdown.read_text()
    lines = _section(text, "synthetic-nyu: depth → segmentation")
    # vanilla has seed 0 only: had s0: depth -(0.8-1)/1 = 20, seg ((22-20)/20 + (44-40)/40)/2 = 10 -> 15;
    #   had s1 left out of Δ and of the step time. dis: depth -20, seg 0 -> -10. joint: 50, 125 -> 87.5
    # MR seed 0: depth joint 1, had 2, vanilla 3, dis 4 ; seg joint 1, had 2, vanilla = dis 3
    #   -> joint 1, had 2, vanilla 3, dis 3.5
    assert lines[2:6] == [
        "| joint | 0 | 0.5000 | 50.00 | 80.00 | 87.50 | 1.00 | n/a | n/a | 1.00× | 20 s |",
        "| vanilla | 0 | 1.000 | 20.00 | **40.00** | 0.00 | 3.00 | n/a | n/a | 1.00× | 20 s |",
        "| dis | 0 | 1.200 | 20.00 | **40.00** | -10.00 | 3.50 | n/a | n/a | 1.00× | 20 s |",
        "| had | 0,1 | **0.6500 ± 0.2121** | **26.00 ± 5.66** | 37.00 ± 9.90 | **15.00** | **2.00** | n/a | n/a | 1.50× "
        "| 25 s |",
    ]
    # vanilla's pixel_acc (40) ties dis's: both best; had's mean (44, 30) = 37 is lower
    assert lines[6:] == [
        "- Δ and step time for had over seed 0 only: vanilla has no seed-1 run.",
        "- MR over seed 0 only (the seeds every row has).",
        "- joint, vanilla, dis have no seed-1 run: their cells are over the other seeds.",
        "- no checkpoint of the last phase (params and stored n/a): every run.",
        "- joint learns every task in one phase: shown after the last phase only.",
    ]
    # mean over the two orders of the per-order values (columns in the first order found, depth → seg):
    #   had Δ (27.5, 15) -> 21.25 ± 8.84 ; MR (2.5, 2) -> 2.25 ± 0.35 ; abs_err (1.25, 0.65) -> 0.9500 ± 0.4243
    #   miou (35, 26) -> 30.50 ± 6.36 ; pixel_acc (35, 37) -> 36.00 ± 1.41 ; step (1.75, 1.5) -> 1.62 ± 0.18
    #   vanilla Δ (0, 0) ; MR (3.5, 3) -> 3.25 ± 0.35 ; dis Δ (25, -10) -> 7.50 ± 24.75 ; MR (2.5, 3.5) -> 3.00 ± 0.71
    #   joint Δ (81.25, 87.5) -> 84.38 ± 4.42
    overall = _section(text, "synthetic-nyu: mean over 2 task orders")
    assert overall[0] == ("| method | seeds | depth/abs_err ↓ | segmentation/miou ↑ | segmentation/pixel_acc ↑ † "
                          "| Δ vs vanilla % | MR | params | stored | step vs vanilla | time |")
    assert overall[2:6] == [
        "| joint | 0,1 | 0.5000 ± 0.0000 | 52.50 ± 3.54 | 78.75 ± 1.77 | 84.38 ± 4.42 | 1.00 ± 0.00 | n/a | n/a "
        "| 1.25 ± 0.35× | 25 s |",
        "| vanilla | 0,1 | 1.250 ± 0.354 | 25.00 ± 7.07 | 32.50 ± 10.61 | 0.00 ± 0.00 | 3.25 ± 0.35 | n/a | n/a "
        "| 1.00 ± 0.00× | 20 s |",
        "| dis | 0 | 1.350 ± 0.212 | 22.50 ± 3.54 | 22.50 ± 24.75 | 7.50 ± 24.75 | 3.00 ± 0.71 | n/a | n/a "
        "| 1.10 ± 0.14× | 22 s |",
        "| had | 0,1 | **0.9500 ± 0.4243** | **30.50 ± 6.36** | **36.00 ± 1.41** | **21.25 ± 8.84** | **2.25 ± 0.35** "
        "| n/a | n/a | 1.62 ± 0.18× | 30 s |",
    ]
    assert any(line.startswith("- Each cell is the mean over the task orders") for line in overall)
    # the orders appear in this order: the mean over orders, then each order
    assert text.index("mean over 2 task orders") < text.index("### synthetic-nyu: depth → segmentation")


def test_csv_numbers_unformatted_per_order_and_all_orders(report):
    rows = list(csv.DictReader(report.csv.open()))
    by = {(r["order"], r["method"]): r for r in rows}
    assert sorted(by) == sorted((o, m) for o in ("segmentation>depth", "depth>segmentation", "all orders")
                                for m in ("joint", "vanilla", "had", "dis"))
    had = by[("segmentation>depth", "had")]
    assert float(had["delta_pct"]) == pytest.approx(27.5) and float(had["delta_pct_std"]) == pytest.approx(
        math.sqrt(12.5))
    assert had["delta_n"] == "2" and had["seeds"] == "0;1" and had["n"] == "2"
    assert float(had["segmentation/miou"]) == 35.0 and float(had["segmentation/miou std"]) == pytest.approx(
        math.sqrt(50))
    assert float(had["mr"]) == 2.5 and had["mr_std"] == ""
    assert float(had["step_rel"]) == pytest.approx(1.75) and float(had["step_seconds"]) == pytest.approx(1.75)
    assert had["params"] == "" and had["stored_bytes"] == "" and had["encoder"] == "tiny, random initialisation"
    assert by[("segmentation>depth", "dis")]["delta_pct_std"] == ""
    vanilla = by[("segmentation>depth", "vanilla")]
    assert float(vanilla["segmentation/pixel_acc"]) == 25.0 and float(vanilla["delta_pct"]) == 0.0
    assert by[("depth>segmentation", "had")]["delta_n"] == "1"
    overall = by[("all orders", "had")]
    assert float(overall["delta_pct"]) == pytest.approx(21.25)
    assert float(overall["delta_pct_std"]) == pytest.approx(abs(27.5 - 15) / math.sqrt(2))
    assert float(overall["mr"]) == pytest.approx(2.25) and overall["n"] == "2"
    assert float(overall["depth/abs_err"]) == pytest.approx(0.95)
    assert float(by[("all orders", "joint")]["delta_pct"]) == pytest.approx(84.375)


def test_per_order_delta_and_mr_agree_with_lhl_compare(report):
    # the same rows, Δ and MR as `lhl compare` on the runs of one order
    runs = sorted(p for p in find_run_dirs(report.experiment.root) if "segmentation-depth" in str(p))
    compared = comparison_table(load_runs(runs)).splitlines()
    table = report.experiment.sections[1].table
    assert table.order == ("segmentation", "depth")
    for row in table.rows:
        line = next(line for line in compared if line.startswith(f"| {row.label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[-2].split(" ± ")[0] == f"{row.delta.mean:.2f}"
        assert cells[-1] == f"{row.rank.mean:.2f}"


def test_latex_booktabs_best_bold_and_encoder_pretrained(tmp_path):
    exp = tmp_path / "exp"
    write_run(exp / "vanilla-s0", result(20, 40, 1.0), "vanilla", 0, SEG_DEPTH, weights="imagenet")
    write_run(exp / "had-s0", result(30, 40, 1.0), "had", 0, SEG_DEPTH, weights="imagenet")
    write_run(exp / "dis-s0", result(25, 45, 1.0), "dis", 0, SEG_DEPTH, weights="imagenet")
    files = write_report(exp, samples=0, out=tmp_path / "out")
    tex = files.latex.read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\multicolumn{2}{c}{segmentation}" in tex and r"\cmidrule(lr){3-4}" in tex
    # had best miou (30) and Δ (seg (50 + 0)/2 = 25 -> 12.5 vs dis (25 + 12.5)/2 / 2 = 9.375); dis best pixel_acc;
    # abs_err ties everywhere: nothing bold
    assert r"had & 0 & \textbf{30.00} & 40.00 & 1.000 & \textbf{12.50}" in tex
    assert r"dis & 0 & 25.00 & \textbf{45.00} & 1.000 & 9.38" in tex
    assert r"pixel\_acc $\uparrow$" in tex and r"$\Delta$ vs vanilla (\%)" in tex
    text = files.markdown.read_text()
    assert "Encoder: tiny, pretrained (imagenet) in every run — encoders were pretrained." in text
    assert "task orders" not in text  # one order: no table over orders


def test_rows_with_different_encoders_are_named_row_by_row(tmp_path):
    exp = tmp_path / "exp"
    write_run(exp / "vanilla-s0", result(20, 40, 1.0), "vanilla", 0, SEG_DEPTH)
    write_run(exp / "had-s0", result(30, 40, 1.0), "had", 0, SEG_DEPTH, weights="imagenet")
    text = write_report(exp, samples=0, out=tmp_path / "out").markdown.read_text()
    assert ("Encoders differ between rows: vanilla: tiny, random initialisation; had: tiny, pretrained (imagenet)."
            in text)


def test_nan_metric_and_zero_values(tmp_path):
    exp = tmp_path / "exp"
    write_run(exp / "vanilla-s0", result(20, 40, 2.0), "vanilla", 0, SEG_DEPTH)
    write_run(exp / "had-s0", result(30, 0, float("nan")), "had", 0, SEG_DEPTH)
    text = write_report(exp, samples=0).markdown.read_text()
    lines = _section(text, "synthetic-nyu: segmentation → depth")
    # had: seg ((30-20)/20 = 50, (0-40)/40 = -100) -> -25 ; depth NaN left out -> Δ = -25 ;
    # MR over segmentation only: vanilla 0 > had -25 -> vanilla 1, had 2
    assert lines[2:4] == ["| vanilla | 0 | 20.00 | **40.00** | 2.000 | **0.00** | **1.00** | n/a | n/a | 1.00× | 20 s |",
                          "| had | 0 | **30.00** | 0.00 | n/a | -25.00 | 2.00 | n/a | n/a | 1.00× | 20 s |"]
    assert "- MR for seed 0 ranks the tasks with a defined Δ in every row; it leaves out depth." in lines
    assert "- had seed 0: depth/abs_err is nan: its relative change is undefined (n/a), left out of Δ and MR." \
        in lines


def test_baseline_option_and_errors(experiment, tmp_path):
    text = paper_table.markdown(collect_experiment(experiment, baseline="dis"))
    # against dis (seed 0 only): had s0 seg (30-25)/25 = 20, (10-5)/5 = 100 -> 60 ; depth -(2-1.5)/1.5 = -33.33
    #   -> 13.33 (had s1 has no dis run)
    lines = _section(text, "synthetic-nyu: segmentation → depth")
    assert lines[0].endswith("| Δ vs dis % | MR | params | stored | step vs dis | time |")
    assert any(line.startswith("| had | 0,1 |") and "| **13.33** |" in line for line in lines)
    with pytest.raises(ReportError, match="no baseline run 'ewc'.*pass --baseline"):
        write_report(experiment, baseline="ewc", samples=0)
    (tmp_path / "r").mkdir()
    with pytest.raises(ReportError, match="no run directory under it"):
        write_report(tmp_path / "r", samples=0)
    with pytest.raises(ReportError, match="not a directory"):
        write_report(tmp_path / "missing", samples=0)


# ----------------------------------------------------------------------------- real smoke runs
@pytest.fixture(scope="module")
def smoke_experiment(tmp_path_factory) -> Path:
    """vanilla and DER (a replay buffer: stored bytes) on the smoke preset, seed 0, run in-process."""
    exp = tmp_path_factory.mktemp("smoke-exp")
    for method in ("vanilla", "der"):
        out = exp / "runs" / "segmentation-depth-normal" / f"{method}-s0"
        Trainer(load_config(preset="smoke", method=method, overrides=["seed=0"]), out, quiet=True).run()
    return exp


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def test_cost_columns_and_qualitative_grid_from_smoke_runs(smoke_experiment, capsys):
    import lhl

    (smoke_experiment / "report").mkdir(exist_ok=True)
    (smoke_experiment / "report" / "old-order-curves.png").write_bytes(b"stale")  # an earlier report's figure
    (smoke_experiment / "report" / "notes.png").write_bytes(b"kept")  # not a report figure
    assert main(["report", str(smoke_experiment), "--samples", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    report = smoke_experiment / "report"
    rows = {r["method"]: r for r in csv.DictReader((report / "table.csv").open()) if r["order"] != "all orders"}
    for method in ("vanilla", "der"):
        run_dir = smoke_experiment / "runs" / "segmentation-depth-normal" / f"{method}-s0"
        loaded = lhl.load_run(run_dir)
        assert int(rows[method]["params"]) == sum(p.numel() for p in loaded.model.parameters())
        state = torch.load(run_dir / "checkpoints" / "phase-3.pt", weights_only=True)
        assert int(rows[method]["stored_bytes"]) == _tensor_bytes(state["method"])
        assert float(rows[method]["step_seconds"]) > 0
    assert int(rows["vanilla"]["stored_bytes"]) == 0 and int(rows["der"]["stored_bytes"]) > 0
    assert float(rows["vanilla"]["step_rel"]) == 1.0
    assert not (report / "old-order-curves.png").exists() and (report / "notes.png").read_bytes() == b"kept"
    figures = sorted(p.name for p in report.glob("*.png") if p.name != "notes.png")
    slug = "synthetic-nyu-segmentation-depth-normal"
    assert figures == sorted(f"{slug}-{kind}.png" for kind in
                             ("curves", "phase-delta", "heatmap", "forgetting", "losses", "qualitative"))
    from PIL import Image

    with Image.open(report / f"{slug}-qualitative.png") as grid:
        assert grid.width > 400 and grid.height > 400  # 2 images x 3 tasks rows, 4 columns
    text = (report / "report.md").read_text()
    for name in figures:
        assert f"]({name})" in text
    assert "| der | 0 |" in text and "KiB" in text
    assert "test images 0, 7" not in text  # titles live in the PNG; the Markdown references the file


def test_qualitative_grid_skips_rows_without_a_model(smoke_experiment, tmp_path):
    from lhl.report.experiment.qualitative import qualitative_grid

    section = collect_experiment(smoke_experiment).sections[0]
    result = qualitative_grid(section, count=2)
    assert result.png is not None and result.indices == [0, 7] and result.seed == 0
    # a run whose checkpoint is gone: a note, the others still shown
    broken = tmp_path / "exp"
    import shutil

    shutil.copytree(smoke_experiment / "runs", broken / "runs")
    (broken / "runs" / "segmentation-depth-normal" / "der-s0" / "checkpoints" / "phase-3.pt").unlink()
    section = collect_experiment(broken).sections[0]
    result = qualitative_grid(section, count=1)
    assert result.png is not None
    assert len(result.notes) == 1 and result.notes[0].startswith("der: no prediction")
    assert any("der seed 0" in n and "no checkpoint" in n for n in section.table.notes)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lhl: error: ") and "missing" in err and "\n" not in err
    assert main(["report", str(tmp_path), "--samples", "-1"]) == 2
    assert "--samples: invalid value -1" in capsys.readouterr().err


def test_long_task_orders_get_short_file_names():
    from lhl.report.experiment.collect import Section

    order = ("segmentation", "depth", "normal", "edge_occlusion", "reshading", "keypoints2d", "edge_texture",
             "depth_euclidean", "principal_curvature", "keypoints3d")
    section = Section.__new__(Section)
    section.benchmark, section.order = "synthetic-taskonomy", order
    assert section.slug.startswith("synthetic-taskonomy-segmentation-10tasks-") and len(section.slug) < 64
    section.order = ("depth", "segmentation")
    assert section.slug == "synthetic-taskonomy-depth-segmentation"


def _with_arm(run_dir: Path, arm: str) -> Path:
    """What lhl bench writes beside a run of an experiment arm."""
    (run_dir / "bench-status.json").write_text(json.dumps({"state": "done", "label": run_dir.name[:-3], "arm": arm}))
    return run_dir


def test_arms_are_kept_apart_each_against_its_own_baseline(tmp_path):
    """Two arms (scratch; pretrained: another model.weights) × two orders, seed 0: each arm is a
    benchmark of its own — tables per (arm, order), Δ against the vanilla run of the same arm, and
    the mean over orders per arm. The arm comes from bench-status.json, not the directory's name."""
    exp = tmp_path / "exp"
    scratch, pretrained = exp / "runs" / "scratch", exp / "runs" / "renamed"
    for folder, arm, weights, order, vanilla, had in (
            (scratch, "scratch", None, SEG_DEPTH, result(20, 40, 2.0), result(30, 40, 2.0)),
            (scratch, "scratch", None, DEPTH_SEG, result(20, 40, 1.0), result(20, 40, 0.5)),
            (pretrained, "pretrained", "w.pt", SEG_DEPTH, result(40, 50, 1.0), result(30, 50, 1.0)),
            (pretrained, "pretrained", "w.pt", DEPTH_SEG, result(50, 50, 1.0), result(50, 50, 0.8))):
        where = folder / "-".join(order)
        _with_arm(write_run(where / "vanilla-s0", vanilla, "vanilla", 0, order, weights=weights), arm)
        _with_arm(write_run(where / "had-s0", had, "had", 0, order, seconds_per_step=2.0, weights=weights), arm)
    experiment = collect_experiment(exp)
    assert [b.benchmark for b in experiment.benchmarks] == ["synthetic-nyu (pretrained)", "synthetic-nyu (scratch)"]
    delta = {(t.benchmark, t.order): {r.label: r.delta.mean for r in t.rows} for t in experiment.tables}
    # scratch: had seg ((30-20)/20, 0)/2 = 25, depth 0 -> 12.5 ; depth → seg: depth +50, seg 0 -> 25
    # pretrained: had seg ((30-40)/40, 0)/2 = -12.5, depth 0 -> -6.25 ; depth → seg: depth +20 -> 10
    # (against scratch's vanilla it would be 43.75 and 35)
    assert delta[("synthetic-nyu (scratch)", tuple(SEG_DEPTH))] == {"vanilla": 0.0, "had": 12.5}
    assert delta[("synthetic-nyu (scratch)", tuple(DEPTH_SEG))] == {"vanilla": 0.0, "had": 25.0}
    assert delta[("synthetic-nyu (pretrained)", tuple(SEG_DEPTH))] == {"vanilla": 0.0, "had": -6.25}
    assert delta[("synthetic-nyu (pretrained)", tuple(DEPTH_SEG))]["had"] == pytest.approx(10.0)
    # the mean over orders per arm: scratch (12.5, 25) -> 18.75 ; pretrained (-6.25, 10) -> 1.875
    overall = {b.benchmark: {r.label: r for r in b.overall.rows} for b in experiment.benchmarks}
    assert overall["synthetic-nyu (scratch)"]["had"].delta.mean == pytest.approx(18.75)
    assert overall["synthetic-nyu (pretrained)"]["had"].delta.mean == pytest.approx(1.875)
    assert overall["synthetic-nyu (pretrained)"]["had"].train_seconds.mean == pytest.approx(40.0)  # 20 steps × 2 s
    text = paper_table.markdown(experiment)
    for heading in ("synthetic-nyu (scratch): segmentation → depth", "synthetic-nyu (scratch): depth → segmentation",
                    "synthetic-nyu (pretrained): segmentation → depth",
                    "synthetic-nyu (scratch): mean over 2 task orders",
                    "synthetic-nyu (pretrained): mean over 2 task orders"):
        assert f"### {heading}\n" in text
    assert any("against the baseline of its own order, seed and arm (scratch)" in line
               for line in _section(text, "synthetic-nyu (scratch): mean over 2 task orders"))
    # CSV: the benchmark without the arm, an arm column
    rows = list(csv.DictReader(paper_table.csv_text(experiment).splitlines()))
    had = [r for r in rows if r["method"] == "had" and r["order"] == "all orders"]
    assert [(r["benchmark"], r["arm"], round(float(r["delta_pct"]), 6)) for r in had] == [
        ("synthetic-nyu", "pretrained", 1.875), ("synthetic-nyu", "scratch", 18.75)]
    assert float(had[0]["train_seconds"]) == 40.0
    # the setup lines tell the arms apart
    assert sorted(experiment.setup) == ["every row of arm pretrained: tiny, pretrained (w.pt)",
                                        "every row of arm scratch: tiny, random initialisation"]
    # lhl compare: one table per (arm, order), each against its own arm's vanilla
    table = comparison_table(load_runs(find_run_dirs(exp)))
    assert table.count("## synthetic-nyu (scratch):") == 2 and table.count("## synthetic-nyu (pretrained):") == 2
    pretrained_seg_depth = table.split("## synthetic-nyu (pretrained): segmentation → depth\n", 1)[1].split("##")[0]
    assert "| had | 0 | 30 | 50 | 1 | -6.25 |" in pretrained_seg_depth
    # without the arms, the two vanilla-s0 of an order would be one row named alike but different
    for status in exp.rglob("bench-status.json"):
        status.unlink()
    with pytest.raises(ReportError, match="are both named '(had|vanilla)' but their configurations differ"):
        collect_experiment(exp)
