"""A frozen copy of the model: the teacher for distillation methods (F^{t−1} in HAD paper Sec. 4.1,
Fig. 2), and the cache of its outputs over a phase's chunk (issue 14; docs/design.md, "Teacher
cache").

**Teacher cache.** The teacher is frozen during a phase, so when nothing changes the phase's
images between epochs (``data.augment`` off — the paper's and the authors' setting) its output on
an image is the same in every epoch. :class:`TeacherCache` computes it once at the start of the
phase, for every image of the phase's chunk in index order, and serves it with each batch by the
items' ``"index"``; the teacher then never runs during the phase. It stores only what the method
reads (the method's :attr:`~lhl.methods.distillation.DistillationMethod.teacher_cache_kind`), in
the form the task declares:

- ``"pseudo_label"`` (HAD, DIS): :meth:`Task.pseudo_label` compressed by
  :meth:`Task.compress_pseudo_label` — class indices as uint8 (int16 beyond 256 classes) for
  segmentation, real values in the cache's precision (``train.teacher_cache_precision``: fp16 or
  fp32) for depth, normals and other regression tasks; served back through
  :meth:`Task.expand_pseudo_label` (int64 / float32);
- ``"raw"`` (LwF's soft targets): the raw head output in the cache's precision, served as float32.

Storage (``train.teacher_cache_storage``): ``memory`` (host memory, copied to the device per
batch) or ``disk`` (one memory-mapped file per task under ``<run dir>/teacher-cache/``). The
cache is freed, and its files deleted, at the end of the phase; nothing is checkpointed (on
resume the teacher and the cache are rebuilt from phase t−1's checkpoint).

It is built as the on-the-fly teacher runs: the eval-mode teacher, no gradients, under the same
autocast as the training step (``train.amp``), and the pseudo-label is taken from the float32 copy
of the output exactly as :class:`~lhl.methods.distillation.OldTask` takes it. Class maps are
therefore bit-exact and real values equal up to the storage precision, provided the teacher's
output on an image does not depend on which other images share its batch (true of eval-mode
networks up to the convolution algorithm's rounding: exact on the CPU; see docs/design.md).

Under DDP (a process group of more than one process) every process may draw any index in a later
epoch, so the cache covers the whole phase dataset: each process computes the contiguous shard
:func:`~lhl.engine.distributed.shard_bounds` gives it, and the shards are combined with
:func:`~lhl.engine.distributed.all_gather_cat` (``memory``) or written into one shared file
(``disk``; the run directory must then be visible to every process — one node, or a shared file
system).
"""

from __future__ import annotations

import copy
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from lhl.engine.distributed import all_gather_cat, barrier, is_distributed, is_main, shard_bounds
from lhl.models import MultiTaskNet
from lhl.tasks import Task

#: What the cache can store per old task: the task's pseudo-label, or the raw head output.
CacheKind = Literal["pseudo_label", "raw"]
#: Subdirectory of the run directory that holds ``disk`` caches while a phase trains.
CACHE_DIRECTORY = "teacher-cache"


class Teacher:
    """Frozen, eval-mode copy of ``model`` taken at construction (end of the previous phase).

    :meth:`outputs` runs the encoder **once** for all requested heads, without gradients.
    """

    def __init__(self, model: MultiTaskNet) -> None:
        self.model = copy.deepcopy(model)
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks

    @torch.no_grad()
    def outputs(self, images: Tensor, tasks: Sequence[str] | None = None,
                return_features: bool = False):
        """Raw teacher outputs ``{task: [B,C,H,W]}`` (and stage features when asked)."""
        self.model.eval()
        return self.model(images, self.tasks if tasks is None else list(tasks), return_features=return_features)

    def module(self) -> nn.Module:
        return self.model


# ---------------------------------------------------------------------------------------------
# the teacher cache
# ---------------------------------------------------------------------------------------------


def autocast_for(amp: str, device: torch.device):
    """The autocast context the phase loop wraps a training step in (``train.amp``)."""
    if amp == "off":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if amp == "fp16" else torch.bfloat16)


def teacher_cache_off_reason(config: Any, method_reason: str | None) -> str | None:
    """Why the cache is off for this run (``None``: on). ``method_reason`` is the method's own
    (:meth:`~lhl.methods.distillation.DistillationMethod.teacher_cache_blocker`)."""
    if config.train.teacher_cache == "off":
        return "train.teacher_cache is off"
    if config.data.augment:
        return ("data.augment is on: the phase's images change from epoch to epoch, so the teacher runs "
                "on every batch")
    return method_reason


def _float_dtype(precision: str) -> torch.dtype:
    return torch.float16 if precision == "fp16" else torch.float32


