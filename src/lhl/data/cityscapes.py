"""CityScapes in MTAN's preprocessed layout (paper Tables 8 and 9).

``root/{train,val}/{image,label_7,depth}/<i>.npy``: 2975 training and 500 test images at
128×256; 7-class segmentation (``-1`` = ignore) from ``label_7`` — some copies name that
folder ``label``, which is used when ``label_7`` is absent — and "depth", which is
disparity (inverse depth), 0 = invalid. Because it is disparity, its task is
``DepthTask(zoom="inverse")``: the optional augmentation multiplies it by the zoom factor
instead of dividing (:mod:`lhl.data.transforms`). See :mod:`lhl.data.mtan` for the file format.
"""

from __future__ import annotations

from lhl.data.base import TaskSpec
from lhl.data.mtan import MTANBenchmark
from lhl.registry import BENCHMARKS


@BENCHMARKS.register("cityscapes")
class CityScapes(MTANBenchmark):
    """CityScapes: segmentation (7 classes, mIoU) and disparity (abs/rel error)."""

    name = "cityscapes"
    default_tasks = ("segmentation", "depth")
    layout = "root/{train,val}/{image,label_7 (or label),depth}/<i>.npy"
    num_classes = 7
    folders = {"segmentation": ("label_7", "label"), "depth": ("depth",)}

    def task_specs(self) -> dict[str, TaskSpec]:
        return {"segmentation": TaskSpec("segmentation", self.num_classes, {"ignore_index": -1}),
                "depth": TaskSpec("depth", 1, {"zoom": "inverse"})}
