"""What the on-disk benchmarks (NYUv2, CityScapes, Taskonomy) share.

A :class:`FileBenchmark` lists a split's images once (``entries``), maps an entry and a task
to the label file's path, and decodes one file into the label convention of
:mod:`lhl.tasks.base` at its stored size. :class:`FileDataset` assembles items from that:
it opens the image and **only the requested tasks' label files** (SPEC §1), checks each label
against the image's size, resizes to ``data.resolution``, applies the optional augmentation
(training split, ``data.augment``) and the optional ImageNet normalisation. ``lhl data
check`` drives the same decoders over every file (:mod:`lhl.data.check`).

``data.train_size`` / ``data.test_size`` cap a split to that many images, chosen evenly
spaced over the sorted list (``floor(k·N/cap)``), independent of the seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Hashable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lhl.config.schema import ConfigError
from lhl.data.base import Benchmark
from lhl.data.errors import DataError, Problem, problem, shape_text
from lhl.data.transforms import RandomScaleCrop, normalize_image, resize_sample

SPLITS = ("train", "test")


@dataclass
class Decoded:
    """One decoded file: the tensor in label convention, and the file's raw shape and dtype."""

    value: Tensor
    raw_shape: tuple[int, ...]
    raw_dtype: str


def cap_indices(count: int, cap: int | None) -> list[int]:
    """``cap`` evenly spaced positions in ``range(count)`` (all of them when ``cap`` is None or ≥ count)."""
    if cap is None or cap >= count:
        return list(range(count))
    if cap < 1:
        raise ConfigError(f"data.train_size/test_size: invalid value {cap!r}; expected an integer >= 1")
    return [k * count // cap for k in range(cap)]


class FileBenchmark(Benchmark):
    """Base class of benchmarks read from ``data.root``; subclasses fill in the layout."""

    #: label kind of each task (see :mod:`lhl.data.transforms`)
    label_kinds: ClassVar[dict[str, str]] = {}

    def __init__(self, data, seed: int) -> None:
        super().__init__(data, seed)
        self._entries: dict[str, list[Hashable]] = {}

    # ------------------------------------------------------------------ layout (subclasses)
    def scan(self, split: str) -> tuple[list[Hashable], list[Problem]]:
        """All entries of ``split`` in a fixed order (uncapped), and structural problems."""
        raise NotImplementedError

    def image_path(self, split: str, entry: Hashable) -> Path:
        raise NotImplementedError

    def label_path(self, split: str, entry: Hashable, task: str) -> Path:
        """Path of ``task``'s label file for ``entry``; raises :class:`DataError` if the
        task's folder cannot be found. Looks only into that task's folder."""
        raise NotImplementedError

    def decode_image(self, path: Path) -> Decoded:
        """``[3,H,W]`` float in [0, 1]."""
        raise NotImplementedError

    def decode_label(self, task: str, path: Path) -> Decoded:
        raise NotImplementedError

    def stray_files(self, split: str, task: str | None, entries: Sequence[Hashable]) -> list[Problem]:
        """Files in a task's folder (``None``: the image folder) that match no image; for checks."""
        return []

    # ------------------------------------------------------------------ shared behaviour
    @property
    def root(self) -> Path:
        if not self.data.root:
            raise ConfigError(f"data.root: benchmark {self.name!r} reads a dataset directory; set data.root=PATH")
        root = Path(self.data.root).expanduser()
        if not root.is_dir():
            raise problem(root, f"data.root: no such directory (benchmark {self.name!r})")
        return root

    def entries(self, split: str) -> list[Hashable]:
        """The split's images after the ``data.train_size``/``test_size`` cap."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._entries:
            found, problems = self.scan(split)
            if problems:
                more = f" (and {len(problems) - 1} more problems; run 'lhl data check')" if len(problems) > 1 else ""
                raise DataError(f"{problems[0]}{more}")
            if not found:
                raise DataError(f"{self.root}: no {split} images found for benchmark {self.name!r}")
            cap = self.data.train_size if split == "train" else self.data.test_size
            self._entries[split] = [found[i] for i in cap_indices(len(found), cap)]
        return self._entries[split]

    def num_images(self, split: str) -> int:
        return len(self.entries(split))

    def dataset(self, split: str, indices: Sequence[int], tasks: Sequence[str]) -> Dataset:
        specs = self.task_specs()
        for task in tasks:
            if task not in specs:
                raise ValueError(f"benchmark {self.name!r} has no task {task!r}; its tasks: {', '.join(specs)}")
        entries = self.entries(split)
        augment = split == "train" and self.data.augment
        return FileDataset(self, split, [entries[i] for i in indices], tuple(tasks), augment)

    def load(self, split: str, entry: Hashable, tasks: Sequence[str]) -> dict[str, Tensor]:
        """Image and the requested labels of one entry, at the stored size, validated."""
        image_path = self.image_path(split, entry)
        image = self.decode_image(image_path).value
        sample = {"image": image}
        for task in tasks:
            path = self.label_path(split, entry, task)
            label = self.decode_label(task, path).value
            if tuple(label.shape[-2:]) != tuple(image.shape[-2:]):
                raise problem(path, f"shape mismatch: expected {shape_text(tuple(image.shape[-2:]))} "
                                    f"(the size of {image_path}), found {shape_text(tuple(label.shape[-2:]))}")
            sample[task] = label
        return sample

    def fingerprint(self) -> str:
        """Name, root, settings and a digest of the image file list (no label file is opened)."""
        digest = hashlib.sha256()
        counts = {}
        for split in SPLITS:
            found = self.entries(split)
            counts[split] = len(found)
            for position in cap_indices(len(found), 64):
                path = self.image_path(split, found[position])
                digest.update(f"{split}/{found[position]}/{path.stat().st_size}".encode())
        settings = {k: v for k, v in vars(self.data).items() if k not in ("num_workers", "root")}
        return (f"{self.name} root={self.root} train={counts['train']} test={counts['test']} "
                f"files={digest.hexdigest()[:16]} settings={settings}")


class FileDataset(Dataset):
    """Items of one split: the image plus only the requested tasks' labels."""

    def __init__(self, benchmark: FileBenchmark, split: str, entries: list[Hashable], tasks: tuple[str, ...],
                 augment: bool) -> None:
        self.benchmark, self.split, self.entries, self.tasks = benchmark, split, entries, tasks
        self.size = tuple(int(v) for v in benchmark.data.resolution)
        self.kinds = {task: benchmark.label_kinds[task] for task in tasks}
        self.augment = RandomScaleCrop() if augment else None
        self.normalize = benchmark.data.normalize == "imagenet"

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        sample = self.benchmark.load(self.split, self.entries[item], self.tasks)
        sample = resize_sample(sample, self.kinds, self.size)
        if self.augment is not None:
            sample = self.augment(sample, self.kinds)
        if self.normalize:
            sample["image"] = normalize_image(sample["image"])
        return {key: value.contiguous() for key, value in sample.items()}


# ---------------------------------------------------------------------- array checks shared by decoders
def as_float(array: np.ndarray, path: Path) -> np.ndarray:
    """A float32 copy; NaN or infinite values are a :class:`DataError`."""
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise problem(path, f"expected a numeric array, found dtype {array.dtype}")
    values = np.array(array, dtype=np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        raise problem(path, f"{int(bad.sum())} NaN or infinite values")
    return values


def class_labels(values: np.ndarray, path: Path, low: int, high: int) -> np.ndarray:
    """Integer class labels in ``[low, high]`` as int64; otherwise a :class:`DataError`."""
    if values.size and not np.array_equal(values, np.round(values)):
        raise problem(path, "segmentation labels must be whole numbers")
    outside = (values < low) | (values > high)
    if outside.any():
        found = np.unique(values[outside])[:5].astype(np.int64).tolist()
        raise problem(path, f"labels outside the class range [{low}, {high}]: found {found}")
    return values.astype(np.int64)


def to_tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))
