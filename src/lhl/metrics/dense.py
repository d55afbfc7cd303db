"""Dense-prediction metric accumulators (HAD paper, App. C.1; docs/deviations.md, "Metrics").

Every accumulator follows the LibMTL pattern: call :meth:`~MetricAccumulator.update` once per
batch, then :meth:`~MetricAccumulator.compute` once over the **whole** evaluation set. The
accumulators keep *sufficient statistics* (confusion matrix, pixel sums and counts, the list of
normal angles) rather than per-batch metric values, so every metric is pixel-weighted over the
whole set and never a mean of batch means.

Statistics live on the CPU in ``float64`` / ``int64``. Inputs may live on any device: the
reduction (masking, ``bincount``, sums) runs on the inputs' device and only the reduced
statistics are moved to the CPU. :meth:`~MetricAccumulator.state_dict` exposes the statistics as
tensors and :attr:`~MetricAccumulator.STATE_REDUCTION` says how each one combines across
processes (``"sum"``: all-reduce by addition; ``"cat"``: all-gather and concatenate along dim 0).
:meth:`~MetricAccumulator.merge` applies exactly that combination to another accumulator.

Empty sets: :meth:`~MetricAccumulator.compute` on an accumulator that has seen no valid pixel
(or, for :class:`LossMetric`, a zero count) raises :class:`ValueError` rather than returning NaN,
so that an evaluation that silently skipped every pixel cannot produce a plausible-looking table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MetricAccumulator",
    "SegmentationMetrics",
    "DepthMetrics",
    "NormalMetrics",
    "NormalHistogramMetrics",
    "LossMetric",
]

Reduction = Literal["sum", "cat"]


def _acc_dtype(device: torch.device) -> torch.dtype:
    """Widest float dtype for on-device reductions (MPS has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _as_4d(x: Tensor, name: str, channels: int) -> Tensor:
    """Accept ``[B, C, H, W]`` or, when ``channels == 1``, ``[B, H, W]``; return ``[B, C, H, W]``."""
    if x.dim() == 3 and channels == 1:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape [B, {channels}, H, W]"
            + (" (or [B, H, W])" if channels == 1 else "")
            + f", got {tuple(x.shape)}"
        )
    return x


