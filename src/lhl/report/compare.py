"""Compare finished runs (``lhl compare``): final metrics, Δ over a baseline (eq. 11) per seed,
then mean ± std over seeds, and mean rank (MR).

A run is a directory written by ``lhl run``; its identity comes from its ``config.yaml`` and
``performance.json``, never from the directory's name:

* **sections** — runs of different benchmarks or task orders are never pooled: there is one table
  per ``(benchmark, task order)``, each with its own baseline; runs of an experiment with ``arms``
  (``lhl bench`` records each run's arm in its ``bench-status.json``) are kept apart too: one table
  per ``(benchmark, arm, task order)``, headed ``<benchmark> (<arm>): <order>``, each with the
  baseline of its own arm;
* **groups** — within a section, the runs whose configurations are identical except ``seed`` and
  the keys that do not change results (:data:`IGNORED_KEYS`) form one row. A row is labelled by
  its method name; when several rows of a table share a method name, the keys that tell them apart
  are added, e.g. ``had (use_sg=false)``. Directories named ``<label>-s<seed>`` (the convention of
  ``experiments/``) lend that label to the row when all its runs agree on it; runs that share such
  a name in one section but differ beyond the seed are refused (:class:`~lhl.errors.ReportError`
  listing the differing keys);
* **Δ** (eq. 11) is computed per seed against the baseline run of the *same* seed, then averaged
  (mean ± sample std); seeds without a baseline run are left out, with a note. A relative change
  over a zero baseline value is undefined: shown ``n/a``, left out of the averages
  (:mod:`lhl.metrics.summary`), with a note naming the task and metric.
* **MR** (docs/deviations.md, "Mean rank") is computed per seed over the seeds every row of the
  table has, then averaged.

Every problem with the inputs is a :class:`~lhl.errors.ReportError` naming the path.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lhl.config import RESUME_TOLERATED
from lhl.config.schema import flatten
from lhl.errors import ReportError
from lhl.metrics.summary import (
    mean_rank,
    metric_relative_improvement,
    ranked_tasks,
    relative_improvement,
)
from lhl.report.tables import ARROW, MARK, NA, markdown_table, metric_directions

__all__ = ["Run", "IGNORED_KEYS", "load_run", "load_runs", "comparison_table"]

#: ``<label>-s<seed>``: the directory-name convention of ``experiments/`` (optional).
SEED_SUFFIX = re.compile(r"^(?P<label>.+)-s(?P<seed>\d+)$")

#: Configuration keys (dotted, with everything below them) that do not change a run's results:
#: runs differing only in these (and in ``seed``) belong to one row.
IGNORED_KEYS: tuple[str, ...] = tuple(RESUME_TOLERATED) + ("logging",)

#: The file (written by ``lhl bench``, lhl.experiments.status) and key naming a run's arm.
STATUS_FILE, ARM_FIELD = "bench-status.json", "arm"

#: Keys ``config.yaml`` must have.
CONFIG_KEYS = ("benchmark", "tasks", "seed", "method")

_ABSENT = object()


@dataclass
class Run:
    """One finished run, as read by :func:`load_run`."""

    path: Path
    config: dict[str, Any]
    performance: dict[str, Any]
    seed: int
    method: str
    benchmark: str
    order: tuple[str, ...]
    #: ``final``: the last phase's metrics; ``directions``: higher-is-better per task/metric.
    final: dict[str, dict[str, float]]
    directions: dict[str, dict[str, bool]]
    #: The ``<label>`` of a directory named ``<label>-s<seed>`` (with the run's seed), else None.
    name_label: str | None = None
    #: Flattened configuration without ``seed`` and :data:`IGNORED_KEYS` (``tasks`` resolved).
    settings: dict[str, Any] = field(default_factory=dict)
    #: The experiment arm the run belongs to (``bench-status.json``'s ``arm``), None outside arms.
    arm: str | None = None

    @property
    def section_name(self) -> str:
        """``synthetic-nyu`` or, for a run of an arm, ``synthetic-nyu (pretrained)``."""
        return self.benchmark if self.arm is None else f"{self.benchmark} ({self.arm})"

    @property
    def identity(self) -> str:
        """Canonical text of :attr:`settings`: equal for runs of one row."""
        return json.dumps(self.settings, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- loading
def _where(path: Path) -> str:
    return repr(str(path))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ReportError(f"{_where(path)}: not valid YAML ({_one_line(exc)})") from None
    if not isinstance(config, dict):
        raise ReportError(f"{_where(path)}: expected a mapping (the config.yaml lhl run writes), "
                          f"got {type(config).__name__}")
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise ReportError(f"{_where(path)}: missing key(s) {', '.join(map(repr, missing))}; expected "
                          f"the config.yaml lhl run writes (keys {', '.join(CONFIG_KEYS)}, ...)")
    if not isinstance(config["benchmark"], str):
        raise ReportError(f"{_where(path)}: 'benchmark' must be a name, got {config['benchmark']!r}")
    tasks = config["tasks"]
    if tasks is not None and not (isinstance(tasks, list) and all(isinstance(t, str) for t in tasks)):
        raise ReportError(f"{_where(path)}: 'tasks' must be a list of task names or null, got {tasks!r}")
    if isinstance(config["seed"], bool) or not isinstance(config["seed"], int):
        raise ReportError(f"{_where(path)}: 'seed' must be an integer, got {config['seed']!r}")
    method = config["method"]
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise ReportError(f"{_where(path)}: 'method' must be a mapping with a 'name' and the "
                          f"method's hyperparameters, got {method!r}")
    return config


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_performance(path: Path) -> dict[str, Any]:
    try:
        performance = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{_where(path)}: not valid JSON, truncated or damaged ({_one_line(exc)})") from None
    if not isinstance(performance, dict):
        raise ReportError(f"{_where(path)}: expected a mapping with 'tasks' and 'phases', "
                          f"got {type(performance).__name__}")
    for key in ("tasks", "phases"):
        if key not in performance:
            raise ReportError(f"{_where(path)}: missing key {key!r} (expected 'benchmark', 'method', "
                              f"'tasks', 'phases')")
    tasks = performance["tasks"]
    if not (isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks)):
        raise ReportError(f"{_where(path)}: 'tasks' must be a non-empty list of task names, got {tasks!r}")
    phases = performance["phases"]
    if not isinstance(phases, list):
        raise ReportError(f"{_where(path)}: 'phases' must be a list, got {type(phases).__name__}")
    if not phases:
        raise ReportError(f"{_where(path)}: unfinished run: no phase evaluated yet")
    for i, phase in enumerate(phases):
        metrics = phase.get("metrics") if isinstance(phase, dict) else None
        if not isinstance(metrics, dict) or not all(
            isinstance(vals, dict) and vals and all(_is_number(v) for v in vals.values())
            for vals in metrics.values()
        ):
            raise ReportError(f"{_where(path)}: phases[{i}] must be a mapping whose 'metrics' maps "
                              f"each task to {{metric: number}}, got {phase!r}")
    return performance


def load_run(path: str | Path) -> Run:
    """Read one run directory (``config.yaml`` and ``performance.json``).

    Raises:
        ReportError: the path is not a directory, not a run directory, holds an unfinished run, or
            a malformed ``config.yaml`` / ``performance.json`` (the message names the file).
    """
    run_dir = Path(path)
    if not run_dir.exists():
        raise ReportError(f"{_where(run_dir)}: no such directory")
    if not run_dir.is_dir():
        raise ReportError(f"{_where(run_dir)}: not a directory (expected a run directory written by lhl run)")
    config_path, performance_path = run_dir / "config.yaml", run_dir / "performance.json"
    if not config_path.is_file():
        raise ReportError(f"{_where(run_dir)}: not a run directory (no config.yaml)")
    if not performance_path.is_file():
        raise ReportError(f"{_where(run_dir)}: no performance.json (not a run directory, or a run "
                          f"that has not finished its first phase)")
    config = _read_config(config_path)
    performance = _read_performance(performance_path)
    order = tuple(performance["tasks"])
    if config["tasks"] is not None and tuple(config["tasks"]) != order:
        raise ReportError(f"{_where(run_dir)}: config.yaml's tasks {config['tasks']} differ from "
                          f"performance.json's {list(order)}")
    for key, expected in (("benchmark", config["benchmark"]), ("method", config["method"]["name"])):
        if key in performance and performance[key] != expected:
            raise ReportError(f"{_where(run_dir)}: performance.json's {key} {performance[key]!r} differs "
                              f"from config.yaml's {expected!r}")
    last = performance["phases"][-1]
    missing = [t for t in order if t not in last["metrics"]]
    if missing:
        raise ReportError(f"{_where(run_dir)}: unfinished run: its last phase "
                          f"({last.get('phase', len(performance['phases']))}) has no metrics of "
                          f"{', '.join(missing)} (tasks {', '.join(order)}); continue it with "
                          f"lhl run --resume --out DIR")
    final = {t: {m: float(v) for m, v in last["metrics"][t].items()} for t in order}
    directions = metric_directions(performance, [(t, m) for t, ms in final.items() for m in ms],
                                   where=_where(performance_path))
    resolved = dict(config, tasks=list(order))
    settings = {k: v for k, v in flatten(resolved).items() if k != "seed" and not _ignored(k)}
    name = os.path.basename(os.path.abspath(run_dir))
    match = SEED_SUFFIX.match(name)
    name_label = match["label"] if match and int(match["seed"]) == config["seed"] else None
    return Run(path=run_dir, config=config, performance=performance, seed=config["seed"],
               method=config["method"]["name"], benchmark=config["benchmark"], order=order,
               final=final, directions=directions, name_label=name_label, settings=settings,
               arm=read_arm(run_dir))


def read_arm(run_dir: Path) -> str | None:
    """The run's arm as ``lhl bench`` recorded it in ``bench-status.json`` (None: no file, no arm, or
    a file that cannot be read — the status file is a convenience, never an error)."""
    try:
        record = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    arm = record.get(ARM_FIELD) if isinstance(record, dict) else None
    return arm if isinstance(arm, str) and arm else None


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in IGNORED_KEYS)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """:func:`load_run` of every path, in the given order (see :func:`comparison_table`)."""
    return [load_run(p) for p in paths]


# ----------------------------------------------------------------------------- grouping
@dataclass
class _Group:
    runs: list[Run]
    label: str = ""
    method_label: str = ""

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def by_seed(self) -> dict[int, Run]:
        return {r.seed: r for r in sorted(self.runs, key=lambda r: r.seed)}

    @property
    def name_label(self) -> str | None:
        names = {r.name_label for r in self.runs}
        return names.pop() if len(names) == 1 else None

    def labels(self) -> set[str]:
        return {self.label, self.method_label, self.first.method} | ({self.name_label} - {None})


def _fmt_value(value: Any) -> str:
    if value is _ABSENT:
        return "unset"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _canon(settings: Mapping[str, Any], key: str) -> tuple[bool, str]:
    return key in settings, json.dumps(settings.get(key), sort_keys=True, default=str)


def _short(key: str) -> str:
    return key[len("method."):] if key.startswith("method.") else key


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = sorted(k for k in set(a) | set(b) if _canon(a, k) != _canon(b, k))
    return [f"{k} ({_fmt_value(a.get(k, _ABSENT))} vs {_fmt_value(b.get(k, _ABSENT))})" for k in keys]


def _check_inputs(runs: Sequence[Run]) -> None:
    seen_paths: dict[str, Run] = {}
    seen: dict[tuple[str, int], Run] = {}
    for run in runs:
        key = os.path.realpath(run.path)
        if key in seen_paths:
            raise ReportError(f"{_where(run.path)}: given twice")
        seen_paths[key] = run
        other = seen.get((run.identity, run.seed))
        if other is not None:
            raise ReportError(f"{_where(other.path)} and {_where(run.path)}: duplicate runs (identical "
                              f"configuration and seed {run.seed}); pass only one of them")
        seen[(run.identity, run.seed)] = run


def _sections(runs: Sequence[Run]) -> dict[tuple[str, tuple[str, ...]], list[Run]]:
    sections: dict[tuple[str, tuple[str, ...]], list[Run]] = {}
    for run in runs:
        sections.setdefault((run.section_name, run.order), []).append(run)
    return sections


def _groups(runs: Sequence[Run]) -> list[_Group]:
    by_name: dict[str, Run] = {}
    for run in runs:
        if run.name_label is None:
            continue
        other = by_name.setdefault(run.name_label, run)
        if other.identity != run.identity:
            raise ReportError(
                f"{_where(other.path)} and {_where(run.path)} are both named {run.name_label!r} but their "
                f"configurations differ beyond the seed: {'; '.join(_differences(other.settings, run.settings))}. "
                f"Rename the directories or compare them separately")
    groups: dict[str, _Group] = {}
    for run in runs:
        groups.setdefault(run.identity, _Group([])).runs.append(run)
    out = list(groups.values())
    by_method: dict[str, list[_Group]] = {}
    for group in out:
        by_method.setdefault(group.first.method, []).append(group)
    for method, same in by_method.items():
        if len(same) == 1:
            same[0].method_label = method
            continue
        keys = list(dict.fromkeys(k for g in same for k in g.first.settings))
        differing = [k for k in keys if len({_canon(g.first.settings, k) for g in same}) > 1]
        for g in same:
            shown = ", ".join(f"{_short(k)}={_fmt_value(g.first.settings.get(k, _ABSENT))}" for k in differing)
            g.method_label = f"{method} ({shown})"
    for group in out:
        group.label = group.name_label or group.method_label
    counts: dict[str, int] = {}
    for group in out:
        counts[group.label] = counts.get(group.label, 0) + 1
    for group in out:
        if counts[group.label] > 1:
            group.label = group.method_label
    if len({g.label for g in out}) < len(out):  # a directory name equal to another row's method label
        for group in out:
            group.label = f"{group.method_label} [{group.first.path}]"
    return out


def _find_baseline(groups: Sequence[_Group], baseline: str, section: str) -> _Group | None:
    exact = [g for g in groups if baseline in {g.label, g.method_label} | ({g.name_label} - {None})]
    if len(exact) == 1:
        return exact[0]
    by_method = [g for g in groups if g.first.method == baseline]
    candidates = exact or by_method
    if len(candidates) > 1:
        raise ReportError(f"baseline {baseline!r} is ambiguous in {section}: rows "
                          f"{', '.join(repr(g.label) for g in candidates)}; pass one of these labels "
                          f"with --baseline")
    return candidates[0] if candidates else None


# ----------------------------------------------------------------------------- the table
def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def seeds_text(seeds: Iterable[int]) -> str:
    """The words "seed 0" or "seeds 0, 2" (shared by the notes of compare and report)."""
    seeds = sorted(seeds)
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def no_runs_text(seeds: Sequence[int]) -> str:
    if len(seeds) == 1:
        return f"no seed-{seeds[0]} run"
    return f"no runs for seeds {', '.join(map(str, seeds))}"


def _merged_directions(runs: Sequence[Run]) -> dict[str, dict[str, bool]]:
    merged: dict[str, dict[str, bool]] = {}
    source: dict[tuple[str, str], Run] = {}
    for run in runs:
        for task, metrics in run.directions.items():
            for metric, higher in metrics.items():
                if metric in merged.get(task, {}) and merged[task][metric] != higher:
                    first = source[(task, metric)]
                    raise ReportError(
                        f"{_where(first.path)} and {_where(run.path)} disagree on the direction of "
                        f"{task}/{metric} (higher is better: {merged[task][metric]} vs {higher})")
                merged.setdefault(task, {})[metric] = higher
                source.setdefault((task, metric), run)
    return merged


def _section_table(benchmark: str, order: tuple[str, ...], runs: list[Run], groups: list[_Group],
                   baseline: str) -> str:
    name = f"{benchmark}: {' → '.join(order)}"
    base = _find_baseline(groups, baseline, f"the {name} runs")
    directions = _merged_directions(runs)
    columns = list(dict.fromkeys((t, m) for t in order for r in runs for m in r.final.get(t, {})))
    notes: list[str] = []
    base_label = base.label if base else baseline
    base_runs = base.by_seed if base else {}
    if base is not None:
        for group in groups:
            for run in group.runs:
                for seed_run in base_runs.values():
                    for task, metrics in seed_run.final.items():
                        for metric in metrics:
                            if metric not in run.final.get(task, {}):
                                raise ReportError(
                                    f"{_where(run.path / 'performance.json')}: no metric {metric!r} of "
                                    f"task {task!r} in the last phase, which the baseline run "
                                    f"{_where(seed_run.path)} has")

    # Δ per seed against the baseline run of the same seed
    deltas: dict[str, list[float]] = {}
    undefined_zero: dict[tuple[str, str], set[int]] = {}  # (task, metric) -> baseline seeds with value 0
    undefined_other: list[str] = []
    undefined_tasks: dict[str, set[int]] = {}  # task -> baseline seeds where all its metrics are 0
    for group in groups:
        values: list[float] = []
        matched = [s for s in group.by_seed if s in base_runs]
        for seed in matched:
            run, ref = group.by_seed[seed], base_runs[seed]
            delta = delta_noting_undefined(group.label, base_label, seed, run.final, ref.final, directions,
                                           undefined_zero, undefined_other, undefined_tasks)
            if math.isnan(delta):
                notes.append(f"Δ for {group.label}, seed {seed}: {NA} (no task has a defined relative "
                             f"change); left out of its mean")
            else:
                values.append(delta)
        deltas[group.label] = values
        missing = sorted(set(group.by_seed) - set(base_runs))
        if base is not None and missing:
            if matched:
                notes.append(f"Δ for {group.label} over {seeds_text(matched)} only: {base_label} has "
                             f"{no_runs_text(missing)}")
            else:
                notes.append(f"Δ for {group.label}: {NA}, {base_label} has no run with its "
                             f"{seeds_text(missing)}")

    # MR per seed over the seeds every row has
    ranks: dict[str, list[float]] = {g.label: [] for g in groups}
    if base is not None:
        common = sorted(set.intersection(*(set(g.by_seed) for g in groups)))
        every = sorted(set().union(*(set(g.by_seed) for g in groups)))
        if not common:
            notes.append(f"MR: {NA}, no seed is shared by every row")
        elif common != every:
            notes.append(f"MR over {seeds_text(common)} only (the seeds every row has)")
        for seed in common:
            results = {g.label: g.by_seed[seed].final for g in groups}
            reference = base_runs[seed].final
            for label, value in mean_rank(results, directions, base_label).items():
                if not math.isnan(value):
                    ranks[label].append(value)
            left_out = [t for t in reference if t not in ranked_tasks(results, directions, base_label)]
            if left_out:
                notes.append(f"MR for seed {seed} ranks the tasks with a defined Δ in every row; it "
                             f"leaves out {', '.join(left_out)}")
    else:
        notes.append(f"Δ and MR: {NA}, no {baseline} run among the {name} runs")

    # notes on undefined relative changes
    zero_columns = set(undefined_zero)
    first, last = notes_on_undefined(base_label, undefined_zero, undefined_tasks, undefined_other)
    notes[:0] = first
    notes += last

    header = ["method", "seeds"]
    header += [f"{t}/{m} {ARROW[directions[t][m]]}" + (f" {MARK}" if (t, m) in zero_columns else "")
               for t, m in columns]
    header += [f"Δ vs {base_label} %", "MR"]
    rows = []
    for group in groups:
        cells = [group.label, ",".join(str(s) for s in group.by_seed)]
        for task, metric in columns:
            values = [r.final[task][metric] for r in group.runs if metric in r.final.get(task, {})]
            cells.append(f"{statistics.mean(values):.4g}" if values else "")
        cells.append(_mean_std(deltas[group.label]) if deltas[group.label] else NA)
        cells.append(f"{statistics.mean(ranks[group.label]):.2f}" if ranks[group.label] else NA)
        rows.append(cells)
    parts = [f"## {name}", "", markdown_table(header, rows)]
    if notes:
        parts += [""] + [f"- {n}." for n in notes]
    return "\n".join(parts)


def comparison_table(runs: Sequence[Run], baseline: str = "vanilla") -> str:
    """Markdown: per ``(benchmark, task order)`` (and arm) a heading and a table — one row per group of runs,
    final metrics (mean over seeds), Δ vs ``baseline`` (eq. 11, per seed, mean ± std) and MR —
    followed by notes on seeds without a baseline and undefined values.

    Args:
        runs: from :func:`load_runs`.
        baseline: a method name or a row label (e.g. ``had-no-sg``, ``had (use_sg=false)``).

    Raises:
        ReportError: no run, the same run given twice or duplicate runs, runs named alike that
            differ, an ambiguous baseline, or no baseline run at all.
    """
    runs = list(runs)
    if not runs:
        raise ReportError("no run to compare")
    _check_inputs(runs)
    sections = _sections(runs)
    grouped = {key: _groups(section_runs) for key, section_runs in sections.items()}
    if not any(baseline in g.labels() for groups in grouped.values() for g in groups):
        methods = sorted({r.method for r in runs})
        labels = sorted({g.label for groups in grouped.values() for g in groups} - set(methods))
        raise ReportError(
            f"no baseline run {baseline!r} to compare against: the runs are of method(s) "
            f"{', '.join(methods)}" + (f" (rows {', '.join(labels)})" if labels else "")
            + "; pass --baseline with one of them")
    return "\n\n".join(_section_table(b, o, rs, grouped[(b, o)], baseline) for (b, o), rs in sections.items())


# ----------------------------------------------------------------------------- helpers for lhl report
#: A row of a comparison: the runs of one configuration (seeds pooled), with its ``label``.
Group = _Group


def grouped_sections(runs: Sequence[Run]) -> dict[tuple[str, tuple[str, ...]], list[_Group]]:
    """The rows :func:`comparison_table` builds: per ``(benchmark, task order)`` — the benchmark
    named ``<benchmark> (<arm>)`` for the runs of an experiment arm — the groups of runs
    (one per configuration, seeds pooled, labelled as in the table).

    Raises:
        ReportError: the same run given twice, duplicate runs, or runs named alike that differ.
    """
    runs = list(runs)
    _check_inputs(runs)
    return {key: _groups(section_runs) for key, section_runs in _sections(runs).items()}


def find_baseline(groups: Sequence[_Group], baseline: str, section: str) -> _Group | None:
    """The row of ``groups`` that ``baseline`` (a method name or row label) names, as in
    :func:`comparison_table`; None when there is none. ``section`` names the table in errors.

    Raises:
        ReportError: ``baseline`` names several rows.
    """
    return _find_baseline(groups, baseline, section)


def merged_directions(runs: Sequence[Run]) -> dict[str, dict[str, bool]]:
    """Every ``{task: {metric: higher_is_better}}`` of ``runs``' performance files.

    Raises:
        ReportError: two runs disagree on a metric's direction (naming both).
    """
    return _merged_directions(runs)


def delta_noting_undefined(label: str, base_label: str, seed: int, final: dict, reference: dict, directions: dict,
                           undefined_zero: dict, undefined_other: list, undefined_tasks: dict) -> float:
    """Δ (eq. 11) of ``final`` over ``reference`` — NaN when no task has a defined relative change —
    recording why each undefined metric is undefined: a zero baseline value
    (``undefined_zero[(task, metric)]`` gets ``seed``), a non-finite value (a line in
    ``undefined_other``), a task whose every baseline metric is 0 (``undefined_tasks[task]``).
    Shared by ``lhl compare`` and ``lhl report``."""
    for task, metrics in metric_relative_improvement(final, reference, directions).items():
        for metric, value in metrics.items():
            if not math.isnan(value):
                continue
            ref_value, own = reference[task][metric], final[task][metric]
            if ref_value == 0:
                undefined_zero.setdefault((task, metric), set()).add(seed)
            elif not math.isfinite(ref_value):
                undefined_other.append(f"{base_label} seed {seed}: {task}/{metric} is {ref_value}")
            elif not math.isfinite(own):
                undefined_other.append(f"{label} seed {seed}: {task}/{metric} is {own}")
        if all(reference[task][m] == 0 for m in metrics):
            undefined_tasks.setdefault(task, set()).add(seed)
    return relative_improvement(final, reference, directions)


def notes_on_undefined(base_label: str, undefined_zero: dict, undefined_tasks: dict,
                       undefined_other: list) -> tuple[list[str], list[str]]:
    """The notes under a table for what :func:`delta_noting_undefined` recorded: (the note on zero
    baseline values, to put first; the notes on tasks with no defined metric and on non-finite
    values, to append). Shared by ``lhl compare`` and ``lhl report``."""
    first: list[str] = []
    if undefined_zero:
        by_seeds: dict[tuple[int, ...], list[str]] = {}
        for (task, metric), seeds in undefined_zero.items():
            by_seeds.setdefault(tuple(sorted(seeds)), []).append(f"{task}/{metric}")
        listed = "; ".join(f"{', '.join(cols)} ({seeds_text(s)})" for s, cols in by_seeds.items())
        first.append(f"{MARK} {NA}: the relative change over a zero baseline value is undefined — "
                     f"{base_label} has 0 in {listed}. These metrics are left out of Δ and MR (a "
                     f"task's Δ is the mean over its other metrics)")
    last = [f"{task} has no defined metric ({seeds_text(seeds)}): its Δ is {NA}, left out of the average over tasks"
            for task, seeds in undefined_tasks.items()]
    last += [f"{text}: its relative change is undefined ({NA}), left out of Δ and MR"
             for text in dict.fromkeys(undefined_other)]
    return first, last
