"""The run list of an experiment: every (method or variant × order × seed), each with its run
directory ``runs/<order-id>/<label>-s<seed>`` and the configuration it runs, validated before
anything starts. An experiment with ``arms`` runs that grid once per arm, into
``runs/<arm>/<order-id>/<label>-s<seed>``, the arm's ``set`` applied after the experiment's and
before the variant's.

The list is ordered seed-major (all of seed 0, then seed 1, …; within a seed, arm by arm as
written, order by order, and labels as written), so an interrupted or partly sharded experiment
has complete seeds first. Run
*i* (0-based) belongs to shard ``I/N`` when ``i % N == I - 1``.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from lhl.config import load_config
from lhl.config.schema import RunConfig
from lhl.engine.build import build_run
from lhl.errors import ConfigError, LhlError
from lhl.experiments.schema import Entry, Experiment

__all__ = ["PlannedRun", "plan_runs", "shard_slice", "parse_shard", "order_id", "yaml_value"]


def order_id(order: list[str]) -> str:
    """``[segmentation, depth, normal]`` → ``"segmentation-depth-normal"`` (a folder of ``runs/``)."""
    return "-".join(order)


def yaml_value(value: Any) -> str:
    """A value as the YAML text ``--set key=<text>`` reads back to the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].strip()
    elif text == "...":
        text = ""
    return text


@dataclass
class PlannedRun:
    """One run of the experiment."""

    index: int  # position in the run list (0-based)
    entry: Entry
    seed: int
    order: list[str]
    base: str
    base_is_file: bool
    overrides: list[str]  # "key=value" texts, as ``lhl run --set`` takes them
    config: RunConfig | None = field(default=None, repr=False)  # resolved by build_run (validated plans)
    arm: str | None = None  # the experiment's arm (None: an experiment without arms)

    @property
    def label(self) -> str:
        return self.entry.label

    @property
    def method(self) -> str:
        return self.entry.method

    @property
    def order_id(self) -> str:
        return order_id(self.order)

    @property
    def name(self) -> str:
        return f"{self.label}-s{self.seed}"

    @property
    def rel_dir(self) -> str:
        """The run directory, relative to the experiment directory."""
        if self.arm is not None:
            return f"runs/{self.arm}/{self.order_id}/{self.name}"
        return f"runs/{self.order_id}/{self.name}"

    def load_config(self) -> RunConfig:
        """The run's configuration, read exactly as ``lhl run`` with :meth:`run_args` reads it."""
        if self.base_is_file:
            return load_config(config_file=self.base, method=self.method, overrides=self.overrides)
        return load_config(preset=self.base, method=self.method, overrides=self.overrides)

    def run_args(self) -> list[str]:
        """The ``lhl run`` arguments that give this run's configuration (without ``--out``)."""
        args = ["--config" if self.base_is_file else "--preset", self.base, "--method", self.method]
        for text in self.overrides:
            args += ["--set", text]
        return args

    def describe(self) -> str:
        arm = f" arm {self.arm}" if self.arm is not None else ""
        return f"{self.label} seed {self.seed} order {self.order_id}{arm}"


def _texts(overrides: dict[str, Any]) -> list[str]:
    return [f"{key}={yaml_value(value)}" for key, value in overrides.items()]


def _arms(experiment: Experiment) -> list[tuple[str | None, dict[str, Any]]]:
    """``[(arm, its set)]``; ``[(None, {})]`` for an experiment without arms."""
    return list(experiment.arms.items()) if experiment.arms is not None else [(None, {})]


