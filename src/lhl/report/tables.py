"""Text and Markdown renderings of a run's performance matrix, and the run's ``summary.md``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from lhl.errors import ReportError
from lhl.metrics.summary import (
    mean_defined,
    matrix_from_performance,
    metric_backward_transfer,
    metric_forgetting,
)

ARROW = {True: "↑", False: "↓"}

#: LEGACY ONLY — the directions of the built-in tasks' metric keys, for ``performance.json`` files
#: written before runs recorded ``"directions"`` (every run now writes each task's own
#: :attr:`lhl.tasks.Task.higher_is_better` there). Never consulted for a metric the file's
#: ``"directions"`` covers, and never extended: a new task's metrics are found in the file.
LEGACY_DIRECTIONS: dict[str, bool] = {
    "miou": True,
    "pixel_acc": True,
    "abs_err": False,
    "rel_err": False,
    "mean": False,
    "median": False,
    "within_11.25": True,
    "within_22.5": True,
    "within_30": True,
    "loss": False,
}

#: Printed for an undefined value (a relative change with a zero or non-finite reference).
NA = "n/a"
#: Footnote mark of a cell that leaves out undefined values, or is itself undefined.
MARK = "†"


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"


def fmt_percent(value: float) -> str:
    """A relative value in percent with 2 decimals, or ``n/a`` when undefined (NaN)."""
    if math.isnan(value):
        return NA
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def format_phase_metrics(phase: int, label: str, metrics: dict[str, dict[str, float]]) -> str:
    """One line per seen task: ``  segmentation: miou=41.20 pixel_acc=70.11``."""
    lines = [f"after phase {phase} ({label}):"]
    for task, values in metrics.items():
        lines.append(f"  {task}: " + " ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
    return "\n".join(lines)


def metric_directions(
    performance: Mapping[str, Any], columns: Iterable[tuple[str, str]], where: str = "performance.json"
) -> dict[str, dict[str, bool]]:
    """Direction (``True``: higher is better) of every ``(task, metric)`` of ``columns``.

    Read from ``performance["directions"]`` (``{task: {metric: bool}}``), which the run wrote from
    its tasks' declarations; a file written before runs recorded it falls back to
    :data:`LEGACY_DIRECTIONS` (the built-in metric keys).

    Raises:
        ReportError: ``directions`` is malformed, or a metric's direction is in neither place
            (the message starts with ``where``).
    """
    given = performance.get("directions")
    if given is not None and not (
        isinstance(given, Mapping)
        and all(isinstance(v, Mapping) and all(isinstance(b, bool) for b in v.values()) for v in given.values())
    ):
        raise ReportError(
            f"{where}: 'directions' must map each task to {{metric: true/false (higher is better)}}, "
            f"got {given!r}")
    out: dict[str, dict[str, bool]] = {}
    for task, metric in columns:
        if given is not None and metric in given.get(task, {}):
            value = given[task][metric]
        elif metric in LEGACY_DIRECTIONS:
            value = LEGACY_DIRECTIONS[metric]
        else:
            raise ReportError(
                f"{where}: unknown direction of metric {metric!r} of task {task!r}: add it to the "
                f"file's 'directions' ({{task: {{metric: true if higher is better}}}}); known "
                f"metrics: {', '.join(sorted(LEGACY_DIRECTIONS))}")
        out.setdefault(task, {})[metric] = value
    return out


def _columns(performance: dict[str, Any]) -> list[tuple[str, str]]:
    columns: list[tuple[str, str]] = []
    for phase in performance["phases"]:
        for task, values in phase["metrics"].items():
            for metric in values:
                if (task, metric) not in columns:
                    columns.append((task, metric))
    order = {t: i for i, t in enumerate(performance["tasks"])}
    return sorted(columns, key=lambda c: order.get(c[0], len(order)))


def _rows(performance: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    columns = _columns(performance)
    directions = metric_directions(performance, columns)
    header = ["after phase"] + [f"{t}/{m} {ARROW[directions[t][m]]}" for t, m in columns]
    rows = []
    for phase in performance["phases"]:
        cells = [f"{phase['phase']} ({phase['task']})"]
        for task, metric in columns:
            value = phase["metrics"].get(task, {}).get(metric)
            cells.append("" if value is None else _fmt(value))
        rows.append(cells)
    return header, rows


def format_performance_matrix(performance: dict[str, Any]) -> str:
    """The performance matrix as an aligned plain-text table (rows: phases; columns: task/metric)."""
    header, rows = _rows(performance)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


FORGETTING_CAPTION = """\
Relative values in %, one row per task learned before the last phase (the last task has nothing
to forget yet); σ = +1 for a ↑ metric, −1 for a ↓ metric.

