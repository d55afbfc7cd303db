"""The benchmark interface: a dataset plus its task sequence (paper §3; README, "Benchmarks and datasets").

A benchmark builds ``torch.utils.data.Dataset`` objects for a split, a subset of image
indices and a set of tasks. Items are dicts: ``"image"`` ``[3,H,W]`` float in [0, 1], ``"index"``
(the item's position in the dataset, an int64 scalar: what a per-phase cache, e.g. the frozen
teacher's outputs, is keyed by) plus one entry per requested task (label conventions in
:mod:`lhl.tasks.base`). A benchmark must
never read labels of tasks it was not asked for — that is how phase t is kept from seeing
other tasks' labels.

The engine calls :meth:`Benchmark.validate` while it assembles a run, before it writes
anything, so that a bad ``data.*`` setting or a bad ``data.root`` fails with one line;
:meth:`Benchmark.fingerprint` identifies the data in ``provenance.json`` and on resume.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Sequence

from torch.utils.data import Dataset

from lhl.config.schema import DataConfig
from lhl.errors import ConfigError
from lhl.registry import TASKS
from lhl.tasks import Task

#: data settings that only the taskonomy benchmark reads
TASKONOMY_OPTIONS = ("taskonomy_split", "taskonomy_depth", "taskonomy_classes")
#: data settings that never change what a benchmark yields (excluded from fingerprints)
NOT_DATA = ("root", "num_workers")


@dataclass(frozen=True)
class TaskSpec:
    """How a benchmark's task is built: the registered task type (a name in
    :data:`lhl.registry.TASKS`), its output channels and its keyword options — e.g.
    ``TaskSpec("depth", 1, {"zoom": "inverse"})`` for CityScapes' disparity. The task object
    (:meth:`Benchmark.make_task`) then says how the label is validated, resized and augmented."""

    type: str
    channels: int
    options: dict[str, Any] = field(default_factory=dict)


class Benchmark:
    """Base class; subclasses are registered in :data:`lhl.registry.BENCHMARKS`.

    Constructing a benchmark never touches the disk: :meth:`task_specs` works without
    ``data.root`` (``lhl list``), and :meth:`validate` is where the data is first looked at.
    """

    name: ClassVar[str] = ""
    default_tasks: ClassVar[tuple[str, ...]] = ()
    #: whether the ``data.taskonomy_*`` settings mean something to this benchmark
    reads_taskonomy_options: ClassVar[bool] = False

    def __init__(self, data: DataConfig, seed: int) -> None:
        self.data = data
        self.seed = seed

    def task_specs(self) -> dict[str, TaskSpec]:
        """Every task this benchmark can provide (never reads the disk)."""
        raise NotImplementedError

    def task_names(self) -> list[str]:
        """The tasks this benchmark offers: the default sequence first, then the others."""
        specs = self.task_specs()
        return [t for t in self.default_tasks if t in specs] + [t for t in specs if t not in self.default_tasks]

    def check_tasks(self, tasks: Sequence[str]) -> None:
        """A :class:`ConfigError` naming ``tasks`` when one of them is not offered."""
        specs = self.task_specs()
        for task in tasks:
            if task not in specs:
                raise ConfigError(f"tasks: benchmark {self.name!r} has no task {task!r}; "
                                  f"its tasks: {', '.join(self.task_names())}")

    def make_task(self, name: str) -> Task:
        self.check_tasks([name])
        spec = self.task_specs()[name]
        return TASKS.get(spec.type)(name, spec.channels, **spec.options)

    def validate(self, tasks: Sequence[str] | None = None) -> None:
        """Check the data settings (and, for on-disk benchmarks, ``data.root``) for a run of
        ``tasks`` (None: the default sequence), before anything is written.

        Raises :class:`ConfigError` for a setting this benchmark cannot honour and
        :class:`~lhl.errors.DataError` for a dataset that cannot be read; each message is one
        line naming the key or path and what was expected. Listing files is allowed here;
        label files are never opened.
        """
        self.check_tasks(self.default_tasks if tasks is None else tasks)
        for key in ("train_size", "test_size"):
            value = getattr(self.data, key)
            if value is not None and value < 1:
                raise ConfigError(f"data.{key}: invalid value {value!r}; expected an integer >= 1 or null")
        if not self.reads_taskonomy_options:
            defaults = DataConfig()
            for key in TASKONOMY_OPTIONS:
                if getattr(self.data, key) != getattr(defaults, key):
                    raise ConfigError(f"data.{key}: applies only to the taskonomy benchmark; benchmark "
                                      f"{self.name!r} would ignore it (remove it or leave the default "
                                      f"{getattr(defaults, key)!r})")

    def num_images(self, split: str) -> int:
        raise NotImplementedError

    def dataset(self, split: str, indices: Sequence[int], tasks: Sequence[str]) -> Dataset:
        raise NotImplementedError

    def fingerprint(self, tasks: Sequence[str] | None = None) -> str:
        """A short string identifying the data (recorded in provenance.json, compared on resume).

        Deterministic across processes and machines; independent of where ``data.root`` lies
        and of ``data.num_workers``.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for fingerprints
    def settings_digest(self, **extra: Any) -> str:
        """12 hex digits of the data settings that change the samples (all but ``root`` and
        ``num_workers``), plus ``extra``, as canonical JSON (sorted keys)."""
        settings = {f.name: getattr(self.data, f.name) for f in fields(self.data) if f.name not in NOT_DATA}
        if not settings.get("val_size"):  # no validation split: the digest of runs made before it existed
            settings.pop("val_size", None)
        settings.update(extra, benchmark=self.name)
        text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
