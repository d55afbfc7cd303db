"""Task definitions (SPEC §2), registered by kind name in :data:`lhl.registry.TASKS`."""

from lhl.tasks.base import Task
from lhl.tasks.dense import DepthTask, NormalTask, RegressionTask, SegmentationTask

__all__ = ["DepthTask", "NormalTask", "RegressionTask", "SegmentationTask", "Task"]
