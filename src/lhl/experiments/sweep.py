"""``lhl sweep``: a one-method hyperparameter grid, selected on the validation split.

    # experiments/sweep-had-alpha.yaml
    base: synthetic-nyu-demo         # a preset name or a config file (relative to this file)
    set: {data.val_size: 64}         # optional; without data.val_size > 0 a synthetic base gets 32
    method: had                      # the method being tuned
    baseline: vanilla                # optional (default vanilla): Δ is measured against it
    seeds: [0, 1]
    orders: [[segmentation, depth, normal]]   # optional: default = the base configuration's order
    grid: {method.alpha: [1, 3, 10]}          # config key -> candidate values
    mode: product                    # product (Cartesian, default) or zip (the lists side by side)

Every grid point is a variant of ``method`` labelled ``had[alpha=3]`` (keys under ``method.`` are
shown without that prefix) and run over every seed and order, with the baseline, by the runner of
``lhl bench`` (:mod:`lhl.experiments.runner`; resumable, ``--jobs``, ``--shard``, ``--list``,
``--status``). A run directory is named ``runs/<order>/<method>.<key>-<value>...-s<seed>``
(``DIR/experiment.yaml`` is the equivalent ``lhl bench`` file).

**Selection reads validation results only.** For each point, Δ (eq. 11,
:func:`lhl.metrics.summary.relative_improvement`) of its ``performance.json`` ``"validation"``
against the baseline's of the same seed and order, averaged over seeds and orders; the largest
mean Δ wins, ties going to the first point in grid order (:func:`select`, fed by
:func:`read_validation`, which reads nothing but ``"validation"`` and ``"directions"``). Then
``DIR/selected.yaml`` (a config file: ``base`` and the selected overrides) and ``DIR/sweep.md``
(the validation table, and the test-set numbers of the selected point only) are written.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lhl.config import load_config, load_yaml
from lhl.engine.checkpoint import write_text
from lhl.errors import ConfigError, ReportError
from lhl.experiments.plan import PlannedRun, yaml_value
from lhl.experiments.schema import _NAME, Experiment, _base, _names, _orders, _overrides, _seeds
from lhl.metrics.summary import relative_improvement

__all__ = ["Sweep", "load_sweep", "sweep_from_mapping", "select", "read_validation", "read_final_test",
           "validation_pairs", "validation_deltas", "validation_table", "with_val_size", "write_selected", "write_report",
           "SWEEP_KEYS", "DEFAULT_VAL_SIZE"]

SWEEP_KEYS = ("base", "set", "method", "baseline", "seeds", "orders", "grid", "mode")
#: data.val_size a sweep adds when its base and ``set`` leave it 0 (synthetic benchmarks only)
DEFAULT_VAL_SIZE = 32


@dataclass
class Point:
    label: str  # "had[alpha=3]"
    name: str  # run-directory label, "had.alpha-3"
    overrides: dict[str, Any]


@dataclass
class Sweep:
    source: str
    base: str
    base_is_file: bool
    overrides: dict[str, Any]
    method: str
    baseline: str
    seeds: list[int]
    orders: list[list[str]] | None
    grid: dict[str, list[Any]]
    mode: str
    points: list[Point] = field(default_factory=list)

    def experiment(self) -> Experiment:
        """The equivalent ``lhl bench`` experiment: the baseline, then one variant per point."""
        return Experiment(source=self.source, base=self.base, base_is_file=self.base_is_file,
                          overrides=dict(self.overrides), methods=[self.baseline],
                          variants={p.name: {"method": self.method, "set": dict(p.overrides)} for p in self.points},
                          seeds=list(self.seeds), orders=None if self.orders is None else [list(o) for o in self.orders],
                          baseline=self.baseline)

    def point_of(self, name: str) -> Point:
        return next(p for p in self.points if p.name == name)


# ----------------------------------------------------------------------------- reading
def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(path)!r} {'is a directory' if path.is_dir() else 'does not exist'}; "
                          "expected a YAML sweep file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sweep file {str(path)!r} cannot be read: {exc}") from None
    return sweep_from_mapping(load_yaml(text, str(path)), str(path), path.parent)


def sweep_from_mapping(tree: Any, source: str, folder: Path) -> Sweep:
    at = f"{source}: " if source else ""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{at}{key}: {problem}")

    if not isinstance(tree, dict):
        raise ConfigError(f"{at}expected a mapping with the keys {', '.join(SWEEP_KEYS)}")
    for key in tree:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"{at}unknown key {key!r}; allowed keys: {', '.join(SWEEP_KEYS)}")
    for key in ("base", "method", "seeds", "grid"):
        if key not in tree:
            raise fail(key, "missing")
    base, base_is_file = _base(tree["base"], folder, fail)
    overrides = _overrides(tree.get("set"), "set", fail)
    method = _names([tree["method"]], "method", "a method name", fail)[0]
    baseline = _names([tree.get("baseline", "vanilla")], "baseline", "a method name", fail)[0]
    if baseline == method:
        raise fail("baseline", f"{baseline!r} is the method being tuned; expected another method, e.g. vanilla")
    seeds = _seeds(tree["seeds"], fail)
    orders = _orders(tree["orders"], fail) if tree.get("orders") is not None else None
    mode = tree.get("mode", "product")
    if mode not in ("product", "zip"):
        raise fail("mode", f"invalid value {mode!r}; expected 'product' or 'zip'")
    grid = tree["grid"]
    if not isinstance(grid, dict) or not grid:
        raise fail("grid", f"invalid value {grid!r}; expected a mapping of config keys to lists of values, "
                   "e.g. {method.alpha: [1, 3, 10]}")
    _overrides({k: 0 for k in grid}, "grid", fail)  # the key checks of `set`
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise fail(f"grid.{key}", f"invalid value {values!r}; expected a non-empty list of values")
        if key in overrides:
            raise fail(f"grid.{key}", "also given under set; a key is either fixed or swept")
    if mode == "zip" and len({len(v) for v in grid.values()}) > 1:
        raise fail("grid", "mode zip needs lists of one length, got " +
                   ", ".join(f"{k}: {len(v)}" for k, v in grid.items()))
    keys = list(grid)
    combos = (list(zip(*grid.values())) if mode == "zip" else list(itertools.product(*grid.values())))
    points, seen = [], set()
    for combo in combos:
        values = dict(zip(keys, combo))
        label = method + "[" + ",".join(f"{_short(k)}={yaml_value(v)}" for k, v in values.items()) + "]"
        if label in seen:
            raise fail("grid", f"the point {label} is listed twice")
        seen.add(label)
        points.append(Point(label, "", values))
    _name_points(method, points)
    return Sweep(source=source, base=base, base_is_file=base_is_file, overrides=overrides, method=method,
                 baseline=baseline, seeds=seeds, orders=orders, grid={k: list(v) for k, v in grid.items()}, mode=mode,
                 points=points)


def _short(key: str) -> str:
    return key[len("method."):] if key.startswith("method.") else key


def _name_points(method: str, points: list[Point]) -> None:
    """Run-directory labels: ``had.alpha-3.edge_threshold-0.9`` (other characters become ``_``);
    a clash (after that replacement) gets ``.p<i>`` appended."""
    names: set[str] = set()
    for i, point in enumerate(points):
        parts = [method] + [f"{_short(k)}-{yaml_value(v)}" for k, v in point.overrides.items()]
        name = re.sub(r"[^A-Za-z0-9_.+-]", "_", ".".join(parts))
        if name in names or not _NAME.match(name):
            name = f"{name}.p{i}"
        names.add(name)
        point.name = name


def with_val_size(sweep: Sweep) -> Sweep:
    """``sweep`` with ``data.val_size`` > 0: as given, or :data:`DEFAULT_VAL_SIZE` for a synthetic
    benchmark (an on-disk one must set it: its validation images are taken from training)."""
    kwargs = {"config_file": sweep.base} if sweep.base_is_file else {"preset": sweep.base}
    texts = [f"{k}={yaml_value(v)}" for k, v in sweep.overrides.items()]
    config = load_config(**kwargs, method=sweep.baseline, overrides=texts)
    if config.data.val_size > 0:
        return sweep
    from lhl.data.disk import FileBenchmark
    from lhl.registry import BENCHMARKS, load_builtins

    load_builtins()
    if issubclass(BENCHMARKS.get(config.benchmark), FileBenchmark):
        raise ConfigError(f"{sweep.source or 'sweep'}: set: data.val_size is 0; a sweep selects on a validation "
                          f"split: set data.val_size (training images of {config.benchmark} held out for it)")
    sweep.overrides = {**sweep.overrides, "data.val_size": DEFAULT_VAL_SIZE}
    return sweep


# ----------------------------------------------------------------------------- selection (validation only)
def read_validation(run_dir: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, bool]]]:
    """The ``"validation"`` result and the metric directions of a finished run's performance.json;
    nothing else of it (no test metric) is returned."""
    path = Path(run_dir) / "performance.json"
    try:
        performance = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{str(path)!r} cannot be read: {exc}") from None
    validation = performance.get("validation")
    if not isinstance(validation, dict) or not validation:
        raise ReportError(f"{str(path)!r} has no 'validation' result; the run had no validation split "
                          "(data.val_size = 0) or did not finish")
    return validation, performance.get("directions", {})


Pairs = list[tuple[int, str, dict, dict]]  # (seed, order id, validation result, baseline's validation result)


def validation_deltas(points: dict[str, Pairs], directions: dict[str, dict[str, bool]]) -> dict[str, list[float]]:
    """Δ (eq. 11) of each point's validation result against the baseline's, per (seed, order)."""
    return {label: [relative_improvement(result, baseline, directions) for _, _, result, baseline in pairs]
            for label, pairs in points.items()}


def select(points: dict[str, Pairs], directions: dict[str, dict[str, bool]]) -> tuple[str, dict[str, float]]:
    """The point with the largest mean validation Δ over its (seed, order) pairs (ties, and NaN
    means, go to the first in ``points``' order), and every point's mean Δ."""
    means = {label: _mean(values) for label, values in validation_deltas(points, directions).items()}
    best = None
    for label, value in means.items():
        if best is None or (not math.isnan(value) and (math.isnan(means[best]) or value > means[best])):
            best = label
    return best, means


def _mean(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def validation_pairs(sweep: Sweep, runs: list[PlannedRun], out: Path) -> tuple[dict[str, Pairs], dict]:
    """``{point label: [(seed, order id, validation, baseline's validation)]}`` read with
    :func:`read_validation`, and the directions."""
    baseline: dict[tuple[int, str], dict] = {}
    directions: dict = {}
    points: dict[str, Pairs] = {p.label: [] for p in sweep.points}
    for run in runs:
        if run.label == sweep.baseline:
            baseline[(run.seed, run.order_id)], found = read_validation(out / run.rel_dir)
            directions.update(found)
    for run in runs:
        if run.label != sweep.baseline:
            result, found = read_validation(out / run.rel_dir)
            directions.update(found)
            points[sweep.point_of(run.label).label].append(
                (run.seed, run.order_id, result, baseline[(run.seed, run.order_id)]))
    return points, directions


def validation_table(sweep: Sweep, points: dict[str, Pairs], directions: dict, winner: str) -> str:
    deltas = validation_deltas(points, directions)
    lines = ["| point | " + " | ".join(_short(k) for k in sweep.grid) + " | validation Δ % (mean ± std) | runs |",
             "|---|" + "---|" * len(sweep.grid) + "---|---|"]
    for point in sweep.points:
        values = deltas[point.label]
        mark = " **(selected)**" if point.label == winner else ""
        lines.append(f"| {point.label}{mark} | " + " | ".join(yaml_value(v) for v in point.overrides.values())
                     + f" | {_mean_std(values)} | {len(values)} |")
    return "\n".join(lines)


def write_selected(sweep: Sweep, out: Path, winner: str, means: dict[str, float]) -> Path:
    """``out/selected.yaml``: ``base`` + the sweep's ``set`` + the selected point's overrides (and
    its method), a config file ``lhl run --config`` reads; a comment lists every point's Δ."""
    point = next(p for p in sweep.points if p.label == winner)
    tree: dict[str, Any] = {"base": sweep.base}
    settings = {**sweep.overrides, **point.overrides, "method.name": sweep.method}
    for key, value in settings.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    comment = [f"# Selected by lhl sweep ({sweep.source or 'the command line'}): {winner}, the largest mean",
               f"# validation Δ (eq. 11, % vs {sweep.baseline}, over seeds {sweep.seeds} and every order).",
               "# Validation Δ of every grid point:"]
    comment += [f"#   {label}: {_fmt(value)}" for label, value in means.items()]
    path = out / "selected.yaml"
    write_text(path, "\n".join(comment) + "\n" + yaml.safe_dump(tree, sort_keys=False, default_flow_style=None))
    return path


# ----------------------------------------------------------------------------- the report (test numbers)
def read_final_test(run_dir: Path) -> tuple[dict[str, dict[str, float]], dict]:
    """The final phase's test metrics (and directions): only the report of the selected point reads them."""
    performance = json.loads((Path(run_dir) / "performance.json").read_text(encoding="utf-8"))
    phases = performance.get("phases")
    if not isinstance(phases, list) or not phases:
        raise ReportError(f"{str(Path(run_dir) / 'performance.json')!r} has no test results ('phases')")
    return phases[-1]["metrics"], performance.get("directions", {})


def write_report(sweep: Sweep, runs: list[PlannedRun], out: Path, winner: str, points: dict[str, Pairs],
                 directions: dict) -> Path:
    """``out/sweep.md``: the validation table, then the selected point's test metrics and test Δ."""
    point = next(p for p in sweep.points if p.label == winner)
    chosen = [r for r in runs if r.label == point.name]
    base = {(r.seed, r.order_id): r for r in runs if r.label == sweep.baseline}
    lines = [f"# lhl sweep: {sweep.method} on {sweep.base}", "",
             f"Grid ({sweep.mode}) over {', '.join(sweep.grid)}; seeds {sweep.seeds}; baseline {sweep.baseline}. "
             "Selection uses the validation split only (performance.json \"validation\").", "",
             "## Validation Δ of every grid point", "", validation_table(sweep, points, directions, winner), "",
             f"## Test set: the selected setting {winner} only", ""]
    for order in dict.fromkeys(r.order_id for r in chosen):
        rows = [r for r in chosen if r.order_id == order]
        tests, deltas = [], []
        for run in rows:
            result, found = read_final_test(out / run.rel_dir)
            baseline, _ = read_final_test(out / base[(run.seed, order)].rel_dir)
            tests.append(result)
            deltas.append(relative_improvement(result, baseline, {**directions, **found}))
        lines += [f"order {order}, seeds {[r.seed for r in rows]}: test Δ vs {sweep.baseline} = {_mean_std(deltas)} %",
                  "", "| task | metric | final test (mean ± std) |", "|---|---|---|"]
        for task, metrics in tests[0].items():
            for metric in metrics:
                lines.append(f"| {task} | {metric} | {_mean_std([t[task][metric] for t in tests], signed=False)} |")
        lines.append("")
    path = out / "sweep.md"
    write_text(path, "\n".join(lines))
    return path


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:+.2f}"


def _mean_std(values: list[float], signed: bool = True) -> str:
    defined = [v for v in values if not math.isnan(v)]
    if not defined:
        return "nan"
    std = statistics.stdev(defined) if len(defined) > 1 else 0.0
    mean = sum(defined) / len(defined)
    return f"{_fmt(mean)} ± {std:.2f}" if signed else f"{mean:.4g} ± {std:.3g}"

