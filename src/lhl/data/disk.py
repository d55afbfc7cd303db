"""What the on-disk benchmarks (NYUv2, CityScapes, Taskonomy) share.

A :class:`FileBenchmark` lists a split's images once (``entries``), maps an entry and a task
to the label file's path, and decodes one file into the label convention of the task (its
:meth:`~lhl.tasks.Task.valid_mask`; :mod:`lhl.tasks.base`) at its stored size.
:class:`FileDataset` assembles items from that: it opens the image and **only the requested
tasks' label files** (HAD paper, Sec. 5.1: "the labels of other tasks are inaccessible"), checks
each label against the image's size, resizes to ``data.resolution``, applies the optional
augmentation (training split, ``data.augment``) and the optional ImageNet normalisation; the
task objects (:meth:`~lhl.data.base.Benchmark.make_task`) say how each label resizes, zooms and
flips. ``lhl data
check`` drives the same decoders over every file (:mod:`lhl.data.check`).

``data.train_size`` / ``data.test_size`` cap a split to that many images, chosen evenly
spaced over the sorted list (``floor(k·N/cap)``), independent of the seed. ``data.val_size``
then holds out that many of the (capped) training images as the "val" split, chosen by the run's
seed (:meth:`FileBenchmark.val_positions`); the "train" split the phase chunks are cut from is the
rest, in the same order.

:meth:`FileBenchmark.validate` checks ``data.root`` and the layout (by listing folders, never
opening label files) before a run writes anything; :meth:`FileBenchmark.fingerprint` hashes a
sample of the files' bytes (see there).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Hashable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lhl.config.schema import ConfigError
from lhl.data.base import Benchmark
from lhl.data.readers import Problem, problem, shape_text
from lhl.data.transforms import RandomScaleCrop, normalize_image, resize_sample
from lhl.errors import DataError
from lhl.tasks import Task

SPLITS = ("train", "test")
#: files per split whose bytes the fingerprint samples, and the size of each sampled block
FINGERPRINT_FILES, FINGERPRINT_BLOCK = 64, 4096
#: the second word of the validation slice's generator seed, ``default_rng([seed, VAL_SEED])``
VAL_SEED = 12345


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

    #: the directory layout, for error messages, e.g. ``root/{train,val}/{image,...}/<i>.npy``
    layout: ClassVar[str] = ""

    def __init__(self, data, seed: int) -> None:
        super().__init__(data, seed)  # never touches the disk (task_specs works without a root)
        self._entries: dict[str, list[Hashable]] = {}
        self._root: Path | None = None

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
    def expected(self) -> str:
        """What ``data.root`` should hold, for messages."""
        return f"{self.name} reads a directory laid out as {self.layout}; see README, 'Benchmarks and datasets'"

    @property
    def root(self) -> Path:
        """``data.root``, checked once: set, an existing readable directory."""
        if self._root is not None:
            return self._root
        if not self.data.root:
            raise ConfigError(f"data.root: not set; {self.expected()}")
        root = Path(self.data.root).expanduser()
        if not root.exists():
            raise problem(root, f"no such directory (data.root); {self.expected()}")
        if not root.is_dir():
            raise problem(root, f"not a directory (data.root); {self.expected()}")
        if not os.access(root, os.R_OK | os.X_OK):
            raise problem(root, "not readable (data.root); expected a directory this user can list and read")
        self._root = root
        return root

    def listing(self, split: str) -> list[Hashable]:
        """The images of the folder split ``split`` ("train" or "test") after the
        ``data.train_size``/``test_size`` cap, validation images included."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._entries:
            try:
                found, problems = self.scan(split)
            except OSError as exc:
                raise problem(exc.filename or self.root, f"cannot be listed ({exc.strerror or exc})") from None
            if problems:
                more = f" (and {len(problems) - 1} more problems; run 'lhl data check')" if len(problems) > 1 else ""
                raise DataError(f"{problems[0]}{more}")
            if not found:
                raise problem(self.root, f"no {split} images found (data.root); {self.expected()}")
            cap = self.data.train_size if split == "train" else self.data.test_size
            self._entries[split] = [found[i] for i in cap_indices(len(found), cap)]
        return self._entries[split]

    def val_positions(self) -> list[int]:
        """Positions in the (capped) training listing that form the validation split: the first
        ``data.val_size`` of ``numpy.random.default_rng([seed, 12345]).permutation(N)``, sorted."""
        count = len(self.listing("train"))
        size = self.data.val_size
        if size == 0:
            return []
        if size >= count:
            raise ConfigError(f"data.val_size: invalid value {size}; the training split has {count} images and "
                              "the validation split is cut from it (expected fewer than that, leaving images to train on)")
        order = np.random.default_rng([self.seed, VAL_SEED]).permutation(count)
        return sorted(int(i) for i in order[:size])

    def entries(self, split: str) -> list[Hashable]:
        """The images of ``split``: "test"; "train" without the validation images (the phase chunks
        are cut from these); "val": the ``data.val_size`` validation images (:meth:`val_positions`,
        files of the training folder, labels of every task)."""
        if split == "val":
            listing = self.listing("train")
            return [listing[i] for i in self.val_positions()]
        listing = self.listing(split)
        if split == "train" and self.data.val_size:
            held_out = set(self.val_positions())
            return [entry for i, entry in enumerate(listing) if i not in held_out]
        return listing

    def validate(self, tasks: Sequence[str] | None = None) -> None:
        """Settings, then ``data.root``: set, an existing readable non-empty directory, both
        splits present, and every requested task's label folder holding a file for every
        (capped) image. Lists folders only; no label file is opened."""
        super().validate(tasks)
        tasks = self.default_tasks if tasks is None else tuple(tasks)
        root = self.root
        try:
            with os.scandir(root) as listing:
                empty = next(listing, None) is None
        except OSError as exc:
            raise problem(root, f"cannot be listed (data.root; {exc.strerror or exc})") from None
        if empty:
            raise problem(root, f"empty directory (data.root); {self.expected()}")
        for split in SPLITS:
            self.listing(split)
        self.val_positions()  # data.val_size against the training images
        for split in SPLITS:
            entries = self.listing(split)
            for task in tasks:
                try:
                    missing = self.missing_labels(split, task, entries)
                except OSError as exc:
                    raise problem(exc.filename or root, f"cannot be listed ({exc.strerror or exc})") from None
                if missing:
                    raise problem(missing[0], f"missing file (the {task} label of a {split} image; "
                                              f"{len(missing)} of {len(entries)} {split} {task} labels are "
                                              f"missing; 'lhl data check' lists them)")

    def missing_labels(self, split: str, task: str, entries: Sequence[Hashable]) -> list[Path]:
        """Label files of ``task`` that ``entries`` need but that do not exist (found by
        listing, not opening); raises :class:`DataError` naming the folder when the task's
        folder is missing. Subclasses list folders instead of testing each file."""
        return [path for path in (self.label_path(split, entry, task) for entry in entries) if not path.is_file()]

    def num_images(self, split: str) -> int:
        return len(self.entries(split))

    def dataset(self, split: str, indices: Sequence[int], tasks: Sequence[str]) -> Dataset:
        self.check_tasks(tasks)
        entries = self.entries(split)
        augment = split == "train" and self.data.augment
        folder = "train" if split == "val" else split  # validation images are files of the training folder
        return FileDataset(self, folder, [entries[i] for i in indices], {name: self.make_task(name) for name in tasks},
                           augment)

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

    def fingerprint(self, tasks: Sequence[str] | None = None) -> str:
        """``"<name> train=<N> test=<M> files=<16 hex> settings=<12 hex>"``, from the content.

        ``files`` is a SHA-256 over, per split: the (capped) image count, every entry's name,
        and for :data:`FINGERPRINT_FILES` evenly spaced entries the image file and the label
        file of each task in ``tasks`` (None: every task the benchmark offers whose folder
        exists; the engine passes the run's tasks; their order does not matter), each as its
        logical name (split/task/entry: independent of where ``data.root`` lies and of
        folder-name variants such as ``label``/``label_7``), its size and three
        :data:`FINGERPRINT_BLOCK`-byte samples (start, middle, end; the whole file when it is
        smaller). ``settings`` covers every data setting except ``data.root`` and
        ``data.num_workers``. Reads raw bytes only, at most 12 KiB a file (a PNG's last block
        holds the zlib checksum of all its pixels); training still never opens another
        phase's label files.
        """
        if tasks is not None:
            self.check_tasks(tasks)
            tasks = sorted(set(tasks))
        else:
            tasks = sorted(task for task in self.task_specs() if self._has_folder(task))
        digest = hashlib.sha256()
        counts = {}
        for split in SPLITS:
            entries = self.listing(split)
            counts[split] = len(entries)
            digest.update(f"{split} {len(entries)}\n".encode())
            digest.update("\n".join(_entry_name(entry) for entry in entries).encode() + b"\n")
            for position in cap_indices(len(entries), FINGERPRINT_FILES):
                entry = entries[position]
                _hash_file(digest, f"{split}/image/{_entry_name(entry)}", self.image_path(split, entry))
                for task in tasks:
                    _hash_file(digest, f"{split}/{task}/{_entry_name(entry)}", self.label_path(split, entry, task))
        # with a validation split, which training images it holds depends on the seed too
        extra = {"seed": self.seed} if self.data.val_size else {}
        return (f"{self.name} train={counts['train']} test={counts['test']} files={digest.hexdigest()[:16]} "
                f"settings={self.settings_digest(**extra)}")

    def _has_folder(self, task: str) -> bool:
        try:
            for split in SPLITS:
                self.label_path(split, self.listing(split)[0], task)
        except DataError:
            return False
        return True


