"""The embedded synthetic benchmarks: rendered on the fly, nothing stored (README, "Benchmarks").

They read no ``data.root`` and have no augmentation (:meth:`SyntheticBenchmark.validate` refuses
both rather than ignoring them); ``data.normalize: imagenet`` standardises the rendered images
as on the on-disk benchmarks.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch.utils.data import Dataset

from lhl.config.schema import ConfigError
from lhl.data.base import Benchmark, TaskSpec
from lhl.data.synthetic import LABEL_CHANNELS, SYNTHETIC_TASKS, render
from lhl.data.transforms import normalize_image
from lhl.registry import BENCHMARKS

TASKONOMY_ORDER = ("segmentation", "depth", "normal", "edge_occlusion", "reshading", "keypoints2d",
                   "edge_texture", "depth_euclidean", "principal_curvature", "keypoints3d")

# Default sizes when data.train_size / data.test_size are not set.
DEFAULT_TRAIN, DEFAULT_TEST = 600, 200


class SyntheticDataset(Dataset):
    """Renders item ``i`` of ``indices`` with only the requested labels."""

    def __init__(self, seed: int, split: str, indices: Sequence[int], resolution: tuple[int, int],
                 tasks: Sequence[str], normalize: bool = False) -> None:
        self.seed, self.split, self.indices = seed, split, list(indices)
        self.resolution, self.tasks, self.normalize = resolution, tuple(tasks), normalize

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: list[int]) -> list[dict[str, torch.Tensor]]:
        """Batched fetch (the DataLoader calls this with a whole batch): one vectorised render."""
        batch = render(self.seed, self.split, [self.indices[i] for i in items], self.resolution, self.tasks)
        if self.normalize:
            batch["image"] = normalize_image(batch["image"])  # [N,3,H,W]: the [3,1,1] mean/std broadcast
        return [{**{key: value[j] for key, value in batch.items()}, "index": torch.tensor(item, dtype=torch.int64)}
                for j, item in enumerate(items)]


class SyntheticBenchmark(Benchmark):
    """Procedural indoor scenes with all ten Taskonomy-style labels (``lhl.data.synthetic``).

    Segmentation is evaluated by mIoU / pixel accuracy, depth by abs/rel error and normals by
    angle statistics on every synthetic preset; the remaining tasks by test loss.
    """

    def task_specs(self) -> dict[str, TaskSpec]:
        specs = {}
        for task in SYNTHETIC_TASKS:
            kind = task if task in ("segmentation", "depth", "normal") else "regression"
            specs[task] = TaskSpec(kind, LABEL_CHANNELS[task])
        return specs

    def num_images(self, split: str) -> int:
        if split == "val":
            return self.data.val_size
        size = self.data.train_size if split == "train" else self.data.test_size
        if size is not None:
            return size
        return DEFAULT_TRAIN if split == "train" else DEFAULT_TEST

    def dataset(self, split: str, indices: Sequence[int], tasks: Sequence[str]) -> Dataset:
        self.check_tasks(tasks)
        return SyntheticDataset(self.seed, split, indices, tuple(self.data.resolution), tasks,
                                self.data.normalize == "imagenet")

    def validate(self, tasks: Sequence[str] | None = None) -> None:
        """The shared checks, and no setting the renderer would ignore: ``data.root`` (nothing
        is read from disk) and ``data.augment`` (the renderer produces un-augmented views)."""
        super().validate(tasks)
        if self.data.root:
            raise ConfigError(f"data.root: applies only to on-disk benchmarks (nyuv2, cityscapes, taskonomy); "
                              f"{self.name!r} renders its images (remove data.root)")
        if self.data.augment:
            raise ConfigError("data.augment: not supported by synthetic benchmarks; the renderer produces "
                              "un-augmented views (set data.augment=false)")

    def fingerprint(self, tasks: Sequence[str] | None = None) -> str:
        """``"<name> train=<N> test=<M> render=<16 hex> settings=<12 hex>"``.

        ``render`` hashes the first training and test image quantised to 8 bits (``round(255·x)``),
        so it notices a change of the renderer but not float round-off that differs between
        CPUs; ``settings`` covers the seed and every data setting except ``data.root`` and
        ``data.num_workers`` (``data.val_size`` only when it is not 0). ``tasks`` is accepted for the common interface and not used: the
        labels are functions of the same scene.
        """
        resolution = tuple(int(v) for v in self.data.resolution)
        digest = hashlib.sha256(f"{resolution[0]}x{resolution[1]}\n".encode())
        for split in ("train", "test"):
            image = render(self.seed, split, [0], resolution, ())["image"]
            digest.update((image * 255).round().clamp(0, 255).to(torch.uint8).numpy().tobytes())
        return (f"{self.name} train={self.num_images('train')} test={self.num_images('test')} "
                f"render={digest.hexdigest()[:16]} settings={self.settings_digest(seed=self.seed)}")


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
