"""Collect an experiment: every finished run directory under a root, grouped into rows exactly as
``lhl compare`` groups them (:func:`lhl.report.compare.grouped_sections`), with everything the
report shows computed once — final metrics, Δ (eq. 11) and MR per seed, costs, per-phase Δ/MR,
performance-matrix heat maps, forgetting and backward transfer, training losses.

Statistics (the paper's protocol; docs/deviations.md, "Metrics"):

* **per order** (a section: one benchmark, one task order): a row's metric is the mean over its
  seeds; Δ is computed per seed against the baseline run of the *same* seed, then mean ± sample
  std over the seeds; MR per seed over the seeds every row has, then mean ± std; the step time is
  relative to the baseline run of the same seed. Seeds without a baseline run are left out, with
  a note; undefined relative changes (a zero or non-finite reference) are ``n/a`` and left out
  (:mod:`lhl.metrics.summary`), with a note.
* **over orders** (per benchmark, when it has several orders): every cell is the mean over the
  orders of the per-order value (Δ and MR per order first, then averaged), ± the std over orders.
* **arms** (an experiment file's ``arms``, e.g. from scratch and pretrained): the runs of each arm
  are a benchmark of their own, ``<benchmark> (<arm>)`` — its own per-order tables, each row's Δ
  and MR against the baseline of the same arm, and its own mean over orders.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lhl.errors import ReportError
from lhl.metrics.summary import (
    backward_transfer,
    forgetting,
    matrix_from_performance,
    mean_defined,
    mean_rank,
    ranked_tasks,
    relative_improvement,
)
from lhl.report.compare import (Group, Run, delta_noting_undefined, find_baseline, grouped_sections, load_run,
                                merged_directions, no_runs_text, notes_on_undefined, seeds_text)
from lhl.report.tables import MARK, NA

__all__ = ["Stat", "RunRecord", "TableRow", "Table", "Section", "BenchmarkReport", "Experiment",
           "find_run_dirs", "collect_experiment", "ALL_ORDERS"]

NAN = float("nan")

#: The ``order`` shown for a row averaged over task orders (CSV and headings).
ALL_ORDERS = "all orders"

#: State-dict entries that are buffers, not parameters (BatchNorm statistics).
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")

#: Method names shown first, in this order: the upper bound, then sequential fine-tuning.
LEADING_METHODS = ("joint", "vanilla")


# ----------------------------------------------------------------------------- small types
@dataclass
class Stat:
    """Values pooled over seeds (or orders); undefined (NaN) values are never added."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        if value is not None and not math.isnan(value):
            self.values.append(float(value))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.mean(self.values) if self.values else NAN

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else NAN


def stat(values: Iterable[float | None]) -> Stat:
    out = Stat()
    for value in values:
        out.add(value)
    return out