class MetricAccumulator(ABC):
    """Base class of the streaming metric accumulators.

    Subclasses keep their sufficient statistics as CPU tensors and declare in
    :attr:`STATE_REDUCTION` how each statistic combines across processes. The generic
    :meth:`merge` then works for every subclass::

        acc = DepthMetrics()
        for pred, target in loader:
            acc.update(pred, target)
        acc.compute()  # {"abs_err": ..., "rel_err": ...}
    """

    #: How each entry of :meth:`state_dict` combines across processes: ``"sum"`` (element-wise
    #: addition, e.g. ``all_reduce``) or ``"cat"`` (concatenation along dim 0, e.g. ``all_gather``).
    STATE_REDUCTION: ClassVar[dict[str, Reduction]] = {}

    def __init__(self) -> None:
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Forget every statistic (back to the freshly-constructed state)."""

    @abstractmethod
    def update(self, *args, **kwargs) -> None:
        """Add one batch to the statistics."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Metrics over everything seen since the last :meth:`reset`.

        Raises:
            ValueError: if no valid pixel (or sample) was seen.
        """

    @abstractmethod
    def state_dict(self) -> dict[str, Tensor]:
        """The sufficient statistics, as new CPU tensors (keys as in :attr:`STATE_REDUCTION`)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Replace the statistics with ``state`` (e.g. after an all-reduce / all-gather)."""

    def _check_compatible(self, other: MetricAccumulator) -> None:
        if type(other) is not type(self):
            raise TypeError(
                f"cannot merge {type(other).__name__} into {type(self).__name__}"
            )

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """Add ``other``'s statistics to this accumulator, in place.

        After ``a.merge(b)``, ``a.compute()`` equals the result of one accumulator fed every batch
        of ``a`` and ``b``. ``other`` is not modified.

        Returns:
            ``self``, for chaining.
        """
        self._check_compatible(other)
        mine, theirs = self.state_dict(), other.state_dict()
        combined: dict[str, Tensor] = {}
        for key, how in self.STATE_REDUCTION.items():
            if how == "sum":
                combined[key] = mine[key] + theirs[key]
            else:
                combined[key] = torch.cat([mine[key], theirs[key]], dim=0)
        self.load_state_dict(combined)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SegmentationMetrics(MetricAccumulator):
    """Confusion-matrix mIoU and pixel accuracy for semantic segmentation (App. C.1).

    The confusion matrix ``CM`` (rows: ground truth, columns: prediction) is accumulated over the
    whole set; pixels whose target equals ``ignore_index`` are dropped. Then

    * ``IoU_c = CM_cc / (row_c + col_c - CM_cc)``;
    * ``miou`` = mean of ``IoU_c`` over the classes present in ground truth **or** prediction
      (a class absent from both is skipped, never NaN), in percent;
    * ``pixel_acc`` = ``trace(CM) / CM.sum()``, in percent.

    Args:
        num_classes (int): number of classes ``C``; valid labels are ``0 … C-1``.
        ignore_index (int): target label to drop. Default ``-1`` (NYUv2 / CityScapes).

    ``update`` raises :class:`ValueError` naming the value when a target label (other than
    ``ignore_index``) or a predicted label is outside ``0 … C-1``.
    """

    STATE_REDUCTION: ClassVar[dict[str, Reduction]] = {"confusion": "sum"}

    def __init__(self, num_classes: int, ignore_index: int = -1) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        super().__init__()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch.

        Args:
            pred (Tensor[B, H, W], int64): predicted class labels. Logits ``Tensor[B, C, H, W]``
                (floating point) are also accepted and reduced with ``argmax`` over dim 1.
            target (Tensor[B, H, W], int64): ground-truth labels, ``ignore_index`` for unlabelled
                pixels. ``Tensor[B, 1, H, W]`` is accepted too.
        """
        if pred.is_floating_point():
            if pred.dim() != 4 or pred.shape[1] != self.num_classes:
                raise ValueError(
                    f"floating-point pred must be logits of shape [B, {self.num_classes}, H, W], "
                    f"got {tuple(pred.shape)}"
                )
            pred = pred.argmax(dim=1)
        if target.dim() == 4 and target.shape[1] == 1:
            target = target[:, 0]
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
            )
        target = target.to(device=pred.device).long().reshape(-1)
        pred = pred.long().reshape(-1)
        keep = target != self.ignore_index
        target, pred = target[keep], pred[keep]
        c = self.num_classes
        bad_t = (target < 0) | (target >= c)
        if bool(bad_t.any()):
            value = int(target[bad_t][0])
            raise ValueError(
                f"target label {value} is outside 0..{c - 1} and is not ignore_index "
                f"({self.ignore_index})"
            )
        bad_p = (pred < 0) | (pred >= c)
        if bool(bad_p.any()):
            value = int(pred[bad_p][0])
            raise ValueError(f"predicted label {value} is outside 0..{c - 1}")
        counts = torch.bincount(target * c + pred, minlength=c * c)
        self.confusion += counts.reshape(c, c).to(device="cpu", dtype=torch.int64)

    def iou_per_class(self) -> Tensor:
        """``Tensor[C]`` float64 IoU per class in percent, NaN for classes absent from gt and pred."""
        cm = self.confusion.to(torch.float64)
        inter = cm.diagonal()
        union = cm.sum(dim=1) + cm.sum(dim=0) - inter
        iou = torch.full_like(inter, float("nan"))
        present = union > 0
        iou[present] = inter[present] / union[present] * 100.0
        return iou

    def compute(self) -> dict[str, float]:
        """Returns ``{"miou": %, "pixel_acc": %}``. Raises ValueError if no labelled pixel was seen."""
        total = int(self.confusion.sum())
        if total == 0:
            raise ValueError(
                "SegmentationMetrics.compute(): no labelled pixel was seen "
                "(every target was ignore_index, or update() was never called)"
            )
        iou = self.iou_per_class()
        miou = iou[~torch.isnan(iou)].mean()
        pixel_acc = self.confusion.diagonal().sum().to(torch.float64) / total * 100.0
        return {"miou": float(miou), "pixel_acc": float(pixel_acc)}

    def state_dict(self) -> dict[str, Tensor]:
        return {"confusion": self.confusion.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        cm = state["confusion"]
        if tuple(cm.shape) != (self.num_classes, self.num_classes):
            raise ValueError(
                f"confusion matrix of shape {tuple(cm.shape)} does not fit num_classes="
                f"{self.num_classes}"
            )
        self.confusion = cm.to(device="cpu", dtype=torch.int64).clone()

    def _check_compatible(self, other: MetricAccumulator) -> None:
        super()._check_compatible(other)
        assert isinstance(other, SegmentationMetrics)
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge SegmentationMetrics with num_classes={other.num_classes} into one "
                f"with num_classes={self.num_classes}"
            )

    def __repr__(self) -> str:
        return (
            f"SegmentationMetrics(num_classes={self.num_classes}, "
            f"ignore_index={self.ignore_index})"
        )


