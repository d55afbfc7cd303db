"""``lhl data check``: scan an on-disk dataset and report what is there and what is wrong.

For each split and task: file count, stored shapes and dtypes, the value range of valid
pixels after decoding (in the units the loader produces) and the fraction of invalid pixels;
then every problem found — missing index or file, unreadable file (e.g. a truncated PNG),
shape mismatch with the image, NaN values, labels outside the class range, files with no
matching image — each with its path. It uses the loaders' own decoders, so a dataset that
checks clean loads clean, and the loaders raise the same messages; which pixels are valid is
each task's own :meth:`~lhl.tasks.Task.valid_mask`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable

from lhl.data.disk import SPLITS, FileBenchmark, cap_indices
from lhl.data.readers import Problem, shape_text
from lhl.errors import DataError
from lhl.tasks import Task


@dataclass
class TaskStats:
    """What one task's files in one split hold."""

    files: int = 0
    shapes: Counter = field(default_factory=Counter)
    dtypes: Counter = field(default_factory=Counter)
    low: float = math.inf
    high: float = -math.inf
    invalid: int = 0
    pixels: int = 0

    def add(self, value, task: Task | None, raw_shape: tuple[int, ...], raw_dtype: str) -> None:
        """Count one decoded file: an image (``task`` None) or ``task``'s label."""
        self.files += 1
        self.shapes[shape_text(raw_shape)] += 1
        self.dtypes[raw_dtype] += 1
        if task is None:
            valid_values = value
            self.pixels += value.shape[-1] * value.shape[-2]
        else:
            valid = task.valid_mask(value)  # [H,W], whether the label is [H,W] or [C,H,W]
            valid_values = value[..., valid]
            self.invalid += int((~valid).sum())
            self.pixels += valid.numel()
        if valid_values.numel():
            self.low = min(self.low, float(valid_values.min()))
            self.high = max(self.high, float(valid_values.max()))


@dataclass
class CheckReport:
    benchmark: str
    root: str
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[tuple[str, str], TaskStats] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add_problem(self, item: Problem) -> None:
        if all(p.path != item.path for p in self.problems):
            self.problems.append(item)

    def format(self) -> str:
        lines = [f"{self.benchmark} at {self.root}"]
        for split in SPLITS:
            if split in self.counts:
                lines.append(f"  {split}: {self.counts[split]} images")
        header = ("split", "task", "files", "shape", "dtype", "range (valid pixels)", "invalid")
        rows = [header]
        for (split, task), stats in self.stats.items():
            value_range = f"[{stats.low:.4g}, {stats.high:.4g}]" if stats.low <= stats.high else "-"
            invalid = f"{100 * stats.invalid / stats.pixels:.2f}%" if task != "image" and stats.pixels else "-"
            rows.append((split, task, str(stats.files), _common(stats.shapes), _common(stats.dtypes), value_range,
                         invalid))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems]
        else:
            lines.append("no problems found")
        return "\n".join(lines)


def _common(counter: Counter) -> str:
    items = counter.most_common()
    text = ", ".join(key if len(items) == 1 else f"{key} ({n})" for key, n in items[:3])
    return text + (f", +{len(items) - 3} more" if len(items) > 3 else "")


def _as_problem(error: DataError) -> Problem:
    path, _, message = str(error).partition(": ")
    return Problem(path, message)


def check_dataset(benchmark: FileBenchmark, limit: int | None = None) -> CheckReport:
    """Scan every split and task of ``benchmark`` (at most ``limit`` images per split)."""
    report = CheckReport(benchmark.name, str(benchmark.root))
    tasks = [benchmark.make_task(name) for name in benchmark.task_specs()]
    for split in SPLITS:
        try:
            entries, structural = benchmark.scan(split)
        except DataError as error:
            report.add_problem(_as_problem(error))
            continue
        for item in structural:
            report.add_problem(item)
        report.counts[split] = len(entries)
        if not entries:
            report.add_problem(Problem(str(benchmark.root), f"no {split} images found"))
            continue
        chosen = [entries[i] for i in cap_indices(len(entries), limit)]
        sizes = _check_images(benchmark, report, split, chosen)
        for item in benchmark.stray_files(split, None, entries):
            report.add_problem(item)
        for task in tasks:
            _check_task(benchmark, report, split, task, chosen, entries, sizes)
    return report


def _check_images(benchmark: FileBenchmark, report: CheckReport, split: str,
                  chosen: list[Hashable]) -> dict[Hashable, tuple[int, int]]:
    stats = report.stats.setdefault((split, "image"), TaskStats())
    sizes = {}
    for entry in chosen:
        try:
            decoded = benchmark.decode_image(benchmark.image_path(split, entry))
        except DataError as error:
            report.add_problem(_as_problem(error))
            continue
        stats.add(decoded.value, None, decoded.raw_shape, decoded.raw_dtype)
        sizes[entry] = tuple(decoded.value.shape[-2:])
    return sizes


def _check_task(benchmark: FileBenchmark, report: CheckReport, split: str, task: Task, chosen: list[Hashable],
                entries: list[Hashable], sizes: dict[Hashable, tuple[int, int]]) -> None:
    name = task.name
    try:
        benchmark.label_path(split, chosen[0], name)
        strays = benchmark.stray_files(split, name, entries)
    except DataError as error:  # the task's folder is missing
        report.add_problem(_as_problem(error))
        return
    stats = report.stats.setdefault((split, name), TaskStats())
    for entry in chosen:
        path = benchmark.label_path(split, entry, name)
        try:
            decoded = benchmark.decode_label(name, path)
        except DataError as error:
            report.add_problem(_as_problem(error))
            continue
        size = tuple(decoded.value.shape[-2:])
        if entry in sizes and size != sizes[entry]:
            report.add_problem(Problem(str(path), f"shape mismatch: expected {shape_text(sizes[entry])} (the image's "
                                                  f"size), found {shape_text(size)}"))
            continue
        stats.add(decoded.value, task, decoded.raw_shape, decoded.raw_dtype)
    for item in strays:
        report.add_problem(item)
