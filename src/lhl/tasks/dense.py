"""Built-in tasks: segmentation, depth, surface normals and generic regression (SPEC §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lhl.metrics import DepthMetrics, LossMetric, MetricAccumulator, NormalMetrics, SegmentationMetrics
from lhl.registry import TASKS
from lhl.tasks.base import Task


@TASKS.register("segmentation")
class SegmentationTask(Task):
    """Cross-entropy with ``ignore_index``; distillation = CE against the teacher's argmax.

    ``metric="loss"`` switches the metric to the test loss (Taskonomy, SPEC §2)."""

    kind = "classification"

    def __init__(self, name: str, out_channels: int, ignore_index: int = -1, metric: str = "miou") -> None:
        super().__init__(name, out_channels)
        self.ignore_index = int(ignore_index)
        if metric not in ("miou", "loss"):
            raise ValueError(f"segmentation metric must be 'miou' or 'loss', got {metric!r}")
        self.metric = metric
        self.higher_is_better = {"loss": False} if metric == "loss" else {"miou": True, "pixel_acc": True}

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(pred, target, ignore_index=self.ignore_index)

    def loss_sum(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        total = F.cross_entropy(pred, target, ignore_index=self.ignore_index, reduction="sum")
        return total, (target != self.ignore_index).sum()

    def postprocess(self, pred: Tensor) -> Tensor:
        return pred.argmax(dim=1)

    def distill_map(self, student: Tensor, teacher: Tensor) -> Tensor:
        return F.cross_entropy(student, teacher, reduction="none")

    def metrics(self) -> MetricAccumulator:
        if self.metric == "loss":
            return LossMetric()
        return SegmentationMetrics(self.out_channels, self.ignore_index)


class RegressionTask(Task):
    """L1 over valid pixels; distillation = |S − T| averaged over channels; metric: test loss."""

    kind = "regression"
    higher_is_better = {"loss": False}

    def valid_mask(self, target: Tensor) -> Tensor:
        """``[B,H,W]`` bool: pixels where every channel is finite."""
        return torch.isfinite(target).all(dim=1)

    def _l1_sum(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        valid = self.valid_mask(target)
        diff = (pred - torch.nan_to_num(target)).abs().mean(dim=1)
        return (diff * valid).sum(), valid.sum()

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        total, count = self._l1_sum(pred, target)
        return total / count.clamp(min=1)

    def loss_sum(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return self._l1_sum(pred, target)

    def distill_map(self, student: Tensor, teacher: Tensor) -> Tensor:
        return (student - teacher).abs().mean(dim=1)

    def metrics(self) -> MetricAccumulator:
        return LossMetric()


TASKS.register("regression")(RegressionTask)


@TASKS.register("depth")
class DepthTask(RegressionTask):
    """Depth (or disparity): valid where gt ≠ 0 and finite; metrics abs/rel error."""

    higher_is_better = {"abs_err": False, "rel_err": False}

    def __init__(self, name: str, out_channels: int = 1, metric: str = "depth") -> None:
        super().__init__(name, out_channels)
        if metric not in ("depth", "loss"):
            raise ValueError(f"depth metric must be 'depth' or 'loss', got {metric!r}")
        self.metric = metric
        if metric == "loss":
            self.higher_is_better = {"loss": False}

    def valid_mask(self, target: Tensor) -> Tensor:
        return (torch.isfinite(target) & (target != 0)).all(dim=1)

    def metrics(self) -> MetricAccumulator:
        return LossMetric() if self.metric == "loss" else DepthMetrics()


@TASKS.register("normal")
class NormalTask(RegressionTask):
    """Surface normals: prediction L2-normalised, loss 1 − cos over valid (non-zero) pixels."""

    higher_is_better = {"mean": False, "median": False, "within_11.25": True, "within_22.5": True, "within_30": True}

    def __init__(self, name: str, out_channels: int = 3, metric: str = "angle") -> None:
        super().__init__(name, out_channels)
        if metric not in ("angle", "loss"):
            raise ValueError(f"normal metric must be 'angle' or 'loss', got {metric!r}")
        self.metric = metric
        if metric == "loss":
            self.higher_is_better = {"loss": False}

    def valid_mask(self, target: Tensor) -> Tensor:
        return torch.isfinite(target).all(dim=1) & (target != 0).any(dim=1)

    def postprocess(self, pred: Tensor) -> Tensor:
        return F.normalize(pred, dim=1, eps=1e-12)

    def _cos_sum(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        valid = self.valid_mask(target)
        cos = (self.postprocess(pred) * torch.nan_to_num(target)).sum(dim=1)
        return ((1 - cos) * valid).sum(), valid.sum()

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        total, count = self._cos_sum(pred, target)
        return total / count.clamp(min=1)

    def loss_sum(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return self._cos_sum(pred, target)

    def distill_map(self, student: Tensor, teacher: Tensor) -> Tensor:
        """1 − cos(S, T) per pixel, clamped at 0: the dot product of two float32 unit vectors can
        round above 1, and a slightly negative ℓ makes HAD's log(ℓ + ε) NaN where S = T."""
        return (1 - (self.postprocess(student) * teacher).sum(dim=1)).clamp_min(0)

    def metrics(self) -> MetricAccumulator:
        return LossMetric() if self.metric == "loss" else NormalMetrics()