@dataclass
class RunRecord:
    """One finished run: :class:`lhl.report.compare.Run` plus what the report reads besides."""

    run: Run
    matrix: list[dict[str, dict[str, float]]]
    #: Parameters of encoder and heads in the last checkpoint (buffers excluded).
    params: int | None = None
    #: Bytes of every tensor of the method's state in the last checkpoint (exemplars, bases, …).
    state_bytes: int | None = None
    #: Training time (``phase_start`` → last ``epoch_end`` of each phase, summed: the run's training
    #: time, evaluation and checkpoints excluded) and steps.
    train_seconds: float | None = None
    steps: int | None = None
    #: ``{phase: [epoch_end events]}`` of the attempts whose results were kept.
    epochs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: Why a cost is missing: (what, the columns it costs), e.g. ("no checkpoint of the last phase",
    #: "params and stored").
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def step_seconds(self) -> float | None:
        if self.train_seconds is None or not self.steps:
            return None
        return self.train_seconds / self.steps

    @property
    def setup(self) -> str:
        """``tiny, random initialisation`` or ``resnet18, pretrained (imagenet)``."""
        model = self.run.config.get("model") or {}
        weights = model.get("weights")
        start = "random initialisation" if weights is None else f"pretrained ({weights})"
        return f"{model.get('encoder', '?')}, {start}"


@dataclass
class TableRow:
    """One row of a paper-style table (a configuration, in one order or averaged over orders)."""

    label: str
    method: str
    seeds: list[int]
    metrics: dict[tuple[str, str], Stat]
    delta: Stat
    rank: Stat
    params: Stat
    state_bytes: Stat
    step_seconds: Stat
    step_rel: Stat
    setup: str
    #: Training time of a run (seconds; per-order row: over seeds; over orders: of the per-order means).
    train_seconds: Stat = field(default_factory=Stat)
    #: Orders the row's values come from (one for a per-order row).
    orders: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class Table:
    """A paper-style table: one task order, or (``order`` None) the mean over ``orders``."""

    benchmark: str
    order: tuple[str, ...] | None
    orders: list[tuple[str, ...]]
    columns: list[tuple[str, str]]
    directions: dict[str, dict[str, bool]]
    rows: list[TableRow]
    baseline_label: str
    notes: list[str] = field(default_factory=list)
    #: Columns with a zero baseline value in some seed (marked †).
    zero_columns: set[tuple[str, str]] = field(default_factory=set)
    #: The experiment arm of the table's runs (``benchmark`` is then ``<benchmark> (<arm>)``).
    arm: str | None = None

    @property
    def benchmark_name(self) -> str:
        """The benchmark without the arm."""
        suffix = f" ({self.arm})"
        return self.benchmark[: -len(suffix)] if self.arm is not None and self.benchmark.endswith(suffix) \
            else self.benchmark

    @property
    def over(self) -> str:
        """What ± spans: ``seeds`` or ``orders``."""
        return "seeds" if self.order is not None else "orders"

    @property
    def order_text(self) -> str:
        return " → ".join(self.order) if self.order is not None else ALL_ORDERS

    @property
    def title(self) -> str:
        if self.order is None:
            return f"{self.benchmark}: mean over {len(self.orders)} task orders"
        return f"{self.benchmark}: {self.order_text}"


@dataclass
class Section:
    """One benchmark and task order: its table and the per-phase analyses."""

    benchmark: str
    order: tuple[str, ...]
    table: Table
    #: row label → the row's runs by seed, in table order.
    runs: dict[str, dict[int, RunRecord]]
    #: task → its main metric (the first of the task's metrics in performance.json).
    main_metrics: dict[str, str]
    #: row label → task → per phase (1..T) the main metric over seeds (None before it is learned).
    curves: dict[str, dict[str, list[Stat | None]]]
    #: row label → per phase (1..T) Δ and MR against the baseline's same phase (None: no value).
    phase_delta: dict[str, list[Stat | None]]
    phase_rank: dict[str, list[Stat | None]]
    #: row label → per phase (1..T) → task → mean relative change (%) from right after learning it.
    heat: dict[str, list[dict[str, Stat]]]
    #: row label → task → forgetting / BWT (%) over seeds; ``"average"`` = mean over tasks.
    forgetting: dict[str, dict[str, Stat]]
    bwt: dict[str, dict[str, Stat]]
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.benchmark}: {' → '.join(self.order)}"

    @property
    def slug(self) -> str:
        """File-name stem: ``<benchmark>-<task>-<task>…``; long orders (e.g. Taskonomy's ten tasks)
        shorten to ``<benchmark>-<first task>-<T>tasks-<hash of the order>``."""
        full = _slug(f"{self.benchmark}-{'-'.join(self.order)}")
        if len(full) <= 64:
            return full
        digest = hashlib.sha256(" ".join(self.order).encode()).hexdigest()[:8]
        return _slug(f"{self.benchmark}-{self.order[0]}-{len(self.order)}tasks-{digest}")

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.table.rows]

    def first_seed_runs(self) -> dict[str, RunRecord]:
        """One run per row, of the seed of the table's first run (else the row's first seed)."""
        seeds = [s for runs in self.runs.values() for s in runs]
        base = self.runs.get(self.table.baseline_label, {})
        seed = min(base) if base else (min(seeds) if seeds else 0)
        return {label: runs.get(seed, runs[min(runs)]) for label, runs in self.runs.items() if runs}


