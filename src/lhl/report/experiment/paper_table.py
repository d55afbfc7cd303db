"""The paper-style table (Tables 1, 2, 7, 8) of an experiment as Markdown, LaTeX (booktabs) and CSV.

Columns: every task's metrics after the last phase (mean ± std over seeds, or over orders for the
"mean over orders" table), Δ against the baseline (eq. 11, per seed then aggregated) and MR, then
the costs: parameters of encoder and heads, bytes of the method's stored state (exemplars,
bases, …), the training step time relative to the baseline and the training time of a run. The
best value of each metric, Δ and MR column is marked (bold) among the continual-learning rows;
``joint``, trained on every task at once (the upper bound), is not marked.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from lhl.report.experiment.collect import ALL_ORDERS, Experiment, Stat, Table
from lhl.report.tables import ARROW, MARK, NA, markdown_table

__all__ = ["markdown", "markdown_for", "latex", "latex_for", "latex_escape", "csv_text", "csv_rows", "csv_fields",
           "header_cells", "row_cells", "best_rows", "format_value", "format_stat", "CAPTION"]

#: Rows never marked best: the upper bound.
UNMARKED_METHODS = ("joint",)

CAPTION = (
    "Metrics after the last phase, mean ± std over seeds (↑ higher is better, ↓ lower is better). "
    "Δ: eq. 11's mean relative improvement over the baseline, per seed against the baseline run of the "
    "same seed, then mean ± std; MR: mean rank over tasks (per seed, over the seeds every row has). "
    "params: parameters of encoder and heads in the final checkpoint (buffers excluded); stored: bytes of "
    "every tensor of the method's state in the final checkpoint (exemplars, bases, Fisher/importances, "
    "sampler state); step: training time per step (phase start to last epoch end, over all phases) "
    "relative to the baseline run of the same seed; time: training time of a run (the same span, summed over "
    "phases; evaluation and checkpoints excluded), mean over seeds. Bold: best per column, joint (the upper "
    "bound) excluded."
)


# ----------------------------------------------------------------------------- numbers
def _decimals(value: float) -> int:
    if value == 0 or not math.isfinite(value):
        return 2
    return max(0, min(6, 3 - math.floor(math.log10(abs(value)))))


def format_value(value: float, decimals: int | None = None) -> str:
    """Four significant digits in fixed notation (``17.35``, ``0.9738``, ``1234``); ``n/a`` for NaN."""
    if math.isnan(value):
        return NA
    text = f"{value:.{_decimals(value) if decimals is None else decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_stat(s: Stat, decimals: int | None = None, sep: str = " ± ") -> str:
    """``mean ± std`` (std with the mean's decimals), ``mean`` for one value, ``n/a`` for none."""
    if s.n == 0:
        return NA
    places = _decimals(s.mean) if decimals is None else decimals
    if s.n == 1:
        return format_value(s.mean, places)
    return f"{format_value(s.mean, places)}{sep}{format_value(s.std, places)}"


def _metric_cell(s: Stat | None, sep: str = " ± ") -> str:
    if s is None or not s.values:
        return ""
    if any(math.isnan(v) for v in s.values):
        return NA
    return format_stat(s, sep=sep)


def _count(value: float) -> str:
    if math.isnan(value):
        return NA
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def _bytes(value: float) -> str:
    if math.isnan(value):
        return NA
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.0f} B"


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``1.2 h``; ``n/a`` for NaN."""
    if math.isnan(seconds):
        return NA
    if seconds < 100:
        return f"{seconds:.3g} s"
    if seconds < 6000:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def _ratio(s: Stat, sep: str = " ± ") -> str:
    if s.n == 0:
        return NA
    if s.n == 1:
        return f"{s.mean:.2f}×"
    return f"{s.mean:.2f}{sep}{s.std:.2f}×"


# ----------------------------------------------------------------------------- best cells
def best_rows(table: Table) -> dict[str, set[str]]:
    """Column key (``task/metric``, ``delta``, ``mr``) → labels of the rows holding its best value
    (ties within 1e-9 relative all marked, nothing when every row ties; joint excluded)."""
    candidates = [r for r in table.rows if r.method not in UNMARKED_METHODS]
    out: dict[str, set[str]] = {}

    def mark(key: str, values: dict[str, float], higher: bool) -> None:
        values = {k: v for k, v in values.items() if math.isfinite(v)}
        if len(values) < 2:
            return
        best = max(values.values()) if higher else min(values.values())
        marked = {k for k, v in values.items() if math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)}
        if len(marked) < len(values):  # a column where every row ties marks nothing
            out[key] = marked

    for task, metric in table.columns:
        values = {r.label: r.metrics[(task, metric)].mean for r in candidates
                  if (task, metric) in r.metrics and r.metrics[(task, metric)].values}
        mark(f"{task}/{metric}", values, table.directions[task][metric])
    mark("delta", {r.label: r.delta.mean for r in candidates if r.delta.n}, True)
    mark("mr", {r.label: r.rank.mean for r in candidates if r.rank.n}, False)
    return out


# ----------------------------------------------------------------------------- Markdown
def header_cells(table: Table) -> list[str]:
    cells = ["method", "seeds"]
    cells += [f"{t}/{m} {ARROW[table.directions[t][m]]}" + (f" {MARK}" if (t, m) in table.zero_columns else "")
              for t, m in table.columns]
    cells += [f"Δ vs {table.baseline_label} %", "MR", "params", "stored", f"step vs {table.baseline_label}", "time"]
    return cells


def row_cells(table: Table, bold=lambda s: s, sep: str = " ± ") -> list[list[str]]:
    best = best_rows(table)
    rows = []
    for row in table.rows:
        cells = [row.label, ",".join(map(str, row.seeds))]
        for task, metric in table.columns:
            text = _metric_cell(row.metrics.get((task, metric)), sep)
            cells.append(bold(text) if row.label in best.get(f"{task}/{metric}", ()) else text)
        delta = format_stat(row.delta, 2, sep)
        rank = format_stat(row.rank, 2, sep)
        cells.append(bold(delta) if row.label in best.get("delta", ()) else delta)
        cells.append(bold(rank) if row.label in best.get("mr", ()) else rank)
        cells += [_count(row.params.mean), _bytes(row.state_bytes.mean), _ratio(row.step_rel, sep),
                  duration(row.train_seconds.mean)]
        rows.append(cells)
    return rows


def markdown_for(table: Table, level: int = 3) -> str:
    """One table: a heading, the table, its notes."""
    parts = [f"{'#' * level} {table.title}", "",
             markdown_table(header_cells(table), row_cells(table, lambda s: f"**{s}**" if s else s))]
    if table.notes:
        parts += [""] + [f"- {n}." for n in table.notes]
    return "\n".join(parts)


def markdown(experiment: Experiment, level: int = 3) -> str:
    """Every table of ``experiment``: per benchmark the mean over orders (if several), then each order."""
    return "\n\n".join(markdown_for(t, level) for t in experiment.tables)


# ----------------------------------------------------------------------------- LaTeX
_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_ESCAPES.get(c, c) for c in text)
    return (out.replace("→", r"$\rightarrow$").replace("Δ", r"$\Delta$").replace("±", r"$\pm$")
            .replace("×", r"$\times$").replace("†", r"$^\dagger$").replace("↑", r"$\uparrow$")
            .replace("↓", r"$\downarrow$").replace("—", "---").replace("–", "--"))


def latex_for(table: Table) -> str:
    """One ``table`` environment: booktabs, tasks grouped over their metrics, best in bold."""
    tasks = list(dict.fromkeys(t for t, _ in table.columns))
    spans = [(t, sum(1 for c in table.columns if c[0] == t)) for t in tasks]
    ncols = 2 + len(table.columns) + 6
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(table.title)}. {latex_escape(CAPTION)}"
             + (" ± over orders." if table.order is None else "") + "}",
             r"\begin{tabular}{ll" + "r" * (ncols - 2) + "}", r"\toprule"]
    first, rules, col = ["", ""], [], 3
    for task, span in spans:
        first.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(task)}}}")
        rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
        col += span
    first += [""] * 6
    lines.append(" & ".join(first) + r" \\")
    lines.append(" ".join(rules))
    second = ["Method", "Seeds"]
    second += [latex_escape(f"{m} {ARROW[table.directions[t][m]]}" + (f" {MARK}" if (t, m) in table.zero_columns
                                                                        else "")) for t, m in table.columns]
    second += [latex_escape(f"Δ vs {table.baseline_label} (%)"), "MR", "Params", "Stored",
               latex_escape(f"Step vs {table.baseline_label}"), "Time"]
    lines.append(" & ".join(second) + r" \\")
    lines.append(r"\midrule")
    rows = row_cells(table, lambda s: rf"\textbf{{{s}}}" if s else s, sep=" ± ")
    leading = [r.method in ("joint", "vanilla") for r in table.rows]
    for i, cells in enumerate(rows):
        if i and leading[i - 1] and not leading[i]:
            lines.append(r"\midrule")
        escaped = []
        for cell in cells:
            if cell.startswith(r"\textbf{"):
                escaped.append(r"\textbf{" + latex_escape(cell[len(r"\textbf{"):-1]) + "}")
            else:
                escaped.append(latex_escape(cell))
        lines.append(" & ".join(escaped) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\smallskip\footnotesize")
        lines += [latex_escape(n) + r".\\" for n in table.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines)


def latex(experiment: Experiment) -> str:
    """``table.tex``: every table, for ``\\usepackage{booktabs}`` documents."""
    head = ["% lhl report: paper-style tables (needs \\usepackage{booktabs}).",
            "% Generated from the run directories; do not edit by hand.", ""]
    return "\n".join(head) + "\n\n".join(latex_for(t) for t in experiment.tables) + "\n"


# ----------------------------------------------------------------------------- CSV
def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _whole(value: float) -> str:
    """A count: an integer when whole (a mean over orders of equal counts), else the float."""
    if math.isnan(value):
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def csv_fields(tables: Sequence[Table]) -> list[str]:
    columns = list(dict.fromkeys(c for t in tables for c in t.columns))
    fields = ["benchmark", *(["arm"] if any(t.arm is not None for t in tables) else []), "order", "method",
              "method_name", "baseline", "seeds", "n"]
    for task, metric in columns:
        fields += [f"{task}/{metric}", f"{task}/{metric} std"]
    fields += ["delta_pct", "delta_pct_std", "delta_n", "mr", "mr_std", "params", "stored_bytes",
               "step_seconds", "step_rel", "step_rel_std", "train_seconds", "encoder"]
    return fields


def csv_rows(table: Table) -> list[dict[str, str]]:
    out = []
    for row in table.rows:
        record = {"benchmark": table.benchmark_name, **({"arm": table.arm} if table.arm is not None else {}),
                  "order": ">".join(table.order) if table.order is not None else ALL_ORDERS,
                  "method": row.label, "method_name": row.method, "baseline": table.baseline_label,
                  "seeds": ";".join(map(str, row.seeds)),
                  "n": str(len(row.seeds) if table.order is not None else len(row.orders))}
        for task, metric in table.columns:
            s = row.metrics.get((task, metric))
            if s is None or not s.values:
                continue
            record[f"{task}/{metric}"] = _num(s.mean)
            record[f"{task}/{metric} std"] = _num(s.std)
        record.update(delta_pct=_num(row.delta.mean), delta_pct_std=_num(row.delta.std), delta_n=str(row.delta.n),
                      mr=_num(row.rank.mean), mr_std=_num(row.rank.std),
                      params=_whole(row.params.mean), stored_bytes=_whole(row.state_bytes.mean),
                      step_seconds=_num(row.step_seconds.mean), step_rel=_num(row.step_rel.mean),
                      step_rel_std=_num(row.step_rel.std), train_seconds=_num(row.train_seconds.mean),
                      encoder=row.setup)
        out.append(record)
    return out


def csv_text(experiment: Experiment) -> str:
    """``table.csv``: one row per configuration and order, plus one per configuration over all
    orders (``order = all orders``) — per arm (an ``arm`` column) for an experiment with arms;
    numbers unformatted, undefined values empty."""
    tables = [t for b in experiment.benchmarks for t in [*(s.table for s in b.sections), b.overall]]
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=csv_fields(tables), restval="", lineterminator="\n")
    writer.writeheader()
    for bench in experiment.benchmarks:
        for section in bench.sections:
            writer.writerows(csv_rows(section.table))
        writer.writerows(csv_rows(bench.overall))
    return handle.getvalue()

