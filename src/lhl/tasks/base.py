"""The task interface (SPEC §2).

A task knows its loss against ground truth (with validity masks), its per-pixel distillation
map against a teacher, how a teacher output becomes a pseudo-label, its post-processing, and
its metrics with their direction. Targets use one convention for validity so loaders can
mark invalid pixels without extra mask tensors: segmentation uses ``ignore_index``; depth 0
or non-finite; normals all-zero or non-finite; other regression tasks non-finite (NaN).
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from lhl.metrics import LossMetric, MetricAccumulator


class Task:
    """Base class; subclasses are registered in :data:`lhl.registry.TASKS` by kind."""

    kind: ClassVar[str] = "regression"  # or "classification"
    higher_is_better: ClassVar[dict[str, bool]] = {}

    def __init__(self, name: str, out_channels: int) -> None:
        self.name = name
        self.out_channels = int(out_channels)

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """L_new: scalar loss of raw output ``pred [B,C,H,W]`` against ground truth."""
        raise NotImplementedError

    def loss_sum(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of per-pixel losses over valid pixels, number of valid pixels); for test loss."""
        raise NotImplementedError

    def postprocess(self, pred: Tensor) -> Tensor:
        """Raw head output → prediction in label space (used for metrics and pseudo-labels)."""
        return pred

    def pseudo_label(self, teacher_out: Tensor) -> Tensor:
        """Teacher raw output → target for distillation (post-processed, detached)."""
        return self.postprocess(teacher_out).detach()

    def distill_map(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Per-pixel distillation loss ℓ ``[B,H,W]`` of student raw output vs teacher post-processed output."""
        raise NotImplementedError

    def metrics(self) -> MetricAccumulator:
        """A fresh accumulator of this task's metrics."""
        raise NotImplementedError

    def update_metrics(self, accumulator: MetricAccumulator, pred: Tensor, target: Tensor) -> None:
        """Feed one batch of raw outputs ``pred`` and ground truth into ``accumulator``."""
        if isinstance(accumulator, LossMetric):
            accumulator.update(*self.loss_sum(pred, target))
        else:
            accumulator.update(self.postprocess(pred), target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, out_channels={self.out_channels})"
