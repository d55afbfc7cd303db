"""The benchmark interface: a dataset plus its task sequence (SPEC §1, §6).

A benchmark builds ``torch.utils.data.Dataset`` objects for a split, a subset of image
indices and a set of tasks. Items are dicts: ``"image"`` ``[3,H,W]`` float in [0, 1] plus
one entry per requested task (label conventions in :mod:`lhl.tasks.base`). A benchmark must
never read labels of tasks it was not asked for — that is how phase t is kept from seeing
other tasks' labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from torch.utils.data import Dataset

from lhl.config.schema import DataConfig
from lhl.registry import TASKS
from lhl.tasks import Task


@dataclass(frozen=True)
class TaskSpec:
    """How a benchmark's task is built: the registered task type, channels and options."""

    type: str
    channels: int
    options: dict[str, Any] = field(default_factory=dict)


class Benchmark:
    """Base class; subclasses are registered in :data:`lhl.registry.BENCHMARKS`."""

    name: ClassVar[str] = ""
    default_tasks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data: DataConfig, seed: int) -> None:
        self.data = data
        self.seed = seed

    def task_specs(self) -> dict[str, TaskSpec]:
        """Every task this benchmark can provide."""
        raise NotImplementedError

    def make_task(self, name: str) -> Task:
        specs = self.task_specs()
        if name not in specs:
            raise ValueError(f"benchmark {self.name!r} has no task {name!r}; its tasks: {', '.join(specs)}")
        spec = specs[name]
        return TASKS.get(spec.type)(name, spec.channels, **spec.options)

    def num_images(self, split: str) -> int:
        raise NotImplementedError

    def dataset(self, split: str, indices: Sequence[int], tasks: Sequence[str]) -> Dataset:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short string identifying the data (recorded in provenance.json)."""
        raise NotImplementedError
