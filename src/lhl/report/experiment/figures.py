"""The report's figures as PNG bytes (matplotlib's Agg canvas; no pyplot, no global state).

* :func:`phase_curves` — every task's main metric after each phase, one line per row (the paper's
  Figures 1 and 7); joint, trained once on every task, is a dashed level;
* :func:`phase_delta` — Δ and MR after each phase against the baseline's same phase;
* :func:`heat_maps` — each row's performance matrix relative to the value right after learning
  each task (%, σ-signed: positive = better than when learned);
* :func:`forgetting_bars` — forgetting and backward transfer per task;
* :func:`loss_curves` — training-loss terms per epoch (``epoch_end`` events);
* :func:`image_grid` — a grid of RGB images with row and column titles (the qualitative grid).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lhl.report.experiment.collect import RunRecord, Section, Stat
from lhl.report.tables import ARROW

__all__ = ["phase_curves", "phase_delta", "heat_maps", "forgetting_bars", "loss_curves", "image_grid",
           "label_colors", "to_png"]

DPI = 100
_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]


def label_colors(labels: Sequence[str], methods: Sequence[str]) -> dict[str, str]:
    """A fixed colour per row: joint black, vanilla grey, the others in order."""
    out, i = {}, 0
    for label, method in zip(labels, methods):
        if method == "joint":
            out[label] = "#000000"
        elif method == "vanilla":
            out[label] = "#7f7f7f"
        else:
            out[label] = _PALETTE[i % len(_PALETTE)]
            i += 1
    return out


def to_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _legend_entries(fig: Figure) -> tuple[list, list[str]]:
    """Every labelled artist of the figure's axes, each label once, in order."""
    entries: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _colors(section: Section) -> dict[str, str]:
    return label_colors([r.label for r in section.table.rows], [r.method for r in section.table.rows])


def _methods(section: Section) -> dict[str, str]:
    return {r.label: r.method for r in section.table.rows}


def _phase_ticks(ax, order: Sequence[str]) -> None:
    """Phases 1..T on x; with up to five tasks each tick also names the task learned."""
    ax.set_xticks(range(1, len(order) + 1))
    if len(order) <= 5:
        ax.set_xticklabels([f"{i}\n{t[:14]}" for i, t in enumerate(order, start=1)], fontsize=7)
    else:
        ax.set_xticklabels([str(i) for i in range(1, len(order) + 1)], fontsize=7)
        ax.set_xlabel("after phase", fontsize=7)
    ax.set_xlim(0.7, len(order) + 0.3)
    ax.ticklabel_format(axis="y", useOffset=False)


def _suptitle(fig: Figure, section: Section, what: str, fontsize: int = 10) -> None:
    """``<benchmark>: <order> — <what>``, wrapped for long task orders."""
    width = int(fig.get_figwidth() * 120 / fontsize)  # characters that fit across the figure
    fig.suptitle(textwrap.fill(f"{section.title} — {what}", max(50, width)), fontsize=fontsize)


def _mean_band(stats: Sequence[Stat | None]) -> tuple[list[int], list[float], list[float], list[float]]:
    xs, mean, low, high = [], [], [], []
    for phase, s in enumerate(stats, start=1):
        if s is None or not s.values:
            continue
        values = [v for v in s.values if math.isfinite(v)]
        if not values:
            continue
        m = float(np.mean(values))
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        xs.append(phase), mean.append(m), low.append(m - sd), high.append(m + sd)
    return xs, mean, low, high


def phase_curves(section: Section) -> bytes:
    """One panel per task: its main metric after each phase, mean over seeds (band: ± std)."""
    tasks = list(section.main_metrics)
    rows, cols = _grid(len(tasks), 5 if len(tasks) > 6 else 3)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows + 0.6))
    colors, methods = _colors(section), _methods(section)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(rows, cols, i + 1)
        metric = section.main_metrics[task]
        for label, curves in section.curves.items():
            xs, mean, low, high = _mean_band(curves.get(task, []))
            if not xs:
                continue
            if methods[label] == "joint" and len(xs) == 1:
                first = section.order.index(task) + 1
                ax.hlines(mean[0], first, len(section.order), colors=colors[label], linestyles="--", label=label)
                continue
            ax.plot(xs, mean, marker="o", ms=3, color=colors[label], label=label)
            if any(h != lo for h, lo in zip(high, low)):
                ax.fill_between(xs, low, high, color=colors[label], alpha=0.15, linewidth=0)
        ax.set_title(f"{task}: {metric} {ARROW[section.table.directions[task][metric]]}", fontsize=9)
        _phase_ticks(ax, section.order)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, labels = _legend_entries(fig)
    fig.legend(handles, labels, loc="lower center", ncol=min(7, max(1, len(labels))), fontsize=8, frameon=False)
    _suptitle(fig, section, "main metric after each phase (mean ± std over seeds)")
    fig.tight_layout(rect=(0, 0.08 if rows == 1 else 0.05, 1, 0.95))
    return to_png(fig)