@dataclass
class BenchmarkReport:
    benchmark: str
    sections: list[Section]
    #: The mean over the orders (with a single order: that order's values; CSV ``all orders`` rows).
    overall: Table

    @property
    def several_orders(self) -> bool:
        return len(self.sections) > 1


@dataclass
class Experiment:
    root: Path
    baseline: str
    benchmarks: list[BenchmarkReport]
    records: list[RunRecord]
    #: (run directory, why) for run directories left out (unfinished runs).
    skipped: list[tuple[Path, str]]
    #: One line per distinct encoder set-up, e.g. ``tiny, random initialisation``; or per row.
    setup: list[str]

    @property
    def sections(self) -> list[Section]:
        return [s for b in self.benchmarks for s in b.sections]

    @property
    def tables(self) -> list[Table]:
        out: list[Table] = []
        for bench in self.benchmarks:
            if bench.several_orders:
                out.append(bench.overall)
            out += [s.table for s in bench.sections]
        return out


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return "-".join(part for part in keep.split("-") if part)


# ----------------------------------------------------------------------------- discovery and loading
def find_run_dirs(root: str | Path) -> list[Path]:
    """Every directory under ``root`` (``root`` included) holding ``config.yaml`` and
    ``performance.json``, sorted; a run directory's own sub-folders are not searched."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "config.yaml" in filenames and "performance.json" in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)


def _unfinished(run_dir: Path) -> str | None:
    """Why ``run_dir`` holds an unfinished run, or None (a damaged file is :func:`load_run`'s to report)."""
    try:
        performance = json.loads((run_dir / "performance.json").read_text())
        phases, tasks = performance["phases"], performance["tasks"]
        if not phases:
            return "no phase evaluated yet"
        last = phases[-1]["metrics"]
        missing = [t for t in tasks if t not in last]
        if missing:
            return f"unfinished: {len(phases)} of {len(tasks)} phases evaluated"
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return None


def _tensor_bytes(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _read_checkpoint(record: RunRecord) -> None:
    import torch

    phase = record.run.performance["phases"][-1].get("phase", len(record.matrix))
    path = record.path / "checkpoints" / f"phase-{phase}.pt"
    if not path.is_file():
        record.problems.append(("no checkpoint of the last phase", "params and stored"))
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = state["model"]
        record.params = sum(v.numel() for k, v in model.items()
                            if isinstance(v, torch.Tensor) and not k.endswith(BUFFER_SUFFIXES))
        record.state_bytes = _tensor_bytes(state.get("method") or {})
    except Exception as exc:  # a damaged checkpoint costs the cost columns, not the report
        record.problems.append((f"{path.name} cannot be read ({' '.join(str(exc).split())[:120]})",
                                "params and stored"))


def _read_events(record: RunRecord) -> None:
    from lhl.engine.events import read_events

    path = record.path / "events.jsonl"
    if not path.is_file():
        record.problems.append(("no events.jsonl", "step"))
        return
    try:
        events = read_events(path, current=True)
    except (OSError, UnicodeDecodeError) as exc:
        record.problems.append((f"events.jsonl cannot be read ({exc})", "step"))
        return
    starts: dict[int, float] = {}
    epochs: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        phase, kind = event.get("phase"), event.get("event")
        if not isinstance(phase, int) or not isinstance(event.get("time"), (int, float)):
            continue
        if kind == "phase_start":
            starts[phase] = float(event["time"])
            epochs[phase] = []
        elif kind == "epoch_end" and phase in starts:
            epochs[phase].append(event)
    epochs = {p: e for p, e in epochs.items() if e}
    record.epochs = epochs
    if not epochs:
        record.problems.append(("no epoch_end event in events.jsonl", "step"))
        return
    record.train_seconds = sum(float(e[-1]["time"]) - starts[p] for p, e in epochs.items())
    record.steps = sum(int(ev.get("steps") or 0) for e in epochs.values() for ev in e)


def _record(run: Run) -> RunRecord:
    record = RunRecord(run=run, matrix=matrix_from_performance(run.performance))
    _read_checkpoint(record)
    _read_events(record)
    return record


# ----------------------------------------------------------------------------- per-order statistics
def _row_order(groups: Sequence[Group]) -> list[Group]:
    def key(item: tuple[int, Group]) -> tuple[int, int]:
        index, group = item
        method = group.first.method
        return (LEADING_METHODS.index(method) if method in LEADING_METHODS else len(LEADING_METHODS), index)

    return [g for _, g in sorted(enumerate(groups), key=key)]


def _phase_result(record: RunRecord, phase: int, total: int) -> dict[str, dict[str, float]] | None:
    """The run's result after ``phase`` of ``total``; a one-phase run (joint) only has the last."""
    if len(record.matrix) == total:
        return record.matrix[phase - 1]
    return record.matrix[-1] if phase == total else None


def _main_metrics(records: Sequence[RunRecord], order: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for task in order:
        for record in records:
            given = (record.run.performance.get("directions") or {}).get(task) or record.run.final.get(task)
            if given:
                out[task] = next(iter(given))
                break
    return out


def _section(benchmark: str, order: tuple[str, ...], groups: list[Group], records: dict[str, RunRecord],
             baseline: str) -> Section:
    name = f"{benchmark}: {' → '.join(order)}"
    groups = _row_order(groups)
    runs = [r for g in groups for r in g.runs]
    directions = merged_directions(runs)
    base = find_baseline(groups, baseline, f"the {name} runs")
    base_label = base.label if base else baseline
    columns = list(dict.fromkeys((t, m) for t in order for r in runs for m in r.final.get(t, {})))
    by_row = {g.label: {s: records[str(r.path)] for s, r in g.by_seed.items()} for g in groups}
    base_runs = by_row[base.label] if base else {}
    notes: list[str] = []
    if base is not None:
        for group in groups:
            for run in group.runs:
                for ref in base_runs.values():
                    for task, metrics in ref.run.final.items():
                        for metric in metrics:
                            if metric not in run.final.get(task, {}):
                                raise ReportError(
                                    f"{str(run.path / 'performance.json')!r}: no metric {metric!r} of task "
                                    f"{task!r} in the last phase, which the baseline run {str(ref.path)!r} has")

    # Δ and step time per seed against the baseline run of the same seed
    deltas: dict[str, Stat] = {}
    step_rel: dict[str, Stat] = {}
    undefined_zero: dict[tuple[str, str], set[int]] = {}
    undefined_other: list[str] = []
    undefined_tasks: dict[str, set[int]] = {}
    for group in groups:
        deltas[group.label], step_rel[group.label] = Stat(), Stat()
        own = by_row[group.label]
        matched = [s for s in own if s in base_runs]
        for seed in matched:
            run, ref = own[seed].run, base_runs[seed].run
            delta = delta_noting_undefined(group.label, base_label, seed, run.final, ref.final, directions,
                                           undefined_zero, undefined_other, undefined_tasks)
            if math.isnan(delta):
                notes.append(f"Δ for {group.label}, seed {seed}: {NA} (no task has a defined relative change); "
                             f"left out of its mean")
            deltas[group.label].add(delta)
            mine, theirs = own[seed].step_seconds, base_runs[seed].step_seconds
            if mine is not None and theirs:
                step_rel[group.label].add(mine / theirs)
        missing = sorted(set(own) - set(base_runs))
        if base is not None and missing:
            if matched:
                notes.append(f"Δ and step time for {group.label} over {seeds_text(matched)} only: {base_label} "
                             f"has {no_runs_text(missing)}")
            else:
                notes.append(f"Δ and step time for {group.label}: {NA}, {base_label} has no run with its "
                             f"{seeds_text(missing)}")

    # MR per seed over the seeds every row has
    ranks: dict[str, Stat] = {g.label: Stat() for g in groups}
    if base is not None:
        common = sorted(set.intersection(*(set(by_row[g.label]) for g in groups)))
        every = sorted(set().union(*(set(by_row[g.label]) for g in groups)))
        if not common:
            notes.append(f"MR: {NA}, no seed is shared by every row")
        elif common != every:
            notes.append(f"MR over {seeds_text(common)} only (the seeds every row has)")
        for seed in common:
            results = {g.label: by_row[g.label][seed].run.final for g in groups}
            for label, value in mean_rank(results, directions, base_label).items():
                ranks[label].add(value)
            kept = ranked_tasks(results, directions, base_label)
            left_out = [t for t in base_runs[seed].run.final if t not in kept]
            if left_out:
                notes.append(f"MR for seed {seed} ranks the tasks with a defined Δ in every row; it leaves out "
                             f"{', '.join(left_out)}")
    else:
        notes.append(f"Δ, MR and step time: {NA}, no {baseline} run among the {name} runs")

    first, last = notes_on_undefined(base_label, undefined_zero, undefined_tasks, undefined_other)
    notes[:0] = first
    notes += last
    every_seed = sorted(set().union(*(set(rs) for rs in by_row.values())))
    short: dict[tuple[int, ...], list[str]] = {}
    for group in groups:
        missing = tuple(s for s in every_seed if s not in by_row[group.label])
        if missing:
            short.setdefault(missing, []).append(group.label)
    for missing, labels in short.items():
        notes.append(f"{', '.join(labels)} {'has' if len(labels) == 1 else 'have'} {no_runs_text(missing)}: "
                     f"{'its' if len(labels) == 1 else 'their'} cells are over the other seeds")
    problems: dict[str, list[str]] = {}
    for group in groups:
        for seed, record in by_row[group.label].items():
            for kind, column in record.problems:
                problems.setdefault(f"{kind} ({column} {NA})", []).append(f"{group.label} seed {seed}")
    total_runs = sum(len(rs) for rs in by_row.values())
    for text, where in problems.items():
        notes.append(f"{text}: {'every run' if len(where) == total_runs else ', '.join(where)}")

    rows = []
    for group in groups:
        own = by_row[group.label]
        metrics = {(t, m): Stat([own[s].run.final[t][m] for s in own if m in own[s].run.final.get(t, {})])
                   for t, m in columns}
        setups = list(dict.fromkeys(r.setup for r in own.values()))
        rows.append(TableRow(
            label=group.label, method=group.first.method, seeds=sorted(own), metrics=metrics,
            delta=deltas[group.label], rank=ranks[group.label],
            params=stat(r.params for r in own.values()), state_bytes=stat(r.state_bytes for r in own.values()),
            step_seconds=stat(r.step_seconds for r in own.values()), step_rel=step_rel[group.label],
            setup="; ".join(setups), orders=[order], train_seconds=stat(r.train_seconds for r in own.values())))
    table = Table(benchmark=benchmark, order=order, orders=[order], columns=columns, directions=directions,
                  rows=rows, baseline_label=base_label, notes=notes, zero_columns=set(undefined_zero),
                  arm=groups[0].first.arm if groups else None)

    # per phase: main-metric curves, Δ and MR against the baseline's same phase
    total = len(order)
    main = _main_metrics([r for rs in by_row.values() for r in rs.values()], order)
    curves: dict[str, dict[str, list[Stat | None]]] = {}
    for group in groups:
        own = by_row[group.label]
        curves[group.label] = {}
        for task, metric in main.items():
            series: list[Stat | None] = []
            for phase in range(1, total + 1):
                values = [res[task][metric] for r in own.values()
                          if (res := _phase_result(r, phase, total)) is not None and task in res]
                series.append(stat(values) if values else None)
            curves[group.label][task] = series
    phase_delta: dict[str, list[Stat | None]] = {g.label: [None] * total for g in groups}
    phase_rank: dict[str, list[Stat | None]] = {g.label: [None] * total for g in groups}
    section_notes: list[str] = []
    if base is not None:
        for phase in range(1, total + 1):
            refs = {s: res for s, r in base_runs.items() if (res := _phase_result(r, phase, total)) is not None}
            if not refs:
                continue
            present = {}
            for group in groups:
                results = {s: res for s, r in by_row[group.label].items()
                           if s in refs and (res := _phase_result(r, phase, total)) is not None}
                if results:
                    present[group.label] = results
                    phase_delta[group.label][phase - 1] = stat(
                        relative_improvement(res, refs[s], directions) for s, res in results.items())
            common = sorted(set.intersection(*(set(v) for v in present.values()))) if present else []
            ranked = {label: Stat() for label in present}
            for seed in common:
                ranking = mean_rank({label: v[seed] for label, v in present.items()}, directions, base_label)
                for label, value in ranking.items():
                    ranked[label].add(value)
            for label, value in ranked.items():
                phase_rank[label][phase - 1] = value
        one_phase = [g.label for g in groups if total > 1 and any(len(r.matrix) == 1 for r in by_row[g.label].values())]
        if one_phase:
            section_notes.append(f"{', '.join(one_phase)} learn{'s' if len(one_phase) == 1 else ''} every task in one "
                                 f"phase: shown after the last phase only")

    # heat maps, forgetting and backward transfer
    heat: dict[str, list[dict[str, Stat]]] = {}
    forget: dict[str, dict[str, Stat]] = {}
    transfer: dict[str, dict[str, Stat]] = {}
    for group in groups:
        own = [r for r in by_row[group.label].values() if len(r.matrix) == total]
        if not own or total < 2:
            continue
        heat[group.label] = []
        for phase in range(1, total + 1):
            cells: dict[str, Stat] = {}
            for record in own:
                matrix = record.matrix[:phase] + [record.matrix[phase - 1]]
                for task, value in backward_transfer(matrix, directions).items():
                    cells.setdefault(task, Stat()).add(value)
            heat[group.label].append(cells)
        forget[group.label], transfer[group.label] = {}, {}
        for out, function in ((forget[group.label], forgetting), (transfer[group.label], backward_transfer)):
            for record in own:
                per_task = function(record.matrix, directions)
                for task, value in per_task.items():
                    out.setdefault(task, Stat()).add(value)
                out.setdefault("average", Stat()).add(mean_defined(per_task.values()))
    return Section(benchmark=benchmark, order=order, table=table, runs=by_row, main_metrics=main, curves=curves,
                   phase_delta=phase_delta, phase_rank=phase_rank, heat=heat, forgetting=forget, bwt=transfer,
                   notes=section_notes)


# ----------------------------------------------------------------------------- over orders
def _overall(benchmark: str, sections: Sequence[Section]) -> Table:
    orders = [s.order for s in sections]
    columns = list(dict.fromkeys(c for s in sections for c in s.table.columns))
    directions: dict[str, dict[str, bool]] = {}
    for s in sections:
        for task, metrics in s.table.directions.items():
            directions.setdefault(task, {}).update(metrics)
    labels: dict[str, list[tuple[Section, TableRow]]] = {}
    for s in sections:
        for row in s.table.rows:
            labels.setdefault(row.label, []).append((s, row))
    baseline_labels = list(dict.fromkeys(s.table.baseline_label for s in sections))
    arm = sections[0].table.arm if sections else None
    own = f", seed and arm ({arm})" if arm is not None else " and seed"
    notes = [f"Each cell is the mean over the task orders of the per-order value (Δ, MR and step time per "
             f"order first, each against the baseline of its own order{own}); ± is the standard deviation "
             f"over the orders"]
    if len(baseline_labels) > 1:
        notes.append(f"the baseline row differs between orders: {', '.join(baseline_labels)}")
    rows = []
    for label, entries in labels.items():
        if len(entries) < len(sections):
            there = [" → ".join(s.order) for s, _ in entries]
            notes.append(f"{label} ran in {len(entries)} of {len(sections)} orders ({'; '.join(there)}): its "
                         f"cells average over those")
        first = entries[0][1]
        rows.append(TableRow(
            label=label, method=first.method,
            seeds=sorted({seed for _, row in entries for seed in row.seeds}),
            metrics={c: stat(row.metrics[c].mean for _, row in entries if c in row.metrics) for c in columns},
            delta=stat(row.delta.mean for _, row in entries), rank=stat(row.rank.mean for _, row in entries),
            params=stat(row.params.mean for _, row in entries),
            state_bytes=stat(row.state_bytes.mean for _, row in entries),
            step_seconds=stat(row.step_seconds.mean for _, row in entries),
            step_rel=stat(row.step_rel.mean for _, row in entries),
            setup="; ".join(dict.fromkeys(row.setup for _, row in entries)),
            orders=[s.order for s, _ in entries], train_seconds=stat(row.train_seconds.mean for _, row in entries)))
    mr_sets = {tuple(r.label for r in s.table.rows if r.rank.n) for s in sections}
    if len(mr_sets) > 1:
        notes.append("the orders rank different sets of rows: MR is averaged over orders whose tables differ")
    zero = set().union(*(s.table.zero_columns for s in sections))
    if zero:
        notes.append(f"{MARK} a zero baseline value in some order leaves these metrics out of that order's Δ and "
                     f"MR: {', '.join(f'{t}/{m}' for t, m in columns if (t, m) in zero)} (see the per-order notes)")
    return Table(benchmark=benchmark, order=None, orders=orders, columns=columns, directions=directions,
                 rows=rows, baseline_label=" / ".join(baseline_labels), notes=notes, zero_columns=zero,
                 arm=sections[0].table.arm if sections else None)


# ----------------------------------------------------------------------------- entry point
def collect_experiment(root: str | Path, baseline: str = "vanilla") -> Experiment:
    """Read every finished run under ``root`` and compute the report's statistics.

    Unfinished runs (a phase not evaluated yet) are left out and listed in
    :attr:`Experiment.skipped`; any other unreadable run is an error, as in ``lhl compare``.

    Raises:
        ReportError: ``root`` is not a directory or holds no finished run; a damaged run
            directory, duplicates, rows named alike that differ, an ambiguous baseline, or no
            baseline run anywhere (the message names the path or lists the rows).
    """
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"{str(root)!r}: not a directory (expected an experiment directory holding run "
                          f"directories)")
    dirs = find_run_dirs(root)
    if not dirs:
        raise ReportError(f"{str(root)!r}: no run directory under it (a run directory holds config.yaml and "
                          f"performance.json)")
    skipped: list[tuple[Path, str]] = []
    records: list[RunRecord] = []
    for run_dir in dirs:
        reason = _unfinished(run_dir)
        if reason is not None:
            skipped.append((run_dir, reason))
            continue
        records.append(_record(load_run(run_dir)))
    if not records:
        raise ReportError(f"{str(root)!r}: no finished run under it ({len(skipped)} unfinished: "
                          f"{', '.join(str(p) for p, _ in skipped[:3])}{', …' if len(skipped) > 3 else ''})")
    sections = grouped_sections([r.run for r in records])
    if not any(baseline in g.labels() for groups in sections.values() for g in groups):
        methods = sorted({r.run.method for r in records})
        labels = sorted({g.label for groups in sections.values() for g in groups} - set(methods))
        raise ReportError(
            f"no baseline run {baseline!r} under {str(root)!r}: the runs are of method(s) {', '.join(methods)}"
            + (f" (rows {', '.join(labels)})" if labels else "") + "; pass --baseline with one of them")
    by_path = {str(r.path): r for r in records}
    per_benchmark: dict[str, list[Section]] = {}
    for (benchmark, order), groups in sections.items():
        per_benchmark.setdefault(benchmark, []).append(_section(benchmark, order, groups, by_path, baseline))
    benchmarks = [BenchmarkReport(b, s, _overall(b, s)) for b, s in per_benchmark.items()]
    setups = list(dict.fromkeys(r.setup for r in records))
    if len(setups) == 1:
        setup = [setups[0]]
    else:
        rows = [(s.table.arm, row.label, row.setup) for b in benchmarks for s in b.sections for row in s.table.rows]
        per_arm: dict[str | None, set[str]] = {}
        for arm, _, row_setup in rows:
            per_arm.setdefault(arm, set()).add(row_setup)
        if None not in per_arm and all(len(v) == 1 for v in per_arm.values()):  # arms differ, rows within agree
            setup = [f"every row of arm {arm}: {next(iter(v))}" for arm, v in per_arm.items()]
        else:
            setup = list(dict.fromkeys(f"{label}{f' ({arm})' if arm is not None else ''}: {row_setup}"
                                       for arm, label, row_setup in rows))
    return Experiment(root=root, baseline=baseline, benchmarks=benchmarks, records=records, skipped=skipped,
                      setup=setup)
