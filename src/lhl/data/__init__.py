"""Benchmarks, splits and the synthetic renderer."""

from lhl.data import synthetic_benchmark  # noqa: F401  (registers the synthetic benchmarks)
from lhl.data.base import Benchmark, TaskSpec
from lhl.data.splits import phase_chunks

__all__ = ["Benchmark", "TaskSpec", "phase_chunks"]
