"""Taskonomy in its standard per-domain PNG layout, with the paper's 10 tasks (paper App. C.4, Table 2).

Layout: ``root/<domain>/<building>/point_<p>_view_<v>_domain_<domain>.png``. The images are
the ``rgb`` domain; the canonical task names map to domains as in :data:`DOMAINS` (the
segmentation domain is spelled ``segment_semantic`` or ``segmentsemantic``, in folder and
file names alike; both are accepted). Labels are resized to ``data.resolution`` (256×256 in
the paper configuration): bilinear for images and continuous domains, nearest for
segmentation and validity masks.

**Decoding** (value / (2^bits − 1) is the "unit" scale of a file's bit depth, so 8-bit and
16-bit copies of a domain decode alike):

- ``rgb``: unit scale, ``[3,H,W]`` in [0, 1].
- ``segment_semantic``: raw labels 0..17 (0 = uncertain/unlabelled, 1 = background, 2..17 =
  bottle, chair, couch, potted plant, bed, dining table, toilet, tv, microwave, oven, toaster,
  sink, refrigerator, book, clock, vase) mapped by ``data.taskonomy_classes``: ``all`` (17
  classes: raw r → r−1, 0 ignored), ``grouped8`` (the paper's Table 5 says 8 output channels
  without naming them; our grouping: background, seating {chair, couch}, bed, table,
  bathroom {toilet, sink}, kitchen appliances {microwave, oven, toaster, refrigerator}, tv,
  small objects {bottle, potted plant, book, clock, vase}), or an explicit list whose entry r
  is raw label r's class (−1 = ignore). Ignore index −1.
- ``depth_zbuffer`` / ``depth_euclidean``: 16-bit, units of 1/512 m, 65535 = invalid (→ 0,
  the depth convention). ``data.taskonomy_depth``: ``metres`` (raw/512, default) or ``unit``
  (raw/65535, the omnidata-style scale).
- ``normal``: ``x/255·2−1`` per channel, renormalised; pixels whose vector is shorter than
  0.1 (the ~128 grey of missing geometry) are invalid (all-zero).
- ``principal_curvature``: the first two channels, ``(x − 127)/128`` (127 encodes zero
  curvature); ``reshading``: first channel, unit scale.
- ``edge_texture``, ``edge_occlusion``, ``keypoints2d``, ``keypoints3d``: unit scale (16-bit
  files: /65535). These domains have no invalid value: 0 is a valid value there, and masks
  from other tasks' files (depth) are never used, since phase t may not read them (paper §3).

**Splits** (``data.taskonomy_split``). ``paper``: the paper trains on "images from three
views" and tests on "one unseen view" without saying more; our rule: images with view index
0, 1 or 2 are training images, images with view index 3 are test images, over every building
under ``root`` (sorted by building, point, view; ``data.train_size: 1390`` in the paper
configuration keeps 1,390 evenly spaced training images). ``tiny``: the standard building
split of the Taskonomy "tiny" subset (25 training, 5 validation — unused —, 5 test buildings).
All 10 tasks are evaluated by test loss (paper Table 2).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

from lhl.config.schema import ConfigError
from lhl.data.base import TaskSpec
from lhl.data.disk import Decoded, FileBenchmark, class_labels, to_tensor
from lhl.data.readers import Problem, problem, read_png, shape_text
from lhl.registry import BENCHMARKS

TASK_ORDER = ("segmentation", "depth", "normal", "edge_occlusion", "reshading", "keypoints2d",
              "edge_texture", "depth_euclidean", "principal_curvature", "keypoints3d")

#: canonical task → accepted domain spellings (folder and file name)
DOMAINS: dict[str, tuple[str, ...]] = {
    "image": ("rgb",),
    "segmentation": ("segment_semantic", "segmentsemantic"),
    "depth": ("depth_zbuffer",),
    "normal": ("normal",),
    "edge_occlusion": ("edge_occlusion",),
    "reshading": ("reshading",),
    "keypoints2d": ("keypoints2d",),
    "edge_texture": ("edge_texture",),
    "depth_euclidean": ("depth_euclidean",),
    "principal_curvature": ("principal_curvature",),
    "keypoints3d": ("keypoints3d",),
}

RAW_CLASSES = ("uncertain", "background", "bottle", "chair", "couch", "potted plant", "bed", "dining table",
               "toilet", "tv", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase")
CLASS_MAPS = {
    "all": [-1] + list(range(17)),
    #        unc bg bot ch co pl bed tab toi tv mic ov toa sink fr book clo vase
    "grouped8": [-1, 0, 7, 1, 1, 7, 2, 3, 4, 6, 5, 5, 5, 4, 5, 7, 7, 7],
}

TRAIN_VIEWS, TEST_VIEWS = (0, 1, 2), (3,)
TINY_BUILDINGS = {
    "train": ("allensville", "beechwood", "benevolence", "coffeen", "cosmos", "forkland", "hanson", "hiteman",
              "klickitat", "lakeville", "leonardo", "lindenwood", "marstons", "merom", "mifflinburg", "newfields",
              "onaga", "pinesdale", "pomaria", "ranchester", "shelbyville", "stockman", "tolstoy", "wainscott",
              "woodbine"),
    "val": ("collierville", "corozal", "darden", "markleeville", "wiconisco"),
    "test": ("ihlen", "mcdade", "muleshoe", "noxapater", "uvalda"),
}

_RGB_FILE = re.compile(r"^point_(\d+)_view_(\d+)_domain_rgb\.png$")
_CHANNELS = {"depth": 1, "depth_euclidean": 1, "normal": 3, "principal_curvature": 2}


def class_map(setting: str | list[int]) -> list[int]:
    """The raw-label → class list for ``data.taskonomy_classes``."""
    mapping = CLASS_MAPS[setting] if isinstance(setting, str) else list(setting)
    if len(mapping) != len(RAW_CLASSES):
        raise ConfigError(f"data.taskonomy_classes: a list needs {len(RAW_CLASSES)} entries (one per raw label "
                          f"0..{len(RAW_CLASSES) - 1}), got {len(mapping)}")
    if min(mapping) < -1 or max(mapping) < 0:
        raise ConfigError(f"data.taskonomy_classes: entries must be -1 (ignore) or class indices >= 0, got {mapping}")
    return mapping


@BENCHMARKS.register("taskonomy")
class Taskonomy(FileBenchmark):
    """Taskonomy: the paper's 10 tasks, all evaluated by test loss."""

    name = "taskonomy"
    default_tasks = TASK_ORDER
    layout = "root/<domain>/<building>/point_<p>_view_<v>_domain_<domain>.png, images in domain rgb"
    reads_taskonomy_options = True

    def __init__(self, data, seed: int) -> None:
        super().__init__(data, seed)
        self.classes = np.array(class_map(data.taskonomy_classes), dtype=np.int64)
        self._images: list[tuple[str, int, int]] | None = None

    def task_specs(self) -> dict[str, TaskSpec]:
        loss = {"metric": "loss"}
        specs = {task: TaskSpec("regression", _CHANNELS.get(task, 1)) for task in TASK_ORDER}
        specs["segmentation"] = TaskSpec("segmentation", int(self.classes.max()) + 1, {"ignore_index": -1, **loss})
        specs["depth"] = TaskSpec("depth", 1, loss)
        specs["depth_euclidean"] = TaskSpec("depth", 1, loss)
        specs["normal"] = TaskSpec("normal", 3, {"metric": "loss"})
        return specs

    # ------------------------------------------------------------------ layout
    def domain_dir(self, task: str) -> tuple[Path, tuple[str, ...]]:
        """The task's domain folder and the file-name spellings to try."""
        root, names = self.root, DOMAINS[task]
        for name in names:
            if (root / name).is_dir():
                return root / name, names
        if task == "image":
            raise problem(root / names[0], f"missing folder (the images); {self.expected()}")
        raise problem(root / names[0], f"missing folder for task {task!r} (looked for {', '.join(names)})")

    def in_split(self, split: str, building: str, view: int) -> bool:
        if self.data.taskonomy_split == "tiny":
            return building in TINY_BUILDINGS[split]
        return view in (TRAIN_VIEWS if split == "train" else TEST_VIEWS)

    def all_images(self) -> list[tuple[str, int, int]]:
        """Every (building, point, view) of the ``rgb`` domain, sorted; listed once."""
        if self._images is None:
            folder, _ = self.domain_dir("image")
            found = []
            for building in (p for p in folder.iterdir() if p.is_dir()):
                for path in building.iterdir():
                    match = _RGB_FILE.match(path.name)
                    if match:
                        found.append((building.name, int(match.group(1)), int(match.group(2))))
            self._images = sorted(found)
        return self._images

    def scan(self, split: str) -> tuple[list[Hashable], list[Problem]]:
        return [entry for entry in self.all_images() if self.in_split(split, entry[0], entry[2])], []

    def image_path(self, split: str, entry: Hashable) -> Path:
        building, point, view = entry
        return self.root / "rgb" / building / f"point_{point}_view_{view}_domain_rgb.png"

    def label_path(self, split: str, entry: Hashable, task: str) -> Path:
        building, point, view = entry
        folder, names = self.domain_dir(task)
        candidates = [folder / building / f"point_{point}_view_{view}_domain_{name}.png" for name in names]
        return next((path for path in candidates if path.is_file()), candidates[0])

    def missing_labels(self, split: str, task: str, entries: Sequence[Hashable]) -> list[Path]:
        folder, names = self.domain_dir(task)
        listed: dict[str, set[str]] = {}
        missing = []
        for building, point, view in entries:
            if building not in listed:
                listed[building] = set(os.listdir(folder / building)) if (folder / building).is_dir() else set()
            stem = f"point_{point}_view_{view}_domain_"
            if not any(f"{stem}{name}.png" in listed[building] for name in names):
                missing.append(folder / building / f"{stem}{names[0]}.png")
        return missing

    # ------------------------------------------------------------------ decoding
    def decode_image(self, path: Path) -> Decoded:
        raw, bits = read_png(path)
        if raw.ndim != 3 or raw.shape[2] < 3:
            raise problem(path, f"expected an RGB image, found shape {shape_text(raw.shape)}")
        values = raw[..., :3].astype(np.float32) / (2**bits - 1)
        return Decoded(to_tensor(np.moveaxis(values, -1, 0)), raw.shape, f"uint{bits}")

    def decode_label(self, task: str, path: Path) -> Decoded:
        raw, bits = read_png(path)
        info = (raw.shape, f"uint{bits}")
        top = 2**bits - 1
        if task == "segmentation":
            labels = class_labels(_first_channel(raw).astype(np.float32), path, 0, len(RAW_CLASSES) - 1)
            return Decoded(to_tensor(self.classes[labels]), *info)
        if task in ("depth", "depth_euclidean"):
            if bits != 16:
                raise problem(path, f"expected a 16-bit PNG ({DOMAINS[task][0]}, units of 1/512 m), found 8-bit")
            raw = _first_channel(raw).astype(np.float32)
            scale = 512.0 if self.data.taskonomy_depth == "metres" else 65535.0
            values = np.where(raw >= 65535, 0.0, raw / scale).astype(np.float32)
            return Decoded(to_tensor(values[None]), *info)
        if task == "normal":
            values = _channels(raw, 3, path).astype(np.float32) / top * 2 - 1
            length = np.linalg.norm(values, axis=-1, keepdims=True)
            values = np.where(length >= 0.1, values / np.maximum(length, 1e-6), 0.0).astype(np.float32)
            return Decoded(to_tensor(np.moveaxis(values, -1, 0)), *info)
        if task == "principal_curvature":
            half = (top + 1) / 2
            values = (_channels(raw, 2, path).astype(np.float32) - (half - 1)) / half
            return Decoded(to_tensor(np.moveaxis(values, -1, 0)), *info)
        values = _first_channel(raw).astype(np.float32) / top
        return Decoded(to_tensor(values[None]), *info)


def _first_channel(raw: np.ndarray) -> np.ndarray:
    return raw if raw.ndim == 2 else raw[..., 0]


def _channels(raw: np.ndarray, count: int, path: Path) -> np.ndarray:
    if raw.ndim != 3 or raw.shape[2] < count:
        raise problem(path, f"expected at least {count} channels, found shape {shape_text(raw.shape)}")
    return raw[..., :count]
