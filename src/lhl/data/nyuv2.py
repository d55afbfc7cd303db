"""NYUv2 in MTAN/LibMTL's preprocessed layout (paper Table 1, Table 7).

``root/{train,val}/{image,label,depth,normal}/<i>.npy``: 795 training and 654 test images at
288×384; 13-class segmentation with ``-1`` = ignore, depth in metres (0 = invalid), surface
normals as unit vectors (all-zero = invalid). No mean/std normalisation unless
``data.normalize: imagenet``. See :mod:`lhl.data.mtan` for the file format.
"""

from __future__ import annotations

from lhl.data.base import TaskSpec
from lhl.data.mtan import MTANBenchmark
from lhl.registry import BENCHMARKS


@BENCHMARKS.register("nyuv2")
class NYUv2(MTANBenchmark):
    """NYUv2: segmentation (13 classes, mIoU), depth (abs/rel error), normal (angles)."""

    name = "nyuv2"
    default_tasks = ("segmentation", "depth", "normal")
    layout = "root/{train,val}/{image,label,depth,normal}/<i>.npy"
    num_classes = 13
    folders = {"segmentation": ("label",), "depth": ("depth",), "normal": ("normal",)}

    def task_specs(self) -> dict[str, TaskSpec]:
        return {"segmentation": TaskSpec("segmentation", self.num_classes, {"ignore_index": -1}),
                "depth": TaskSpec("depth", 1), "normal": TaskSpec("normal", 3)}
