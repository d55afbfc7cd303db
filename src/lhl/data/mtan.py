"""The MTAN/LibMTL ``.npy`` layout shared by NYUv2 and CityScapes (README, "Benchmarks").

``root/{train,val}/<folder>/<i>.npy``, ``i = 0..N-1``, one file per image and task: ``image``
``H×W×3`` float in [0, 1] (uint8 0..255 is accepted and scaled), segmentation ``H×W`` (or
``H×W×1``) with whole-number labels ``-1..C-1`` (``-1`` = ignore; float or integer dtype),
depth ``H×W×1`` (or ``H×W``), 0 = invalid, and normals ``H×W×3`` unit vectors, all-zero =
invalid. The ``val`` folder is the test split (``test`` is accepted when ``val`` is absent).
Files are memory-mapped and only the requested task's folder is opened.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Hashable, Sequence

import numpy as np

from lhl.data.disk import Decoded, FileBenchmark, as_float, class_labels, to_tensor
from lhl.data.readers import Problem, problem, read_npy, shape_text

_INDEX = re.compile(r"^(\d+)\.npy$")


def _indices(folder: Path) -> dict[int, Path]:
    found = {}
    for path in folder.iterdir():
        match = _INDEX.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


class MTANBenchmark(FileBenchmark):
    """NYUv2/CityScapes in MTAN's preprocessed ``.npy`` format."""

    num_classes: ClassVar[int] = 0
    #: candidate folder names of each task, first existing one wins
    folders: ClassVar[dict[str, tuple[str, ...]]] = {}

    def split_dir(self, split: str) -> Path:
        root = self.root
        if split == "train":
            return root / "train"
        return root / "test" if not (root / "val").is_dir() and (root / "test").is_dir() else root / "val"

    def task_dir(self, split: str, task: str) -> Path:
        base = self.split_dir(split)
        candidates = self.folders[task]
        for name in candidates:
            if (base / name).is_dir():
                return base / name
        raise problem(base / candidates[0], f"missing folder for task {task!r} (looked for {', '.join(candidates)})")

    def scan(self, split: str) -> tuple[list[Hashable], list[Problem]]:
        folder = self.split_dir(split) / "image"
        if not folder.is_dir():
            return [], [Problem(str(folder), f"missing folder (the {split} images); {self.expected()}")]
        found = _indices(folder)
        count = max(found) + 1 if found else 0
        problems = [Problem(str(folder / f"{i}.npy"), f"missing index {i} (image files must run 0..{count - 1})")
                    for i in range(count) if i not in found]
        return list(range(count)), problems

    def image_path(self, split: str, entry: Hashable) -> Path:
        return self.split_dir(split) / "image" / f"{entry}.npy"

    def label_path(self, split: str, entry: Hashable, task: str) -> Path:
        return self.task_dir(split, task) / f"{entry}.npy"

    def missing_labels(self, split: str, task: str, entries: Sequence[Hashable]) -> list[Path]:
        folder = self.task_dir(split, task)
        present = _indices(folder)
        return [folder / f"{entry}.npy" for entry in entries if entry not in present]

    def stray_files(self, split: str, task: str | None, entries: Sequence[Hashable]) -> list[Problem]:
        folder = self.split_dir(split) / "image" if task is None else self.task_dir(split, task)
        known = set(entries)
        return [Problem(str(path), "no image with this index") for i, path in sorted(_indices(folder).items())
                if i not in known]

    def decode_image(self, path: Path) -> Decoded:
        raw = read_npy(path)
        if raw.ndim != 3 or raw.shape[2] != 3:
            raise problem(path, f"expected an H×W×3 image, found shape {shape_text(raw.shape)}")
        values = as_float(raw, path)
        if raw.dtype == np.uint8:
            values /= 255.0
        elif values.size and (values.min() < -1e-3 or values.max() > 1 + 1e-3):
            raise problem(path, f"image values outside [0, 1]: found [{values.min():.4g}, {values.max():.4g}]")
        return Decoded(to_tensor(np.moveaxis(values, -1, 0)), raw.shape, str(raw.dtype))

    def decode_label(self, task: str, path: Path) -> Decoded:
        """The file format of each of the benchmark's tasks (module docstring): ``segmentation`` is a
        class map; every other task an ``H×W×C`` array with C its task's channels, ``depth`` ≥ 0
        (0 = invalid), ``normal`` components in [-1, 1]."""
        raw = read_npy(path)
        if task == "segmentation":
            if not (raw.ndim == 2 or (raw.ndim == 3 and raw.shape[2] == 1)):
                raise problem(path, f"expected an H×W label map, found shape {shape_text(raw.shape)}")
            values = as_float(raw, path).reshape(raw.shape[:2])
            labels = class_labels(values, path, -1, self.num_classes - 1)
            return Decoded(to_tensor(labels), raw.shape, str(raw.dtype))
        channels = self.task_specs()[task].channels
        if raw.ndim == 2 and channels == 1:
            values = as_float(raw, path)[..., None]
        elif raw.ndim == 3 and raw.shape[2] == channels:
            values = as_float(raw, path)
        else:
            raise problem(path, f"expected H×W×{channels} {task}, found shape {shape_text(raw.shape)}")
        if task == "depth" and values.size and values.min() < 0:
            raise problem(path, f"negative {task} values (min {values.min():.4g}); 0 marks invalid pixels")
        if task == "normal" and values.size and np.abs(values).max() > 1.01:
            raise problem(path, f"normal components outside [-1, 1]: max |value| {np.abs(values).max():.4g}")
        return Decoded(to_tensor(np.moveaxis(values, -1, 0)), raw.shape, str(raw.dtype))