class DepthMetrics(MetricAccumulator):
    """Absolute and relative depth error, pixel-weighted over the whole set (App. C.1).

    Valid pixels: target ``g != 0`` and finite. Over all valid pixels of the set,

    * ``abs_err = Σ|p − g| / #valid`` (units of the depth map);
    * ``rel_err = Σ(|p − g| / |g|) / #valid`` (a ratio, not percent; ``|g| = g`` for depth, the
      absolute value only keeps signed targets such as disparity-with-offset meaningful).

    Statistics: ``abs_sum``, ``rel_sum`` (float64) and ``count`` (int64), all summable.
    """

    STATE_REDUCTION: ClassVar[dict[str, Reduction]] = {
        "abs_sum": "sum",
        "rel_sum": "sum",
        "count": "sum",
    }

    def reset(self) -> None:
        self.abs_sum = torch.zeros((), dtype=torch.float64)
        self.rel_sum = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.int64)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch.

        Args:
            pred (Tensor[B, 1, H, W]): predicted depth (``[B, H, W]`` accepted).
            target (Tensor[B, 1, H, W]): ground-truth depth, 0 (or non-finite) where invalid
                (``[B, H, W]`` accepted).
        """
        pred = _as_4d(pred, "pred", 1)
        target = _as_4d(target, "target", 1)
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
            )
        dtype = _acc_dtype(pred.device)
        p = pred.detach().to(dtype)
        g = target.detach().to(device=pred.device, dtype=dtype)
        valid = (g != 0) & torch.isfinite(g)
        p, g = p[valid], g[valid]
        diff = (p - g).abs()
        stats = torch.stack([diff.sum(), (diff / g.abs()).sum()]).to("cpu", torch.float64)
        self.abs_sum += stats[0]
        self.rel_sum += stats[1]
        self.count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        """Returns ``{"abs_err", "rel_err"}``. Raises ValueError if no valid pixel was seen."""
        n = int(self.count)
        if n == 0:
            raise ValueError(
                "DepthMetrics.compute(): no valid depth pixel was seen (every target was 0 or "
                "non-finite, or update() was never called)"
            )
        return {"abs_err": float(self.abs_sum / n), "rel_err": float(self.rel_sum / n)}

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "abs_sum": self.abs_sum.clone(),
            "rel_sum": self.rel_sum.clone(),
            "count": self.count.clone(),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.abs_sum = state["abs_sum"].to("cpu", torch.float64).reshape(()).clone()
        self.rel_sum = state["rel_sum"].to("cpu", torch.float64).reshape(()).clone()
        self.count = state["count"].to("cpu", torch.int64).reshape(()).clone()


class NormalMetrics(MetricAccumulator):
    """Angular error of surface normals (App. C.1).

    The prediction is L2-normalised per pixel (``eps = 1e-12``, so a zero prediction gives the
    zero vector and a 90° error); the ground truth is normalised the same way, which changes
    nothing for unit ground truth and gives the true angle for slightly non-unit stored normals.
    Valid pixels: target not all-zero and all three components finite. Per valid pixel,
    ``angle = degrees(arccos(clamp(<p̂, ĝ>, −1, 1)))``; over all valid pixels of the set:

    * ``mean``, ``median`` — in degrees. The median is exact: for an odd count the middle value,
      for an even count **the mean of the two middle values** (``torch.median`` would return the
      lower one). Computed with ``torch.kthvalue``, which has no size limit (unlike
      ``torch.quantile``);
    * ``within_11.25``, ``within_22.5``, ``within_30`` — percent of angles strictly below the
      threshold (``<``, as in LibMTL).

    All valid angles are stored (float64, CPU, a list of per-batch chunks; ``state_dict`` key
    ``angles``, combined by concatenation). Memory: 8 bytes per valid test pixel.
    """

    STATE_REDUCTION: ClassVar[dict[str, Reduction]] = {"angles": "cat"}
    THRESHOLDS: ClassVar[tuple[float, ...]] = (11.25, 22.5, 30.0)

    def reset(self) -> None:
        self._chunks: list[Tensor] = []

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch.

        Args:
            pred (Tensor[B, 3, H, W]): predicted normals, any norm.
            target (Tensor[B, 3, H, W]): ground-truth normals, all-zero where invalid.
        """
        pred = _as_4d(pred, "pred", 3)
        target = _as_4d(target, "target", 3)
        if pred.shape != target.shape:
            raise ValueError(
                f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
            )
        dtype = _acc_dtype(pred.device)
        p = pred.detach().to(dtype)
        g = target.detach().to(device=pred.device, dtype=dtype)
        valid = (g != 0).any(dim=1) & torch.isfinite(g).all(dim=1)  # [B, H, W]
        p = F.normalize(p, p=2.0, dim=1, eps=1e-12)
        g = F.normalize(g, p=2.0, dim=1, eps=1e-12)
        cos = (p * g).sum(dim=1)[valid].clamp(-1.0, 1.0)
        angles = torch.rad2deg(torch.arccos(cos))
        if angles.numel():
            self._chunks.append(angles.to("cpu", torch.float64))

    def _angles(self) -> Tensor:
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks)]
        return self._chunks[0] if self._chunks else torch.zeros(0, dtype=torch.float64)

    @staticmethod
    def _median(x: Tensor) -> float:
        n = x.numel()
        k = n // 2
        if n % 2:
            return float(torch.kthvalue(x, k + 1).values)
        lo = torch.kthvalue(x, k).values
        hi = torch.kthvalue(x, k + 1).values
        return float((lo + hi) / 2)

    def compute(self) -> dict[str, float]:
        """Returns ``{"mean", "median", "within_11.25", "within_22.5", "within_30"}``.

        Raises ValueError if no valid pixel was seen.
        """
        a = self._angles()
        n = a.numel()
        if n == 0:
            raise ValueError(
                "NormalMetrics.compute(): no valid normal pixel was seen (every target was "
                "all-zero or non-finite, or update() was never called)"
            )
        out = {"mean": float(a.mean()), "median": self._median(a)}
        for t in self.THRESHOLDS:
            key = f"within_{t:g}"
            out[key] = float((a < t).sum()) / n * 100.0
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return {"angles": self._angles().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        angles = state["angles"].to("cpu", torch.float64).reshape(-1).clone()
        self._chunks = [angles] if angles.numel() else []

    def merge(self, other: MetricAccumulator) -> NormalMetrics:
        """Append ``other``'s angles (no copy of this accumulator's own angles)."""
        self._check_compatible(other)
        assert isinstance(other, NormalMetrics)
        self._chunks.extend(c.clone() for c in other._chunks)
        return self


class NormalHistogramMetrics(NormalMetrics):
    """:class:`NormalMetrics` in constant memory, for test sets too large to keep every angle: the
    angles are counted in a fine histogram over [0°, 180°] (``bins_per_degree`` bins per degree,
    default 1000: 180,000 int64 counts, 1.4 MB), which sums across processes like a confusion
    matrix.

    ``mean`` and the three ``within_*`` percentages are exact (a float64 sum and exact counts
    below each threshold); ``median`` is the centre of the bin that holds the middle value (for an
    even count, the mean of the two middle values' bin centres), within half a bin
    (0.0005° by default) of the exact median.
    """

    STATE_REDUCTION: ClassVar[dict[str, Reduction]] = {"histogram": "sum", "angle_sum": "sum", "count": "sum",
                                                       "below": "sum"}

    def __init__(self, bins_per_degree: int = 1000) -> None:
        if int(bins_per_degree) < 1:
            raise ValueError(f"bins_per_degree must be >= 1, got {bins_per_degree}")
        self.bins_per_degree = int(bins_per_degree)
        super().__init__()

    def reset(self) -> None:
        self.histogram = torch.zeros(180 * self.bins_per_degree, dtype=torch.int64)
        self.angle_sum = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.int64)
        self.below = torch.zeros(len(self.THRESHOLDS), dtype=torch.int64)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch (shapes as :meth:`NormalMetrics.update`)."""
        self._chunks = []
        super().update(pred, target)
        if not self._chunks:
            return
        angles = self._chunks.pop()
        bins = (angles * self.bins_per_degree).long().clamp_(0, self.histogram.numel() - 1)
        self.histogram += torch.bincount(bins, minlength=self.histogram.numel())
        self.angle_sum += angles.sum()
        self.count += angles.numel()
        self.below += torch.stack([(angles < t).sum() for t in self.THRESHOLDS])

    def _bin_centre(self, rank: int) -> float:
        """Centre of the bin holding the ``rank``-th smallest angle (1-based)."""
        index = int(torch.searchsorted(torch.cumsum(self.histogram, 0), torch.tensor(rank)))
        return (index + 0.5) / self.bins_per_degree

    def compute(self) -> dict[str, float]:
        n = int(self.count)
        if n == 0:
            raise ValueError("NormalHistogramMetrics.compute(): no valid normal pixel was seen")
        k = n // 2
        median = self._bin_centre(k + 1) if n % 2 else (self._bin_centre(k) + self._bin_centre(k + 1)) / 2
        out = {"mean": float(self.angle_sum / n), "median": median}
        for t, below in zip(self.THRESHOLDS, self.below.tolist()):
            out[f"within_{t:g}"] = below / n * 100.0
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return {"histogram": self.histogram.clone(), "angle_sum": self.angle_sum.clone(),
                "count": self.count.clone(), "below": self.below.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.histogram = state["histogram"].to("cpu", torch.int64).clone()
        self.angle_sum = state["angle_sum"].to("cpu", torch.float64).reshape(()).clone()
        self.count = state["count"].to("cpu", torch.int64).reshape(()).clone()
        self.below = state["below"].to("cpu", torch.int64).clone()

    def merge(self, other: MetricAccumulator) -> NormalHistogramMetrics:
        return MetricAccumulator.merge(self, other)


class LossMetric(MetricAccumulator):
    """Mean test loss, ``loss = Σ loss_sum / Σ count`` (App. C.1: Taskonomy's metric; generic regression tasks).

    ``loss_sum`` is the *sum* of the per-element (or per-sample) losses of a batch and ``count`` the
    number of elements it sums over, so the result is weighted by ``count`` over the whole set.
    """

    STATE_REDUCTION: ClassVar[dict[str, Reduction]] = {"loss_sum": "sum", "count": "sum"}

    def reset(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.int64)

    def update(self, loss_sum: float | Tensor, count: int | Tensor) -> None:
        """Add one batch.

        Args:
            loss_sum (float or 0-d Tensor): sum of the losses over ``count`` elements.
            count (int or 0-d Tensor): number of elements summed; must be >= 0.
        """
        if isinstance(loss_sum, Tensor):
            s = loss_sum.detach().to("cpu", torch.float64).reshape(())
        else:
            s = torch.tensor(float(loss_sum), dtype=torch.float64)
        n = int(count.detach().reshape(()).item()) if isinstance(count, Tensor) else int(count)
        if n < 0:
            raise ValueError(f"count must be >= 0, got {n}")
        self.loss_sum += s
        self.count += n

    def compute(self) -> dict[str, float]:
        """Returns ``{"loss"}``. Raises ValueError if the total count is 0."""
        n = int(self.count)
        if n == 0:
            raise ValueError(
                "LossMetric.compute(): total count is 0 (update() never called with count > 0)"
            )
        return {"loss": float(self.loss_sum / n)}

    def state_dict(self) -> dict[str, Tensor]:
        return {"loss_sum": self.loss_sum.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.loss_sum = state["loss_sum"].to("cpu", torch.float64).reshape(()).clone()
        self.count = state["count"].to("cpu", torch.int64).reshape(()).clone()
