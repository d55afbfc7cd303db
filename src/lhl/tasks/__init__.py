"""Task definitions (HAD paper, App. C.2, Table 5), registered by name in :data:`lhl.registry.TASKS`.

Every task declares its semantics on its class (:mod:`lhl.tasks.base` lists them): a new kind
of task is one class, registered by name, and no other module needs to change.
"""

from lhl.tasks.base import Task
from lhl.tasks.dense import DepthTask, NormalTask, RegressionTask, SegmentationTask

__all__ = ["DepthTask", "NormalTask", "RegressionTask", "SegmentationTask", "Task"]