class TeacherCache:
    """The teacher's outputs (in stored form) for every image of a phase's chunk, by index.

    Build it with :meth:`build`; :meth:`lookup` serves a batch; :meth:`close` frees the memory and
    deletes the files. ``kinds`` maps every cached task to its :data:`CacheKind`.
    """

    def __init__(self, tasks: dict[str, Task], kinds: dict[str, CacheKind], stored: dict[str, Any],
                 files: list[Path], directory: Path | None) -> None:
        self.tasks, self.kinds, self._stored = tasks, kinds, stored
        self._files, self._directory = files, directory
        self.seconds = 0.0

    # ------------------------------------------------------------------ building
    @classmethod
    @torch.no_grad()
    def build(cls, teacher: Teacher, tasks: dict[str, Task], kinds: dict[str, CacheKind], dataset: Any,
              batch_size: int, device: torch.device, *, amp: str = "off", precision: str = "fp16",
              storage: str = "memory", directory: str | Path | None = None, num_workers: int = 0,
              collate_fn: Callable | None = None, worker_init_fn: Callable | None = None) -> "TeacherCache":
        """Run ``teacher`` over ``dataset`` (items with ``"image"`` and ``"index"`` = position) in
        index order, ``batch_size`` images at a time (this process's contiguous shard under DDP),
        and keep the stored form of every task in ``kinds``. ``directory`` is required for
        ``storage="disk"`` (the files go to ``directory/teacher-cache/``)."""
        started = time.perf_counter()
        count = len(dataset)
        start, stop = shard_bounds(count)
        dtype = _float_dtype(precision)
        names = list(kinds)
        context = lambda: autocast_for(amp, device)  # noqa: E731 - a fresh context per batch

        def stored_form(images: Tensor) -> dict[str, Tensor]:
            with context():
                raw = teacher.outputs(images, names)
                out = {}
                for name in names:
                    value = raw[name].float()  # what OldTask reads on the fly
                    task = tasks[name]
                    out[name] = (task.compress_pseudo_label(task.pseudo_label(value), dtype)
                                 if kinds[name] == "pseudo_label" else value.to(dtype))
            return {name: value.cpu() for name, value in out.items()}

        # Shapes and dtypes from one image (every process needs them, even one with an empty shard).
        probe = dataset[0]["image"].unsqueeze(0).to(device)
        layout = {name: (tuple(value.shape[1:]), value.dtype) for name, value in stored_form(probe).items()}

        files: list[Path] = []
        cache_dir = None
        if storage == "disk":
            if directory is None:
                raise ValueError("a disk teacher cache needs a directory")
            cache_dir = Path(directory) / CACHE_DIRECTORY
            files = [cache_dir / f"{name}.bin" for name in names]
            if is_main():
                cache_dir.mkdir(parents=True, exist_ok=True)
                for name, path in zip(names, files):  # created at full size by one process
                    shape, value_dtype = layout[name]
                    np.memmap(path, dtype=_numpy(value_dtype), mode="w+", shape=(count, *shape)).flush()
            barrier()
            targets = {name: np.memmap(path, dtype=_numpy(layout[name][1]), mode="r+",
                                       shape=(count, *layout[name][0])) for name, path in zip(names, files)}
            offset = 0  # the files are indexed by the global index
        else:
            targets = {name: torch.empty((stop - start, *layout[name][0]), dtype=layout[name][1]) for name in names}
            offset = start  # this process's shard, gathered below

        loader = DataLoader(Subset(dataset, range(start, stop)), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, collate_fn=collate_fn, worker_init_fn=worker_init_fn,
                            generator=torch.Generator())  # its own: iterating draws a base seed, and the
        # global RNG (dropout, …) must be left as a run without the cache leaves it
        expected = start
        for batch in loader:
            index = batch["index"].long()
            if not torch.equal(index, torch.arange(expected, expected + len(index))):
                raise ValueError("the teacher cache needs dataset items whose 'index' is their position in "
                                 f"the phase dataset; got {index.tolist()[:4]}… at position {expected}")
            rows = slice(expected - offset, expected - offset + len(index))
            for name, value in stored_form(batch["image"].to(device)).items():
                if storage == "disk":
                    targets[name][rows] = value.numpy()
                else:
                    targets[name][rows] = value
            expected += len(index)

        if storage == "disk":
            for mm in targets.values():
                mm.flush()
            del targets
            barrier()  # every shard is written before anyone reads
            stored: dict[str, Any] = {name: np.memmap(path, dtype=_numpy(layout[name][1]), mode="r",
                                                      shape=(count, *layout[name][0]))
                                      for name, path in zip(names, files)}
        else:
            stored = {name: all_gather_cat(value) for name, value in targets.items()}
        cache = cls(tasks, kinds, stored, files, cache_dir)
        cache.seconds = time.perf_counter() - started
        return cache

    # ------------------------------------------------------------------ serving
    def lookup(self, index: Tensor, device: torch.device) -> dict[str, Tensor]:
        """``{task: teacher target}`` for the items ``index`` ``[B]`` of a batch, on ``device``:
        the expanded pseudo-label (int64 class indices / float32) or the float32 raw output."""
        rows = index.detach().to("cpu", torch.int64)
        out = {}
        for name, stored in self._stored.items():
            if isinstance(stored, np.memmap):
                value = torch.from_numpy(np.ascontiguousarray(stored[rows.numpy()]))
            else:
                value = stored.index_select(0, rows)
            value = value.to(device, non_blocking=True)
            out[name] = (self.tasks[name].expand_pseudo_label(value) if self.kinds[name] == "pseudo_label"
                         else value.float())
        return out

    # ------------------------------------------------------------------ bookkeeping
    @property
    def entries(self) -> int:
        """Images cached (the phase's chunk)."""
        return next(iter(self._stored.values())).shape[0] if self._stored else 0

    def task_bytes(self) -> dict[str, int]:
        return {name: int(stored.nbytes) for name, stored in self._stored.items()}

    @property
    def nbytes(self) -> int:
        """Bytes the cache holds (host memory, or the files for ``disk``)."""
        return sum(self.task_bytes().values())

    @property
    def storage(self) -> str:
        return "disk" if self._directory is not None else "memory"

    def describe(self) -> dict[str, Any]:
        """The fields of the ``teacher_cache`` event."""
        return {"enabled": True, "storage": self.storage, "entries": self.entries, "bytes": self.nbytes,
                "mib": round(self.nbytes / 2 ** 20, 3), "seconds": round(self.seconds, 3),
                "tasks": {name: {"kind": self.kinds[name], "dtype": str(_dtype_name(value)),
                                 "shape": list(value.shape[1:]), "bytes": int(value.nbytes)}
                          for name, value in self._stored.items()},
                "path": str(self._directory) if self._directory is not None else None}

    def close(self) -> None:
        """Free the stored outputs and delete the files (every process calls it)."""
        self._stored = {}
        if self._directory is not None:
            barrier()  # nobody reads any more
            if is_main():
                for path in self._files:
                    path.unlink(missing_ok=True)
                shutil.rmtree(self._directory, ignore_errors=True)
            self._directory, self._files = None, []


