"""Text and Markdown renderings of a run's performance matrix."""

from __future__ import annotations

from typing import Any

from lhl.metrics import backward_transfer, directions_for, forgetting, matrix_from_performance

ARROW = {True: "↑", False: "↓"}


def _fmt(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"


def format_phase_metrics(phase: int, label: str, metrics: dict[str, dict[str, float]]) -> str:
    """One line per seen task: ``  segmentation: miou=41.20 pixel_acc=70.11``."""
    lines = [f"after phase {phase} ({label}):"]
    for task, values in metrics.items():
        lines.append(f"  {task}: " + " ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
    return "\n".join(lines)


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
    template: dict[str, dict[str, float]] = {}
    for task, metric in columns:
        template.setdefault(task, {})[metric] = 0.0
    directions = directions_for(template)
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


def summary_markdown(performance: dict[str, Any], config: Any) -> str:
    """``summary.md``: the matrix, final metrics, forgetting and backward transfer."""
    header, rows = _rows(performance)
    parts = [f"# {performance['method']} on {performance['benchmark']}", "",
             f"Tasks: {' → '.join(performance['tasks'])}; seed {config.seed}; encoder {config.model.encoder} "
             f"({'weights ' + config.model.weights if config.model.weights else 'random initialisation'}).", "",
             "## Performance matrix", "", markdown_table(header, rows), ""]
    matrix = matrix_from_performance(performance)
    if len(matrix) > 1:
        directions = directions_for(matrix[-1])
        f = forgetting(matrix, directions)
        b = backward_transfer(matrix, directions)
        parts += ["## Forgetting and backward transfer (relative %, per task)", "",
                  markdown_table(["task", "forgetting", "BWT"],
                                 [[t, f"{f[t]:.2f}", f"{b[t]:.2f}"] for t in f]), ""]
    return "\n".join(parts)