def phase_delta(section: Section) -> bytes:
    """Δ (%) and MR after each phase, against the baseline's result after the same phase."""
    fig = Figure(figsize=(9, 3.4))
    colors = _colors(section)
    for j, (data, title) in enumerate(((section.phase_delta, f"Δ vs {section.table.baseline_label} (%) ↑"),
                                       (section.phase_rank, "MR ↓"))):
        ax = fig.add_subplot(1, 2, j + 1)
        for label, stats in data.items():
            xs, mean, low, high = _mean_band(stats)
            if not xs:
                continue
            ax.plot(xs, mean, marker="o", ms=4 if len(xs) > 1 else 6, color=colors[label], label=label,
                    linestyle="-" if len(xs) > 1 else "none")
            if any(h != lo for h, lo in zip(high, low)):
                ax.fill_between(xs, low, high, color=colors[label], alpha=0.15, linewidth=0)
        if j == 0:
            ax.axhline(0, color="#999999", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        _phase_ticks(ax, section.order)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, labels = _legend_entries(fig)
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    _suptitle(fig, section, "Δ and MR after each phase (tasks seen so far)")
    fig.tight_layout(rect=(0, 0, 0.8, 0.92))
    return to_png(fig)


def heat_maps(section: Section) -> bytes | None:
    """Per row, the matrix (phase × task) of the mean relative change (%) from right after
    learning the task; blank before it is learned, grey ``n/a`` where undefined."""
    labels = [label for label in section.labels if label in section.heat]
    if not labels:
        return None
    order = list(section.order)
    rows, cols = _grid(len(labels), 3)
    size = 0.55 * len(order) + 1.6
    fig = Figure(figsize=(size * cols + 1.2, size * rows + 0.7), layout="constrained")
    grids = []
    for label in labels:
        grid = np.full((len(order), len(order)), np.nan)
        undefined = np.zeros_like(grid, dtype=bool)
        for phase, cells in enumerate(section.heat[label]):
            for task, s in cells.items():
                if task in order:
                    if s.n:
                        grid[phase, order.index(task)] = s.mean
                    else:
                        undefined[phase, order.index(task)] = True
        grids.append((label, grid, undefined))
    finite = np.concatenate([g[np.isfinite(g)] for _, g, _ in grids] + [np.zeros(1)])
    limit = max(1.0, float(np.max(np.abs(finite))))
    image = None
    for i, (label, grid, undefined) in enumerate(grids):
        ax = fig.add_subplot(rows, cols, i + 1)
        masked = np.ma.masked_invalid(grid)
        image = ax.imshow(masked, cmap="RdBu", vmin=-limit, vmax=limit, aspect="equal")
        for (r, c), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=6 if len(order) > 5 else 8,
                        color="white" if abs(value) > 0.6 * limit else "black")
            elif undefined[r, c]:
                ax.add_patch(_rect(c, r, "#cccccc"))
                ax.text(c, r, "n/a", ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([t[:14] for t in order], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels([f"after {p}" for p in range(1, len(order) + 1)], fontsize=7)
        ax.set_title(label, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.8, label="% vs right after learning")
    _suptitle(fig, section, "change since right after learning each task (%, mean over metrics and seeds)", 9)
    return to_png(fig)


def _rect(x: float, y: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, color=color, zorder=0)


def forgetting_bars(section: Section) -> bytes | None:
    """Forgetting and BWT (%) per task learned before the last phase, and their average."""
    labels = [label for label in section.labels if section.forgetting.get(label)]
    if not labels:
        return None
    keys = [t for t in section.order[:-1]] + ["average"]
    colors = _colors(section)
    fig = Figure(figsize=(max(7.0, 1.3 * len(keys) * 2), 3.4))
    width = 0.8 / len(labels)
    for j, (data, title) in enumerate(((section.forgetting, "forgetting % (↓, positive = forgot)"),
                                       (section.bwt, "BWT % (↑, negative = forgot)"))):
        ax = fig.add_subplot(1, 2, j + 1)
        for i, label in enumerate(labels):
            values = [data[label].get(k, Stat()).mean for k in keys]
            errors = [data[label].get(k, Stat()).std for k in keys]
            xs = np.arange(len(keys)) + (i - (len(labels) - 1) / 2) * width
            heights = [v if math.isfinite(v) else 0.0 for v in values]
            ax.bar(xs, heights, width, color=colors[label], label=label,
                   yerr=[e if math.isfinite(e) else 0.0 for e in errors], capsize=2, error_kw={"linewidth": 0.6})
            for x, v in zip(xs, values):
                if not math.isfinite(v):
                    ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([k[:12] for k in keys], fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    handles, names = _legend_entries(fig)
    fig.legend(handles, names, loc="center right", fontsize=8, frameon=False)
    _suptitle(fig, section, "forgetting and backward transfer (mean ± std over seeds)")
    fig.tight_layout(rect=(0, 0, 0.82, 0.92))
    return to_png(fig)


def loss_curves(section: Section, runs: dict[str, RunRecord]) -> bytes | None:
    """Per row (one run each), every loss term's epoch mean; x = phase − 1 + epoch / epochs."""
    labels = [label for label in section.labels if label in runs and runs[label].epochs]
    if not labels:
        return None
    rows, cols = _grid(len(labels), 3)
    fig = Figure(figsize=(4.4 * cols, 3.0 * rows + 0.5))
    for i, label in enumerate(labels):
        record = runs[label]
        ax = fig.add_subplot(rows, cols, i + 1)
        series: dict[str, tuple[list[float], list[float]]] = {}
        for phase, events in sorted(record.epochs.items()):
            count = max(len(events), 1)
            for k, event in enumerate(events, start=1):
                for term, value in (event.get("losses") or {}).items():
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        xs, ys = series.setdefault(term, ([], []))
                        xs.append(phase - 1 + k / count)
                        ys.append(float(value))
        for j, (term, (xs, ys)) in enumerate(series.items()):
            ax.plot(xs, ys, marker="." if len(xs) < 40 else None, ms=3, label=term,
                    color=_PALETTE[j % len(_PALETTE)], linewidth=1)
        for phase in range(1, len(section.order)):
            ax.axvline(phase, color="#bbbbbb", linewidth=0.6)
        if series and all(v > 0 for _, ys in series.values() for v in ys):
            ax.set_yscale("log")
        ax.set_title(f"{label} (seed {record.run.seed})", fontsize=9)
        ax.set_xlabel("phase", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, frameon=False, ncol=2 if len(series) > 4 else 1)
        ax.grid(alpha=0.3)
    _suptitle(fig, section, "training loss per term (epoch means)")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return to_png(fig)


def image_grid(rows: Sequence[tuple[str, Sequence[np.ndarray | None]]], columns: Sequence[str],
               title: str, cell: float = 1.5) -> bytes:
    """A grid of RGB images ``[H, W, 3]`` in [0, 1] (None: an empty cell), titled per row and column."""
    n_rows, n_cols = len(rows), len(columns)
    shapes = [img.shape for _, imgs in rows for img in imgs if img is not None]
    aspect = shapes[0][0] / shapes[0][1] if shapes else 1.0
    fig = Figure(figsize=(cell * n_cols + 1.2, cell * aspect * n_rows + 0.8))
    for r, (row_title, images) in enumerate(rows):
        for c in range(n_cols):
            ax = fig.add_subplot(n_rows, n_cols, r * n_cols + c + 1)
            image = images[c] if c < len(images) else None
            if image is not None:
                ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(image is not None)
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_title, fontsize=7)
    fig.suptitle(textwrap.fill(title, max(60, int(18 * (cell * n_cols + 1.2)))), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return to_png(fig)
