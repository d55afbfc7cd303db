"""Benchmarks, splits and the synthetic renderer."""

from lhl.data import synthetic_benchmark  # noqa: F401  (registers the synthetic benchmarks)
from lhl.data import cityscapes, nyuv2, taskonomy  # noqa: F401  (register the paper's benchmarks)
from lhl.config.schema import DataConfig
from lhl.data.base import Benchmark, TaskSpec
from lhl.data.splits import phase_chunks
from lhl.errors import DataError
from lhl.registry import BENCHMARKS


def benchmark_tasks() -> dict[str, list[str]]:
    """Every registered benchmark (sorted by name) → the tasks it offers, its default sequence
    first, then the others. Needs no ``data.root``: benchmarks are built with default data
    settings and :meth:`Benchmark.task_specs` never reads the disk."""
    return {name: BENCHMARKS.get(name)(DataConfig(), 0).task_names() for name in BENCHMARKS.names()}


__all__ = ["Benchmark", "DataError", "TaskSpec", "benchmark_tasks", "phase_chunks"]
