"""Benchmarks, splits and the synthetic renderer."""

from lhl.data import synthetic_benchmark  # noqa: F401  (registers the synthetic benchmarks)
from lhl.data import cityscapes, nyuv2, taskonomy  # noqa: F401  (register the paper's benchmarks)
from lhl.data.base import Benchmark, TaskSpec
from lhl.data.errors import DataError
from lhl.data.splits import phase_chunks

__all__ = ["Benchmark", "DataError", "TaskSpec", "phase_chunks"]