def _grid(experiment: Experiment, orders: list[list[str]]) -> list[PlannedRun]:
    runs = []
    for seed in experiment.seeds:
        for arm, arm_set in _arms(experiment):
            for order in orders:
                for entry in experiment.entries():
                    texts = (_texts(experiment.overrides) + _texts(arm_set) + _texts(entry.overrides)
                             + [f"seed={seed}", f"tasks={yaml_value(list(order))}"])
                    runs.append(PlannedRun(len(runs), entry, seed, list(order), experiment.base,
                                           experiment.base_is_file, texts, arm=arm))
    return runs


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@contextlib.contextmanager
def _notes_once(seen: set[str]):
    """Collect the ``lhl: note:`` lines configuration loading prints (e.g. ``--method`` dropping a
    base config's options) and print each distinct one once."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip() and line not in seen:
                seen.add(line)
                print(line, file=sys.stderr)


def plan_runs(experiment: Experiment, validate: bool = True) -> list[PlannedRun]:
    """The run list. With ``validate`` (the default) every run's configuration is read with
    :func:`lhl.config.load_config` and checked with :func:`lhl.engine.build.build_run` — the checks
    ``lhl run`` makes before it writes anything — and each run carries its resolved config; the
    first problem is a :class:`~lhl.errors.LhlError` naming the experiment file and the key
    (``set``, ``methods``, ``variants.<name>``, ``orders[i]``, or the run).

    Without ``validate`` nothing is imported or built; an experiment without ``orders`` then needs
    ``validate`` to learn the default order.
    """
    notes: set[str] = set()
    entries = experiment.entries()

    def check(runs: list[PlannedRun], key: str) -> list[RunConfig]:
        configs = []
        for run in runs:
            try:
                with _notes_once(notes):
                    configs.append(build_run(run.load_config()).config)
            except LhlError as exc:
                raise _prefixed(exc, f"{experiment.where(key)}: ") from None
        return configs

    # 1. the base and the experiment's own `set`, read once (no method: the base's may be anything)
    kwargs = {"config_file": experiment.base} if experiment.base_is_file else {"preset": experiment.base}
    try:
        with _notes_once(notes):
            load_config(**kwargs)
    except LhlError as exc:
        raise _prefixed(exc, f"{experiment.where('base')}: ") from None
    if experiment.overrides:
        try:
            with _notes_once(notes):
                load_config(**kwargs, overrides=_texts(experiment.overrides))
        except LhlError as exc:
            raise _prefixed(exc, f"{experiment.where('set')}: ") from None
    for arm, arm_set in _arms(experiment):
        if not arm_set:
            continue
        try:
            with _notes_once(notes):
                load_config(**kwargs, overrides=_texts(experiment.overrides) + _texts(arm_set))
        except LhlError as exc:
            raise _prefixed(exc, f"{experiment.where('arms')}.{arm}.set: ") from None
    if not validate and experiment.orders is None:
        raise ConfigError(f"{experiment.where('orders')}: missing; the default order is known only after "
                          "validation")

    # 2. the orders: given, or the base configuration's (its tasks or the benchmark's default)
    orders = experiment.orders
    if orders is None:
        first_arm, first_set = _arms(experiment)[0]
        probe = PlannedRun(0, entries[0], experiment.seeds[0], [], experiment.base, experiment.base_is_file,
                           _texts(experiment.overrides) + _texts(first_set) + _texts(entries[0].overrides),
                           arm=first_arm)
        try:
            with _notes_once(notes):
                orders = [list(build_run(probe.load_config()).order)]
        except LhlError as exc:
            without_arm = PlannedRun(0, entries[0], experiment.seeds[0], [], experiment.base, experiment.base_is_file,
                                     _texts(experiment.overrides) + _texts(entries[0].overrides))
            blamed = f"arms.{first_arm}" if first_set and _builds(without_arm) else entries[0].key
            raise _prefixed(exc, f"{experiment.where(blamed)}: ") from None
    runs = _grid(experiment, orders)
    if not validate:
        return runs

    # 3. each label (first arm, order and seed), each further arm (first label, order
    #    and seed), each order (first label and arm), then every run
    first_seed, first_order = experiment.seeds[0], orders[0]
    arms = [arm for arm, _ in _arms(experiment)]
    first_arm = arms[0]
    by_key = {(r.label, r.seed, tuple(r.order), r.arm): r for r in runs}
    for entry in entries:
        key = entry.key if entry.key.startswith("variants.") else f"{entry.key}: {entry.label}"
        run = by_key[(entry.label, first_seed, tuple(first_order), first_arm)]
        try:
            check([run], key)
        except LhlError:
            # blame the first arm when the label is fine without it, or the first order when the
            # label is fine with the base configuration's order
            without_arm = PlannedRun(0, entry, first_seed, list(first_order), experiment.base,
                                     experiment.base_is_file, _texts(experiment.overrides) + _texts(entry.overrides)
                                     + run.overrides[-2:])
            if experiment.arms is not None and experiment.arms[first_arm] and _builds(without_arm):
                check([run], f"arms.{first_arm}")
            default = PlannedRun(0, entry, first_seed, [], experiment.base, experiment.base_is_file,
                                 [t for t in run.overrides if not t.startswith("tasks=")])
            if experiment.orders is None or not _builds(default):
                raise
            check([run], "orders[0]")
    for arm in arms[1:]:
        check([by_key[(entries[0].label, first_seed, tuple(first_order), arm)]], f"arms.{arm}")
    if experiment.orders is not None:
        for i, order in enumerate(orders):
            check([by_key[(entries[0].label, first_seed, tuple(order), first_arm)]], f"orders[{i}]")
    for run in runs:
        run.config = check([run], f"{run.entry.key} ({run.describe()})")[0]

    # 4. two labels that give the same runs would be one row twice in `lhl compare`
    seen: dict[str, PlannedRun] = {}
    for run in runs:
        identity = yaml.safe_dump(run.config.to_dict(), sort_keys=True)
        other = seen.setdefault(identity, run)
        if other is not run:
            if other.arm != run.arm and other.label == run.label:
                raise ConfigError(f"{experiment.where('arms')}.{run.arm}: gives the same configuration as the arm "
                                  f"{other.arm} ({run.describe()}); every arm must differ in some setting")
            raise ConfigError(f"{experiment.where(run.entry.key)}: gives the same configuration as "
                              f"{other.entry.key} ({other.label}); every label must differ in some setting")
    return runs


def _builds(run: PlannedRun) -> bool:
    try:
        with _notes_once(set()):
            build_run(run.load_config())
    except LhlError:
        return False
    return True


def _prefixed(exc: LhlError, prefix: str) -> LhlError:
    """``exc`` again (same class and exit status), its message on one line after ``prefix``."""
    message = prefix + _one_line(exc)
    try:
        new = type(exc)(message)
    except Exception:  # an error class with another constructor (e.g. a plugin's)
        new = ConfigError(message)
    new.exit_code = exc.exit_code
    return new


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/4"`` → ``(2, 4)`` (1-based shard index, number of shards)."""
    if text is None:
        return None
    parts = text.split("/")
    try:
        index, count = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--shard: invalid value {text!r}; expected I/N, e.g. 2/4 (1 <= I <= N)") from None
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"--shard: invalid value {text!r}; expected I/N with 1 <= I <= N")
    return index, count


def shard_slice(runs: list[PlannedRun], shard: tuple[int, int] | None) -> list[PlannedRun]:
    """Shard ``I/N``: the runs with ``index % N == I - 1`` (all runs when ``shard`` is None)."""
    if shard is None:
        return list(runs)
    index, count = shard
    return [r for r in runs if r.index % count == index - 1]
