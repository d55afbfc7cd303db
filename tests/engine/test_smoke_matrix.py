"""Every built-in method × every built-in synthetic benchmark × two task orders finishes.

Each case runs the ``smoke`` preset in-process on the benchmark's default task order or its
reverse (so segmentation is also the last task, an old task of generic-regression type is
distilled, replayed or protected, and the 10-phase synthetic-taskonomy runs with 2 images a
phase), and checks the run directory: ``summary.md`` exists and ``performance.json`` is complete
— one entry per phase (one for joint), every phase covers exactly the tasks seen so far, the last
one every task, and every metric is a finite number.

Methods and benchmarks are read from the registries, so a new built-in method or synthetic
benchmark is covered without touching this file; entries registered by test modules (probes,
deliberately failing methods) are left out.

Cost: 66 runs, about a minute on one CPU thread — mostly synthetic-taskonomy's ten phases. The
smoke preset is sized for it (``src/lhl/config/presets/smoke.yaml``).
"""

from __future__ import annotations

import json
import math

import pytest

from lhl.cli import main
from lhl.config import load_config
from lhl.data.synthetic_benchmark import SyntheticBenchmark
from lhl.engine.trainer import Trainer
from lhl.registry import BENCHMARKS, METHODS, load_builtins

load_builtins()


def _builtin(obj) -> bool:
    return obj.__module__.startswith("lhl.")


METHOD_NAMES = [name for name in METHODS.names() if _builtin(METHODS.get(name))]
SYNTHETIC = [name for name in BENCHMARKS.names()
             if _builtin(BENCHMARKS.get(name)) and issubclass(BENCHMARKS.get(name), SyntheticBenchmark)]


def test_the_matrix_covers_the_known_methods_and_benchmarks():
    """Guards the discovery above against silently shrinking (e.g. a registry that stops loading)."""
    assert {"vanilla", "joint", "dis", "had", "ewc", "lwf", "icarl", "der", "pod", "spg", "sgp",
            "frozen", "side-tuning"} <= set(METHOD_NAMES)
    assert {"synthetic-nyu", "synthetic-city", "synthetic-taskonomy"} <= set(SYNTHETIC)


@pytest.fixture(scope="module")
def matrix_root(tmp_path_factory):
    """Where the matrix keeps its runs (``<benchmark>/<order>/<method>-s0``) for the compare test."""
    return tmp_path_factory.mktemp("matrix")


def _order(benchmark: str, order: str) -> list[str]:
    tasks = list(BENCHMARKS.get(benchmark).default_tasks)
    return tasks[::-1] if order == "reversed" else tasks


@pytest.mark.slow
@pytest.mark.parametrize("order", ["default", "reversed"])
@pytest.mark.parametrize("benchmark", SYNTHETIC)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_finishes_on_every_synthetic_benchmark(method, benchmark, order, matrix_root):
    tasks = _order(benchmark, order)
    config = load_config(preset="smoke", method=method,
                         overrides=[f"benchmark={benchmark}", f"tasks=[{','.join(tasks)}]"])
    out = matrix_root / benchmark / order / f"{method}-s0"
    Trainer(config, out, quiet=True).run()

    assert (out / "summary.md").is_file()
    performance = json.loads((out / "performance.json").read_text())
    assert performance["tasks"] == tasks and performance["method"] == method
    phases = performance["phases"]
    joint = METHODS.get(method).joint
    assert [p["phase"] for p in phases] == list(range(1, (1 if joint else len(tasks)) + 1))
    for index, phase in enumerate(phases):
        seen = tasks if joint else tasks[:index + 1]
        assert sorted(phase["metrics"]) == sorted(seen), f"phase {phase['phase']}"
    for task, metrics in phases[-1]["metrics"].items():
        assert metrics, f"{task}: no metric"
        for name, value in metrics.items():
            assert isinstance(value, (int, float)) and math.isfinite(value), f"{task}.{name} = {value!r}"


@pytest.mark.slow
def test_compare_over_a_mixed_set_of_matrix_runs(matrix_root, capsys):
    """``lhl compare`` over runs of every method, benchmark and order at once: one section per
    (benchmark, order), one row per method. Runs the few it needs when the matrix did not run."""
    runs = sorted(path.parent for path in matrix_root.glob("*/*/*/summary.md"))
    if len(runs) < 6:
        for benchmark, order, method in [("synthetic-nyu", "default", "vanilla"), ("synthetic-nyu", "default", "had"),
                                         ("synthetic-nyu", "reversed", "vanilla"), ("synthetic-nyu", "reversed", "lwf"),
                                         ("synthetic-city", "default", "vanilla"), ("synthetic-city", "default", "joint")]:
            out = matrix_root / benchmark / order / f"{method}-s0"
            if not (out / "summary.md").exists():
                tasks = _order(benchmark, order)
                Trainer(load_config(preset="smoke", method=method, overrides=[
                    f"benchmark={benchmark}", f"tasks=[{','.join(tasks)}]"]), out, quiet=True).run()
        runs = sorted(path.parent for path in matrix_root.glob("*/*/*/summary.md"))
    capsys.readouterr()
    assert main(["compare", *map(str, runs)]) == 0, capsys.readouterr().err
    table = capsys.readouterr().out
    sections = {(path.parent.parent.name, path.parent.name) for path in runs}
    assert table.count("\n## ") + table.startswith("## ") == len(sections)
    for benchmark, order in sections:
        assert f"## {benchmark}: {' → '.join(_order(benchmark, order))}" in table
    for method in {path.name[:-3] for path in runs}:
        assert f"| {method} |" in table
