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
    assert {"vanilla", "joint", "dis", "had", "ewc", "lwf", "icarl", "der", "pod", "spg", "sgp"} <= set(METHOD_NAMES)
    assert {"synthetic-nyu", "synthetic-city", "synthetic-taskonomy"} <= set(SYNTHETIC)


@pytest.mark.slow
@pytest.mark.parametrize("order", ["default", "reversed"])
@pytest.mark.parametrize("benchmark", SYNTHETIC)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_finishes_on_every_synthetic_benchmark(method, benchmark, order, tmp_path):
    tasks = list(BENCHMARKS.get(benchmark).default_tasks)
    if order == "reversed":
        tasks.reverse()
    config = load_config(preset="smoke", method=method,
                         overrides=[f"benchmark={benchmark}", f"tasks=[{','.join(tasks)}]"])
    out = tmp_path / "run"
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