def _entry_name(entry: Hashable) -> str:
    return "/".join(str(part) for part in entry) if isinstance(entry, tuple) else str(entry)


def _hash_file(digest, name: str, path: Path) -> None:
    """Feed ``name``, the file's size and its first, middle and last block into ``digest``."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            digest.update(f"{name} {size}\n".encode())
            block = FINGERPRINT_BLOCK
            if size <= 3 * block:
                digest.update(file.read())
                return
            for offset in (0, (size - block) // 2, size - block):
                file.seek(offset)
                digest.update(file.read(block))
    except FileNotFoundError:  # validate() reports missing labels of the run's tasks
        digest.update(f"{name} missing\n".encode())
    except OSError as exc:
        raise problem(path, f"unreadable file ({exc.strerror or exc})") from None


class FileDataset(Dataset):
    """Items of one split: the image plus only the requested tasks' labels (``tasks``: name → task,
    which says how its label resizes and augments)."""

    def __init__(self, benchmark: FileBenchmark, split: str, entries: list[Hashable], tasks: Mapping[str, Task],
                 augment: bool) -> None:
        self.benchmark, self.split, self.entries, self.tasks = benchmark, split, entries, dict(tasks)
        self.size = tuple(int(v) for v in benchmark.data.resolution)
        self.augment = RandomScaleCrop() if augment else None
        self.normalize = benchmark.data.normalize == "imagenet"

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        sample = self.benchmark.load(self.split, self.entries[item], tuple(self.tasks))
        sample = resize_sample(sample, self.tasks, self.size)
        if self.augment is not None:
            sample = self.augment(sample, self.tasks)
        if self.normalize:
            sample["image"] = normalize_image(sample["image"])
        sample["index"] = torch.tensor(item, dtype=torch.int64)
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
