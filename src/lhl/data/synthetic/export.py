"""Pre-render a synthetic benchmark once into NYUv2's ``.npy`` layout (``lhl data render``).

The renderer draws about 15 images/s per core at 288×384, far below what a GPU trains on; a
directory rendered once is read back by the ``nyuv2`` benchmark (``data.root=DIR``) at loader
speed, and can be inspected (``lhl data check``) and shared. :func:`render_to_disk` writes

``DIR/{train,val}/{image,label,depth,normal}/<i>.npy`` (``val/`` is the test split, as in MTAN's
archives; :mod:`lhl.data.mtan`) and ``DIR/render.json`` (how it was made). Per image, all float32:
``image`` H×W×3 in [0, 1] (the rendered image, sensor noise included), ``label`` H×W class ids
``0..NUM_CLASSES-1`` (the scenes have no unlabelled pixel, so no ``-1``), ``depth`` H×W×1 z-buffer
metres (never 0: the room is closed), ``normal`` H×W×3 unit normals in the renderer's camera
frame (x right, y down, z forward; :mod:`lhl.data.synthetic.labels`). Item ``i`` of a split is
sample ``i`` of the synthetic benchmark's split for the same seed and resolution, so ``nyuv2`` on
the directory yields the same images and labels as ``synthetic-nyu`` (float32 is the renderer's
own dtype; segmentation comes back as the same int64 ids).

Only ``synthetic-nyu`` is written: the layout has folders for segmentation, depth and normal, and
every synthetic benchmark renders the same scenes (synthetic-city's sequence is ``nyuv2`` with
``tasks=[segmentation, depth]`` on the same directory; synthetic-taskonomy's other seven tasks
have no folder). The rendered scenes have 8 classes, NYUv2 13: the ids fit, and ``nyuv2``'s
13-way head simply never sees classes 8–12 labelled (mIoU averages over the classes present in
labels or predictions; ``docs/datasets.md``).

The write is atomic: everything goes to a hidden temporary directory next to ``DIR``, renamed
to ``DIR`` only when complete; an error, SIGINT or SIGTERM removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lhl.config.schema import DataConfig
from lhl.errors import ConfigError, DataError, Interrupted

#: synthetic benchmarks ``lhl data render`` writes, and the on-disk benchmark that reads the result
RENDERABLE = {"synthetic-nyu": "nyuv2"}
#: task -> folder of the NYUv2 layout
FOLDERS = {"segmentation": "label", "depth": "depth", "normal": "normal"}
#: split of the synthetic benchmark -> folder of the layout (``val/`` is MTAN's test split)
SPLIT_FOLDERS = {"train": "train", "test": "val"}
#: the data settings that change what is rendered, and the one that says how (worker processes)
RENDER_KEYS = ("resolution", "train_size", "test_size", "num_workers")
#: the name of the file that records how a directory was rendered
RECORD = "render.json"


class _Batches(Dataset):
    """Item ``b``: the rendered arrays of the ``b``-th batch of indices (one renderer call)."""

    def __init__(self, seed: int, split: str, batches: Sequence[Sequence[int]], resolution: tuple[int, int]) -> None:
        self.seed, self.split, self.batches, self.resolution = seed, split, [list(b) for b in batches], resolution

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict[str, np.ndarray]:
        from lhl.data.synthetic import render

        out = render(self.seed, self.split, self.batches[b], self.resolution, tuple(FOLDERS))
        return {"image": out["image"].permute(0, 2, 3, 1).numpy(),
                "label": out["segmentation"].numpy().astype(np.float32),
                "depth": out["depth"].permute(0, 2, 3, 1).numpy(),
                "normal": out["normal"].permute(0, 2, 3, 1).numpy()}


def check_render_settings(benchmark: str, data: DataConfig) -> None:
    """A :class:`ConfigError` for a benchmark that cannot be written or a data setting that the
    render would ignore (every key but :data:`RENDER_KEYS` must keep its default)."""
    from lhl.registry import BENCHMARKS, load_builtins

    load_builtins()
    BENCHMARKS.get(benchmark)  # an unknown name: the registry's error lists the valid ones
    if benchmark not in RENDERABLE:
        reason = ("its images are read from disk, not rendered" if not benchmark.startswith("synthetic-") else
                  "the nyuv2 layout holds only segmentation, depth and normal, and every synthetic benchmark "
                  "renders the same scenes: render synthetic-nyu and train nyuv2 with the tasks you need")
        raise ConfigError(f"--benchmark {benchmark!r}: cannot be rendered to disk ({reason}); supported: "
                          f"{', '.join(RENDERABLE)}")
    defaults = DataConfig()
    for key in data.__dataclass_fields__:
        if key in RENDER_KEYS or getattr(data, key) == getattr(defaults, key):
            continue
        hint = {"root": "the directory is --out",
                "normalize": "images are stored in [0, 1]; set data.normalize when training on the directory",
                "augment": "set data.augment when training on the directory",
                "val_size": "the nyuv2 benchmark cuts data.val_size from the training images when training",
                "chunking": "a training setting"}.get(key, "not used by the renderer")
        raise ConfigError(f"data.{key}: does not apply to 'lhl data render' ({hint}); the render takes "
                          f"{', '.join('data.' + k for k in RENDER_KEYS)}")
    data.check_for_training()


def _sizes(data: DataConfig) -> dict[str, int]:
    from lhl.data.synthetic_benchmark import DEFAULT_TEST, DEFAULT_TRAIN

    return {"train": DEFAULT_TRAIN if data.train_size is None else int(data.train_size),
            "test": DEFAULT_TEST if data.test_size is None else int(data.test_size)}


def check_out(out: Path) -> None:
    """A :class:`DataError` naming ``out`` unless it is absent or an empty directory."""
    if out.is_dir():
        with os.scandir(out) as listing:
            if next(listing, None) is not None:
                raise DataError(f"{out}: already exists and is not empty (--out); 'lhl data render' writes a new "
                                "directory: choose another path or remove this one")
    elif out.exists() or out.is_symlink():
        raise DataError(f"{out}: already exists and is not a directory (--out); choose another path")


def render_to_disk(out: str | Path, benchmark: str, data: DataConfig, seed: int = 0, batch: int = 8,
                   progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Render ``benchmark``'s train and test splits for ``seed`` and ``data`` into ``out``
    (module docstring) and return the record written to ``out/render.json``.

    ``batch`` images per renderer call; ``data.num_workers`` worker processes render batches
    while this process writes files (0: all in this process). Every rendering process uses one
    torch thread: the renderer issues many small elementwise ops, and intra-op threads made it
    up to 10× slower on a loaded 2-core machine (``benchmarks/render_speed.py``); use workers to
    use more cores. ``progress(split, done, total)`` is called after each batch. Raises :class:`ConfigError` / :class:`DataError` before anything
    is written when the settings or ``out`` cannot be used.
    """
    from lhl.data.synthetic import CLASS_NAMES, NUM_CLASSES
    from lhl.registry import BENCHMARKS, load_builtins
    from lhl.version import __version__

    if batch < 1:
        raise ConfigError(f"--batch: invalid value {batch}; expected an integer >= 1")
    if int(seed) != seed or seed < 0:
        raise ConfigError(f"--seed: invalid value {seed!r}; expected an integer >= 0")
    check_render_settings(benchmark, data)
    out = Path(out).expanduser()
    check_out(out)
    load_builtins()
    bench = BENCHMARKS.get(benchmark)(data, seed)
    bench.validate(tuple(FOLDERS))
    resolution = (int(data.resolution[0]), int(data.resolution[1]))
    sizes = _sizes(data)
    fingerprint = _one_thread(bench.fingerprint)
    record = {"format": "lhl data render", "benchmark": benchmark, "read_as": RENDERABLE[benchmark],
              "seed": int(seed), "resolution": list(resolution), "train_size": sizes["train"],
              "test_size": sizes["test"], "splits": dict(SPLIT_FOLDERS),
              "tasks": {task: folder for task, folder in FOLDERS.items()},
              "num_classes": NUM_CLASSES, "class_names": list(CLASS_NAMES),
              "dtypes": {"image": "float32", "label": "float32", "depth": "float32", "normal": "float32"},
              "fingerprint": fingerprint, "lhl_version": __version__, "torch_version": torch.__version__}

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as exc:
        raise DataError(f"{out}: cannot be written (--out; {exc.strerror or exc} while creating a temporary "
                        f"directory in {out.parent})") from None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in DataLoader workers (docstring)
    try:
        with _sigterm_interrupts():
            for split, folder in SPLIT_FOLDERS.items():
                _render_split(tmp / folder, seed, split, sizes[split], resolution, batch, data.num_workers,
                              progress)
            (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
            check_out(out)  # nothing appeared meanwhile
            if out.is_dir():
                out.rmdir()
            os.replace(tmp, out)
            os.chmod(out, 0o777 & ~_umask())  # mkdtemp's 0o700 -> what mkdir would have made
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    return record


def _render_split(folder: Path, seed: int, split: str, count: int, resolution: tuple[int, int], batch: int,
                  workers: int, progress: Callable[[str, int, int], None] | None) -> None:
    for name in ("image", *FOLDERS.values()):
        (folder / name).mkdir(parents=True)
    batches = [range(start, min(count, start + batch)) for start in range(0, count, batch)]
    loader = DataLoader(_Batches(seed, split, batches, resolution), batch_size=None, num_workers=workers,
                        collate_fn=_as_is)
    done = 0
    for indices, arrays in zip(batches, loader):
        for j, i in enumerate(indices):
            for name, values in arrays.items():
                np.save(folder / name / f"{i}.npy", values[j])
        done += len(indices)
        if progress is not None:
            progress(split, done, count)


def _one_thread(fn: Callable[[], str]) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def _as_is(item):
    return item


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _sigterm_interrupts:
    """Within the block, SIGTERM raises :class:`Interrupted` (so the temporary directory is
    removed); SIGINT already raises KeyboardInterrupt. Only in the main thread."""

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            def handler(signum, frame):
                raise Interrupted("SIGTERM received; the render stopped and wrote nothing", 143)

            self.previous = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.installed:  # None: a handler not set from Python; the default is the best restore
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)


__all__ = ["FOLDERS", "RECORD", "RENDERABLE", "SPLIT_FOLDERS", "check_out", "check_render_settings",
           "render_to_disk"]