- **forgetting %**: mean over the task's metrics of σ · (best − final) / |best| · 100, where
  *best* is the metric's best value after the phases from the one that learned the task to the
  one before the last, and *final* its value after the last phase. Positive = forgot.
- **BWT %** (backward transfer): mean over the task's metrics of σ · (final − learned) / |learned|
  · 100, where *learned* is the value right after the phase that learned the task. Positive = the
  task improved since, negative = it was forgotten.
- **average**: mean over the tasks of the table (defined values only)."""


def _undefined_reason(matrix: list[dict[str, dict[str, float]]], task: str, metric: str, best: bool) -> str:
    values = [r[task][metric] for r in matrix if metric in r.get(task, {})]
    if not all(math.isfinite(v) for v in values):
        return "a value is not finite"
    return "best earlier value is 0" if best else f"value after learning {task} is 0"


def _forgetting_section(performance: dict[str, Any]) -> list[str]:
    matrix = matrix_from_performance(performance)
    if len(matrix) < 2:
        return []
    directions = metric_directions(performance, [(t, m) for t, ms in matrix[-1].items() for m in ms])
    per_metric = {"forgetting": metric_forgetting(matrix, directions),
                  "BWT": metric_backward_transfer(matrix, directions)}
    # (task, metric) -> {"forgetting": reason, "BWT": reason} for the undefined ones
    left_out: dict[tuple[str, str], dict[str, str]] = {}
    for what, values in per_metric.items():
        for task, metrics in values.items():
            for metric, value in metrics.items():
                if math.isnan(value):
                    reason = _undefined_reason(matrix, task, metric, best=what == "forgetting")
                    left_out.setdefault((task, metric), {})[what] = reason
    tasks = list(per_metric["forgetting"])
    rows: list[list[str]] = []
    per_task = {what: {t: mean_defined(v.values()) for t, v in values.items()}
                for what, values in per_metric.items()}
    for task in tasks:
        cells = [task]
        for what in per_metric:
            value = per_task[what][task]
            partial = any(math.isnan(v) for v in per_metric[what][task].values())
            cells.append(fmt_percent(value) + (f" {MARK}" if partial else ""))
        rows.append(cells)
    average_cells = ["average"]
    for what in per_metric:
        some_undefined = any(math.isnan(v) for v in per_task[what].values())
        average_cells.append(fmt_percent(mean_defined(per_task[what].values()))
                             + (f" {MARK}" if some_undefined else ""))
    rows.append(average_cells)
    parts = ["## Forgetting and backward transfer", "", FORGETTING_CAPTION, "",
             markdown_table(["task", "forgetting %", "BWT %"], rows), ""]
    if left_out:
        parts.append(
            f"{MARK} {NA} = undefined: a relative change whose reference value is 0 (or that involves "
            f"a non-finite value). An undefined metric is left out of its task's mean; a task without "
            f"a defined metric is {NA} and left out of the average. Left out:")
        parts.append("")
        by_reason: dict[tuple[str, str], list[str]] = {}
        for (task, metric), reasons in left_out.items():
            if len(reasons) == 2 and len(set(reasons.values())) == 1:
                why = f"{next(iter(reasons.values()))} (forgetting and BWT)"
            else:
                why = "; ".join(f"{what}: {reason}" for what, reason in reasons.items())
            by_reason.setdefault((task, why), []).append(metric)
        for (task, why), metrics in by_reason.items():
            parts.append(f"- {task}: {', '.join(metrics)} — {why}")
        undefined_tasks = []
        for task in tasks:
            columns = [w for w in per_task if math.isnan(per_task[w][task])]
            if columns:
                undefined_tasks.append(f"{task} ({' and '.join(columns)})")
        if undefined_tasks:
            parts += ["", f"The average leaves out {', '.join(undefined_tasks)}."]
        parts.append("")
    return parts


def summary_markdown(performance: dict[str, Any], config: Any) -> str:
    """``summary.md``: the performance matrix, then forgetting and backward transfer per task
    (with an average row; undefined relative values print ``n/a`` with a footnote)."""
    header, rows = _rows(performance)
    parts = [f"# {performance['method']} on {performance['benchmark']}", "",
             f"Tasks: {' → '.join(performance['tasks'])}; seed {config.seed}; encoder {config.model.encoder} "
             f"({'weights ' + config.model.weights if config.model.weights else 'random initialisation'}).", "",
             "## Performance matrix", "",
             "Test-set metrics after each phase (row: the phase and the task it learned; ↑ higher is "
             "better, ↓ lower is better).", "",
             markdown_table(header, rows), ""]
    parts += _forgetting_section(performance)
    return "\n".join(parts)
