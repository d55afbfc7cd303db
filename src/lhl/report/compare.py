"""Compare finished runs: final metrics and Δ over vanilla, mean ± std over seeds (SPEC §5).

Runs are grouped by label — the run directory's name without a trailing ``-s<seed>`` — and Δ
is computed per seed against the vanilla run of the same seed (the group labelled
``vanilla`` unless another baseline label is given), then averaged.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from lhl.metrics import directions_for, final_result, mean_rank, relative_improvement

SEED_SUFFIX = re.compile(r"^(?P<label>.+)-s(?P<seed>\d+)$")


def load_runs(run_dirs: list[str | Path]) -> dict[str, dict[int, dict[str, Any]]]:
    """``{label: {seed: performance}}`` from run directories named ``<label>-s<seed>``."""
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for run_dir in map(Path, run_dirs):
        path = run_dir / "performance.json"
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r}: not a finished run (no performance.json)")
        match = SEED_SUFFIX.match(run_dir.name)
        if not match:
            raise ValueError(f"{str(run_dir)!r}: expected a directory named <label>-s<seed>")
        performance = json.loads(path.read_text())
        if not performance.get("phases") or set(performance["phases"][-1]["metrics"]) != set(performance["tasks"]):
            raise ValueError(f"{str(run_dir)!r}: unfinished run (its last phase does not cover every task)")
        runs.setdefault(match["label"], {})[int(match["seed"])] = performance
    return runs


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def comparison_table(runs: dict[str, dict[int, dict[str, Any]]], baseline: str = "vanilla") -> str:
    """A Markdown table: one row per label, final metrics (mean over seeds), Δ (mean ± std), MR."""
    if baseline not in runs:
        raise KeyError(f"no runs labelled {baseline!r} to compare against; labels: {', '.join(sorted(runs))}")
    finals = {label: {seed: final_result(p) for seed, p in seeds.items()} for label, seeds in runs.items()}
    reference = next(iter(finals[baseline].values()))
    directions = directions_for(reference)
    columns = [(t, m) for t, metrics in reference.items() for m in metrics]
    header = ["method", "seeds"] + [f"{t}/{m} {'↑' if directions[t][m] else '↓'}" for t, m in columns] + ["Δ vs vanilla %", "MR"]
    seeds_common = sorted(set.intersection(*(set(s) for s in finals.values())))
    ranks = {label: [] for label in finals}
    for seed in seeds_common:
        for label, value in mean_rank({label if label != baseline else "vanilla": finals[label][seed]
                                       for label in finals}, directions).items():
            ranks[baseline if label == "vanilla" else label].append(value)
    rows = []
    for label, per_seed in finals.items():
        cells = [label, ",".join(str(s) for s in sorted(per_seed))]
        for task, metric in columns:
            cells.append(f"{statistics.mean(r[task][metric] for r in per_seed.values()):.4g}")
        deltas = [relative_improvement(r, finals[baseline][seed], directions)
                  for seed, r in per_seed.items() if seed in finals[baseline]]
        cells.append(_mean_std(deltas) if deltas else "n/a")
        cells.append(f"{statistics.mean(ranks[label]):.2f}" if ranks[label] else "n/a")
        rows.append(cells)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