def _numpy(dtype: torch.dtype) -> np.dtype:
    return torch.empty((), dtype=dtype).numpy().dtype


def _dtype_name(value: Any) -> str:
    return str(value.dtype).replace("torch.", "")  # torch.uint8 / numpy float16 → "uint8" / "float16"


def open_teacher_cache(ctx: Any, teacher: Teacher, loader: Any, kinds: dict[str, CacheKind] | None,
                       method_reason: str | None = None) -> TeacherCache | None:
    """The cache for this phase, or ``None``, with one ``teacher_cache`` event either way
    (``enabled``, and the ``reason`` it is off or what it holds and its memory).

    ``kinds`` maps each old task to what the method reads (``None`` with ``method_reason``: the
    method cannot be served from a cache). ``ctx`` is the :class:`~lhl.engine.hooks.RunContext`;
    disk caches go to ``ctx.scratch_dir`` (the run directory)."""
    config = ctx.config
    reason = teacher_cache_off_reason(config, method_reason if kinds is None else None)
    if reason is None and loader is None:
        reason = "no training loader was given to before_phase"
    if reason is None and config.train.teacher_cache_storage == "disk" and getattr(ctx, "scratch_dir", None) is None:
        reason = "train.teacher_cache_storage is disk but the run has no directory for it"
    if reason is not None:
        ctx.log("teacher_cache", phase=ctx.phase, enabled=False, reason=reason)
        return None
    cache = TeacherCache.build(
        teacher, ctx.tasks, kinds, loader.dataset, loader.batch_size, ctx.device, amp=config.train.amp,
        precision=config.train.teacher_cache_precision, storage=config.train.teacher_cache_storage,
        directory=getattr(ctx, "scratch_dir", None), num_workers=getattr(loader, "num_workers", 0),
        collate_fn=getattr(loader, "collate_fn", None), worker_init_fn=getattr(loader, "worker_init_fn", None))
    ctx.log("teacher_cache", phase=ctx.phase, precision=config.train.teacher_cache_precision, **cache.describe())
    return cache
