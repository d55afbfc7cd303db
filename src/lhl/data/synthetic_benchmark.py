"""The embedded synthetic benchmarks (SPEC §6): rendered on the fly, nothing stored."""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch.utils.data import Dataset

from lhl.data.base import Benchmark, TaskSpec
from lhl.data.synthetic import LABEL_CHANNELS, SYNTHETIC_TASKS, render
from lhl.registry import BENCHMARKS

TASKONOMY_ORDER = ("segmentation", "depth", "normal", "edge_occlusion", "reshading", "keypoints2d",
                   "edge_texture", "depth_euclidean", "principal_curvature", "keypoints3d")

# Default sizes when data.train_size / data.test_size are not set.
DEFAULT_TRAIN, DEFAULT_TEST = 600, 200


class SyntheticDataset(Dataset):
    """Renders item ``i`` of ``indices`` with only the requested labels."""

    def __init__(self, seed: int, split: str, indices: Sequence[int], resolution: tuple[int, int],
                 tasks: Sequence[str]) -> None:
        self.seed, self.split, self.indices = seed, split, list(indices)
        self.resolution, self.tasks = resolution, tuple(tasks)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: list[int]) -> list[dict[str, torch.Tensor]]:
        """Batched fetch (the DataLoader calls this with a whole batch): one vectorised render."""
        batch = render(self.seed, self.split, [self.indices[i] for i in items], self.resolution, self.tasks)
        return [{key: value[j] for key, value in batch.items()} for j in range(len(items))]


class SyntheticBenchmark(Benchmark):
    """Procedural indoor scenes with all ten Taskonomy-style labels (``lhl.data.synthetic``).

    Segmentation is evaluated by mIoU / pixel accuracy, depth by abs/rel error and normals by
    angle statistics on every synthetic preset (SPEC §2); the remaining tasks by test loss.
    """

    def task_specs(self) -> dict[str, TaskSpec]:
        specs = {}
        for task in SYNTHETIC_TASKS:
            kind = task if task in ("segmentation", "depth", "normal") else "regression"
            specs[task] = TaskSpec(kind, LABEL_CHANNELS[task])
        return specs

    def num_images(self, split: str) -> int:
        if split == "train":
            return self.data.train_size or DEFAULT_TRAIN
        return self.data.test_size or DEFAULT_TEST

    def dataset(self, split: str, indices: Sequence[int], tasks: Sequence[str]) -> Dataset:
        return SyntheticDataset(self.seed, split, indices, tuple(self.data.resolution), tasks)

    def fingerprint(self) -> str:
        probe = render(self.seed, "test", [0], tuple(self.data.resolution), ())["image"]
        digest = hashlib.sha256(probe.numpy().tobytes()).hexdigest()[:16]
        return f"synthetic seed={self.seed} resolution={self.data.resolution} image0={digest}"


@BENCHMARKS.register("synthetic-nyu")
class SyntheticNYU(SyntheticBenchmark):
    name = "synthetic-nyu"
    default_tasks = ("segmentation", "depth", "normal")


@BENCHMARKS.register("synthetic-city")
class SyntheticCity(SyntheticBenchmark):
    name = "synthetic-city"
    default_tasks = ("segmentation", "depth")


@BENCHMARKS.register("synthetic-taskonomy")
class SyntheticTaskonomy(SyntheticBenchmark):
    name = "synthetic-taskonomy"
    default_tasks = TASKONOMY_ORDER
