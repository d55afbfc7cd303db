"""Built-in tasks: segmentation, depth, surface normals and generic regression (HAD paper,
App. C.2, Table 5: cross-entropy, L1 and cosine-distance losses; metrics of App. C.1)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from lhl.metrics import (DepthMetrics, LossMetric, MetricAccumulator, NormalHistogramMetrics, NormalMetrics,
                         SegmentationMetrics)
from lhl.registry import TASKS
from lhl.tasks import resize
from lhl.tasks.base import Task


def soft_target_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Per-pixel T²·KL(softmax(teacher/T) ‖ softmax(student/T)) over dim 1: ``[B,C,H,W]`` → ``[B,H,W]``."""
    log_p = F.log_softmax(teacher / temperature, dim=1)
    log_q = F.log_softmax(student / temperature, dim=1)
    return temperature ** 2 * (log_p.exp() * (log_p - log_q)).sum(dim=1)


def class_index_dtype(num_classes: int) -> torch.dtype:
    """The smallest integer dtype holding class indices 0 … ``num_classes`` − 1."""
    if num_classes <= 256:
        return torch.uint8
    return torch.int16 if num_classes <= 2 ** 15 else torch.int32


@TASKS.register("segmentation")
class SegmentationTask(Task):
    """Cross-entropy with ``ignore_index``; distillation = CE against the teacher's argmax.

    ``metric="loss"`` switches the metric to the test loss (Taskonomy, App. C.1, Table 2).

    Labels are class maps ``[H,W]`` (int64, ``ignore_index`` = no label), resized
    nearest-neighbour and only mirrored by a flip. For the methods: DB-HAD groups the pixels by
    the argmax class of the raw teacher logits (Sec. 4.2: one group per class), LwF distils
    temperature-softened class distributions, iCaRL stores per-class sigmoid probabilities and
    replays them with a binary cross-entropy (iCaRL's per-class sigmoid distillation), and HAD's
    reference variant applies the authors' segmentation rule.
    """

    had_reference_rule = "segmentation"
    display = "classes"

    def __init__(self, name: str, out_channels: int, ignore_index: int = -1, metric: str = "miou") -> None:
        super().__init__(name, out_channels)
        self.ignore_index = int(ignore_index)
        if metric not in ("miou", "loss"):
            raise ValueError(f"segmentation metric must be 'miou' or 'loss', got {metric!r}")
        self.metric = metric
        self.higher_is_better = {"loss": False} if metric == "loss" else {"miou": True, "pixel_acc": True}
        self.invalid_fill = self.ignore_index

    def loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(pred, target, ignore_index=self.ignore_index)

    def loss_sum(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        total = F.cross_entropy(pred, target, ignore_index=self.ignore_index, reduction="sum")
        return total, (target != self.ignore_index).sum()

    def postprocess(self, pred: Tensor) -> Tensor:
        # = pred.argmax(dim=1) (ties: lowest index), several times faster on the CPU (PyTorch 2.x
        # reduces a non-last dimension slowly in argmax, not in max)
        return pred.max(dim=1).indices

    def distill_map(self, student: Tensor, teacher: Tensor) -> Tensor:
        return F.cross_entropy(student, teacher, reduction="none")

    def metrics(self) -> MetricAccumulator:
        if self.metric == "loss":
            return LossMetric()
        return SegmentationMetrics(self.out_channels, self.ignore_index)

    def valid_mask(self, target: Tensor) -> Tensor:
        """Class maps ``[...,H,W]`` → pixels whose label is not ``ignore_index``."""
        return target != self.ignore_index

    def resize_label(self, label: Tensor, size: tuple[int, int], nearest: bool = True) -> Tensor:
        """Nearest-neighbour, always (a class index cannot be interpolated)."""
        size = (int(size[0]), int(size[1]))
        if tuple(label.shape[-2:]) == size:
            return label
        return resize.nearest(label[None], size)[0].long()

    def had_grouping(self, teacher: Tensor) -> tuple[Tensor, Literal["classification", "regression"]]:
        return teacher, "classification"

    def had_grouping_of_pseudo_label(self, pseudo: Tensor) -> tuple[Tensor, Literal["classification", "regression"]]:
        """The teacher's argmax classes ``[B,H,W]`` as a one-hot ``[B,C,H,W]``: its argmax is the
        pseudo-label, so the groups are those of :meth:`had_grouping` on the raw logits."""
        return F.one_hot(pseudo.long(), self.out_channels).permute(0, 3, 1, 2).float(), "classification"

    def compress_pseudo_label(self, pseudo: Tensor, dtype: torch.dtype) -> Tensor:
        """Class indices in the smallest integer type that holds them: uint8 for up to 256
        classes (indices 0–255), int16 up to 32768, int32 beyond (``dtype`` does not apply)."""
        return pseudo.to(class_index_dtype(self.out_channels))

    def expand_pseudo_label(self, stored: Tensor) -> Tensor:
        """Back to int64 class indices (what ``argmax`` returns and cross-entropy takes)."""
        return stored.long()

    def soft_distill_map(self, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
        """T²·KL of the temperature-softened class distributions (Hinton's soft targets)."""
        return soft_target_kl(student, teacher, temperature)

    def replay_target(self, raw: Tensor) -> Tensor:
        return raw.sigmoid()

    def replay_map(self, student: Tensor, stored: Tensor) -> Tensor:
        """Binary cross-entropy of σ(student) against the stored probabilities, ``[B,C,H,W]``."""
        return F.binary_cross_entropy_with_logits(student, stored, reduction="none")


class RegressionTask(Task):
    """L1 over valid pixels; distillation = |S − T| averaged over channels; metric: test loss.

    Labels ``[C,H,W]``, NaN = no label; every other convention is the :class:`Task` default."""

    higher_is_better = {"loss": False}

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
    """Depth (or disparity): valid where gt ≠ 0 and finite; metrics abs/rel error.

    ``zoom`` says how the values change when the view is zoomed in by s (the scale-and-crop
    augmentation, :mod:`lhl.data.transforms`): ``"distance"`` — the scene comes s times closer, so
    depth is divided by s (MTAN's rule); ``"inverse"`` — the values are inverse distances
    (CityScapes' disparity), multiplied by s. MTAN's code divides CityScapes' disparity by s as
    if it were depth; we follow the physics (docs/deviations.md, "Data"). Like MTAN's
    RandomScaleCrop, the augmentation resizes depth nearest-neighbour (:attr:`zoom_nearest`);
    plain resizing is masked bilinear. Invalid pixels are 0.
    """

    colormap = "viridis"

    higher_is_better = {"abs_err": False, "rel_err": False}
    invalid_fill = 0.0
    zoom_nearest = True

    def __init__(self, name: str, out_channels: int = 1, metric: str = "depth",
                 zoom: Literal["distance", "inverse"] = "distance") -> None:
        super().__init__(name, out_channels)
        if metric not in ("depth", "loss"):
            raise ValueError(f"depth metric must be 'depth' or 'loss', got {metric!r}")
        if zoom not in ("distance", "inverse"):
            raise ValueError(f"depth zoom must be 'distance' or 'inverse', got {zoom!r}")
        self.metric, self.zoom = metric, zoom
        if metric == "loss":
            self.higher_is_better = {"loss": False}

    def valid_mask(self, target: Tensor) -> Tensor:
        return (torch.isfinite(target) & (target != 0)).all(dim=-3)

    def metrics(self) -> MetricAccumulator:
        return LossMetric() if self.metric == "loss" else DepthMetrics()

    def zoom_label(self, label: Tensor, scale: float) -> Tensor:
        return label * scale if self.zoom == "inverse" else label / scale


@TASKS.register("normal")
class NormalTask(RegressionTask):
    """Surface normals: prediction L2-normalised, loss 1 − cos over valid (non-zero) pixels.

    Labels ``[3,H,W]`` unit vectors in camera coordinates, all-zero = invalid: a horizontal flip
    negates x (channel 0, in labels and raw outputs alike), interpolated labels are renormalised
    to unit length, and HAD's reference variant applies the authors' normal rule.
    """

    display = "vectors"

    higher_is_better = {"mean": False, "median": False, "within_11.25": True, "within_22.5": True, "within_30": True}
    mirror_channels = (0,)
    invalid_fill = 0.0
    had_reference_rule = "normal"

    def __init__(self, name: str, out_channels: int = 3, metric: str = "angle") -> None:
        super().__init__(name, out_channels)
        if metric not in ("angle", "loss"):
            raise ValueError(f"normal metric must be 'angle' or 'loss', got {metric!r}")
        self.metric = metric
        if metric == "loss":
            self.higher_is_better = {"loss": False}

    def valid_mask(self, target: Tensor) -> Tensor:
        return torch.isfinite(target).all(dim=-3) & (target != 0).any(dim=-3)

    def project_label(self, values: Tensor) -> Tensor:
        """Unit length restored after interpolation (``[3,H,W]``)."""
        return F.normalize(values, dim=-3, eps=1e-12)

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

    def metrics(self, exact_quantiles: bool = True) -> MetricAccumulator:
        """Angle statistics (exact median from every angle, or in constant memory from a fine
        histogram with ``exact_quantiles=False``: ``train.eval_normal_median: histogram``)."""
        if self.metric == "loss":
            return LossMetric()
        return NormalMetrics() if exact_quantiles else NormalHistogramMetrics()
