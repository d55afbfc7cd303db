"""Metrics: streaming dense-prediction accumulators and table summaries (HAD paper, App. C.1; Sec. 5.1, eq. 11).

* :mod:`lhl.metrics.dense` — :class:`SegmentationMetrics`, :class:`DepthMetrics`,
  :class:`NormalMetrics`, :class:`LossMetric` (update per batch, compute once over the set). Which
  direction is better is declared by each task (:attr:`lhl.tasks.Task.higher_is_better`), not here.
* :mod:`lhl.metrics.summary` — eq. 11's relative improvement, mean rank, forgetting, backward
  transfer and ``performance.json`` helpers.
"""

from lhl.metrics.dense import (
    DepthMetrics,
    LossMetric,
    MetricAccumulator,
    NormalHistogramMetrics,
    NormalMetrics,
    SegmentationMetrics,
)
from lhl.metrics.summary import (
    backward_transfer,
    directions_for,
    final_result,
    forgetting,
    matrix_from_performance,
    mean_rank,
    relative_improvement,
    task_relative_improvement,
)

__all__ = [
    "MetricAccumulator",
    "SegmentationMetrics",
    "DepthMetrics",
    "NormalMetrics",
    "NormalHistogramMetrics",
    "LossMetric",
    "relative_improvement",
    "task_relative_improvement",
    "mean_rank",
    "forgetting",
    "backward_transfer",
    "final_result",
    "matrix_from_performance",
    "directions_for",
]
