"""The task interface: a task declares everything the library needs to know about it.

A dense prediction task (HAD paper, Sec. 3.2 and App. C.2, Table 5) is one class, registered by
name in :data:`lhl.registry.TASKS`; benchmarks build it from a
:class:`~lhl.data.base.TaskSpec` (the registered name, the output channels and options). Code
that handles many tasks — methods, the replay buffer, the data layer's transforms, ``lhl data
check``, evaluation and reports — asks the task and never branches on its class. What a task
declares:

**Output and learning**

- ``out_channels``: channels of its head's raw output ``[B,C,H,W]``.
- :meth:`Task.loss` (L_new of eq. 3, Table 5) and :meth:`Task.loss_sum` (for the test loss).
- :meth:`Task.postprocess` (raw output → prediction in label space), :meth:`Task.pseudo_label`
  (teacher output → distillation target) and :meth:`Task.distill_map`, the per-pixel
  distillation loss ℓ of eq. 7 (App. C.4: L_dis,j = L_j).

**Evaluation**

- :meth:`Task.metrics` (a fresh accumulator) and :attr:`Task.higher_is_better`, the direction of
  each metric key it produces. The trainer writes these directions into ``performance.json``
  (``"directions"``), and every report reads them from there.

**Labels: validity and geometry** (used by the data layer on one sample's label — ``[C,H,W]``,
or ``[H,W]`` for class maps — and by the replay buffer on stored output maps)

- :meth:`Task.valid_mask` and :attr:`Task.invalid_fill`: which pixels carry a label, and the
  value written into pixels that do not (after a resize).
- :meth:`Task.flip_label` / :meth:`Task.flip_output`: a horizontal flip; the generic mechanism
  mirrors the map and negates the channels listed in :attr:`Task.mirror_channels` (a vector's x
  component), in labels and raw outputs alike.
- :meth:`Task.crop_label`, :meth:`Task.resize_label` (masked bilinear by default, so invalid
  pixels never leak; :meth:`Task.project_label` maps interpolated values back onto the label's
  domain), :attr:`Task.zoom_nearest` (whether MTAN's scale-and-crop augmentation resizes this
  label nearest-neighbour) and :meth:`Task.zoom_label` (how values change when the view is zoomed
  in by s: unchanged by default).

**What methods need** (defaults suit any regression-like task)

- :meth:`Task.had_grouping`: what DB-HAD groups pixels by (Sec. 4.2, "Group partition"), and
  :meth:`Task.had_grouping_of_pseudo_label`, the same groups from the pseudo-label alone (what the
  frozen-teacher cache keeps).
- :attr:`Task.had_reference_rule`: which of the authors' three rules ``variant: reference``
  applies (:mod:`lhl.losses.had_reference`).
- :meth:`Task.soft_distill_map`: LwF's per-pixel soft distillation loss.
- :meth:`Task.replay_target` / :meth:`Task.replay_map`: iCaRL's stored target and its replay loss.
- :meth:`Task.compress_pseudo_label` / :meth:`Task.expand_pseudo_label`: how the frozen-teacher
  cache (:mod:`lhl.engine.teacher`) stores a pseudo-label (class maps as the smallest integer type,
  real values in the cache's precision) and gives it back.

Conventions for invalid pixels: segmentation ``ignore_index``; depth 0 or non-finite; normals
all-zero or non-finite; other tasks non-finite (NaN, the default).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor

from lhl.metrics import LossMetric, MetricAccumulator
from lhl.tasks import resize


class Task:
    """Base class; subclasses are registered in :data:`lhl.registry.TASKS` by name.

    The defaults of the label, geometry and method hooks are those of a generic regression task
    (per-pixel vectors, NaN = invalid, unchanged by a flip or a zoom), so a new regression-like
    task only declares its loss, ℓ and metrics (see :class:`~lhl.tasks.dense.RegressionTask`).
    """

    #: metric key → True when higher is better, for every key :meth:`metrics` produces
    higher_is_better: ClassVar[dict[str, bool]] = {}
    #: channels (of labels and raw outputs) whose sign a horizontal flip negates
    mirror_channels: ClassVar[tuple[int, ...]] = ()
    #: value of a label's invalid pixels after a resize (:meth:`resize_label`)
    invalid_fill: ClassVar[float] = float("nan")
    #: True: the scale-and-crop augmentation resizes this label nearest-neighbour (MTAN's depth)
    zoom_nearest: ClassVar[bool] = False
    #: which of the authors' rules HAD's ``variant: reference`` applies to this task: their
    #: segmentation, normal or regression rule (their code treats every other regression task
    #: like depth, hence the default)
    had_reference_rule: ClassVar[Literal["segmentation", "normal", "regression"]] = "regression"
    #: how pictures show the label-space map (``lhl predict``, the report's qualitative grid):
    #: "classes" (one fixed colour per class index), "vectors" (RGB = (v + 1) / 2 of the first three
    #: channels) or "scalar" (the first channel through the matplotlib colormap :attr:`colormap`)
    display: ClassVar[Literal["classes", "vectors", "scalar"]] = "scalar"
    colormap: ClassVar[str] = "magma"

    def __init__(self, name: str, out_channels: int) -> None:
        self.name = name
        self.out_channels = int(out_channels)

    # ------------------------------------------------------------------ learning
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

    # ------------------------------------------------------------------ evaluation
    def metrics(self) -> MetricAccumulator:
        """A fresh accumulator of this task's metrics (keys: those of :attr:`higher_is_better`).

        A task whose exact metrics keep memory proportional to the test set (normals' median) may
        accept ``exact_quantiles=False`` and return a constant-memory accumulator; the engine passes
        it only when ``train.eval_normal_median`` is ``histogram``."""
        raise NotImplementedError

    def update_metrics(self, accumulator: MetricAccumulator, pred: Tensor, target: Tensor) -> None:
        """Feed one batch of raw outputs ``pred`` and ground truth into ``accumulator``."""
        if isinstance(accumulator, LossMetric):
            accumulator.update(*self.loss_sum(pred, target))
        else:
            accumulator.update(self.postprocess(pred), target)

    # ------------------------------------------------------------------ labels: validity and geometry
    def valid_mask(self, target: Tensor) -> Tensor:
        """Pixels with a label: ``[...,C,H,W]`` → ``[...,H,W]`` bool (default: every channel finite)."""
        return torch.isfinite(target).all(dim=-3)

    def flip_label(self, label: Tensor) -> Tensor:
        """A label ``[C,H,W]`` (or ``[H,W]``) mirrored left-right, :attr:`mirror_channels` negated."""
        return self._mirror(label)

    def flip_output(self, output: Tensor) -> Tensor:
        """A raw or post-processed output map ``[...,C,H,W]`` mirrored left-right, as :meth:`flip_label`."""
        return self._mirror(output)

    def _mirror(self, x: Tensor) -> Tensor:
        x = x.flip(-1)  # a copy: negating in place below leaves the input alone
        for channel in self.mirror_channels:
            x[..., channel, :, :] = -x[..., channel, :, :]
        return x

    def crop_label(self, label: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
        """The ``height × width`` window of ``label`` at (``top``, ``left``)."""
        return label[..., top:top + height, left:left + width]

    def resize_label(self, label: Tensor, size: tuple[int, int], nearest: bool = False) -> Tensor:
        """``label`` resized to ``size`` (H, W): masked bilinear (``nearest=True``: nearest-neighbour
        values), then :meth:`project_label`; pixels whose nearest source pixel is invalid get
        :attr:`invalid_fill`."""
        size = (int(size[0]), int(size[1]))
        if tuple(label.shape[-2:]) == size:
            return label
        valid = self.valid_mask(label)
        out = resize.nearest(label, size) if nearest else resize.masked_bilinear(label, valid, size)
        keep = resize.nearest(valid[None], size)[0] > 0.5
        out = self.project_label(out)
        return torch.where(keep, out, torch.full((), self.invalid_fill, dtype=out.dtype))

    def project_label(self, values: Tensor) -> Tensor:
        """Interpolated label values ``[C,H,W]`` mapped back onto the label's domain (default: as they are)."""
        return values

    def zoom_label(self, label: Tensor, scale: float) -> Tensor:
        """Label values of a view zoomed in by ``scale`` (a crop of 1/s of the image resized back to
        full size; the crop is already resized). Default: unchanged."""
        return label

    # ------------------------------------------------------------------ what methods need
    def had_grouping(self, teacher: Tensor) -> tuple[Tensor, Literal["classification", "regression"]]:
        """What DB-HAD groups the pixels by (HAD paper, Sec. 4.2, "Group partition"): a ``[B,C,H,W]``
        tensor derived from the raw teacher output and the ``kind`` of
        :func:`lhl.losses.had.group_masks` that splits it (``"classification"``: one group per
        argmax channel; ``"regression"``: the per-image min-max normalised channel mean split at
        the group threshold). Default: the post-processed pseudo-label, by value.

        The task names the rule rather than returning the masks because :mod:`lhl.tasks` sits
        below :mod:`lhl.losses` in the layering contract (``pyproject.toml``); HAD applies it."""
        return self.had_grouping_of_pseudo_label(self.pseudo_label(teacher))

    def had_grouping_of_pseudo_label(self, pseudo: Tensor) -> tuple[Tensor, Literal["classification", "regression"]]:
        """:meth:`had_grouping` computed from the pseudo-label alone (what the frozen-teacher cache
        keeps, :mod:`lhl.engine.teacher`): for a teacher output T it must give the groups
        ``had_grouping(T)`` gives from ``pseudo_label(T)``. Default: the pseudo-label, by value.

        A task that overrides :meth:`had_grouping` with a rule that needs the raw output and does
        not override this method is served by the teacher on every step: HAD turns the cache off
        for it (the event log says why)."""
        return pseudo, "regression"

    @classmethod
    def grouping_from_pseudo_label(cls) -> bool:
        """True when :meth:`had_grouping_of_pseudo_label` reproduces :meth:`had_grouping`: the class
        does not override ``had_grouping``, or overrides both at the same level or deeper."""
        def owner(name: str) -> type:
            return next(k for k in cls.__mro__ if name in vars(k))
        grouping, from_pseudo = owner("had_grouping"), owner("had_grouping_of_pseudo_label")
        return grouping is Task or issubclass(from_pseudo, grouping)

    def soft_distill_map(self, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
        """LwF's per-pixel distillation loss ``[B,H,W]`` of raw ``student`` against raw ``teacher``
        outputs at ``temperature``. Default: ℓ against the pseudo-label (the temperature only
        softens class distributions)."""
        return self.distill_map(student, self.pseudo_label(teacher))

    def replay_target(self, raw: Tensor) -> Tensor:
        """What iCaRL stores for a raw output ``[B,C,H,W]`` of this task's head. Default: the pseudo-label."""
        return self.pseudo_label(raw)

    def replay_map(self, student: Tensor, stored: Tensor) -> Tensor:
        """iCaRL's replay loss of raw ``student`` outputs against ``stored`` targets, per element
        (``[B,H,W]`` or ``[B,C,H,W]``; iCaRL averages it per sample). Default: ℓ."""
        return self.distill_map(student, stored)

    # ------------------------------------------------------------------ the frozen-teacher cache
    def compress_pseudo_label(self, pseudo: Tensor, dtype: torch.dtype) -> Tensor:
        """A batch of pseudo-labels as the frozen-teacher cache stores them (:mod:`lhl.engine.teacher`);
        ``dtype`` is the cache's precision for real values (``train.teacher_cache_precision``:
        float16 or float32). Default: real values cast to ``dtype``."""
        return pseudo.to(dtype)

    def expand_pseudo_label(self, stored: Tensor) -> Tensor:
        """Stored pseudo-labels back in the form :meth:`pseudo_label` returns. Default: float32."""
        return stored.float()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, out_channels={self.out_channels})"
