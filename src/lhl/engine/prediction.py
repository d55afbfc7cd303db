"""Predictions of a finished run on image files (``lhl predict``).

Each image is read with Pillow (PNG, JPEG or anything else Pillow opens; the EXIF orientation
applied; converted to RGB, alpha dropped; values scaled to [0, 1]), resized to the run's
``data.resolution`` (bilinear, as the loaders resize) and ImageNet-normalised when the run's
``data.normalize`` is ``imagenet``: the input the model was trained on. For every image and every
task the model has a head for, ``<stem>_<task>.png`` is the colour-mapped prediction
(:mod:`lhl.report.colormaps`) at the image's own size — drawn at the model's resolution, then
resized (nearest for segmentation, bilinear otherwise) — and, on request, ``<stem>_<task>.npy``
the raw label-space prediction (``task.postprocess``) at the model's resolution: ``[H, W]``
int64 class indices for segmentation, ``[C, H, W]`` float32 otherwise (depth ``[1, H, W]``,
normals ``[3, H, W]`` unit vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from lhl.config.schema import DataConfig
from lhl.data.transforms import normalize_image, resize_image
from lhl.engine.loading import LoadedRun
from lhl.errors import ConfigError, DataError
from lhl.report.colormaps import colorize

__all__ = ["InputImage", "predict_images", "prepare_image", "read_image"]

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass
class InputImage:
    """One image file: its path, its size ``(H, W)`` and the model's input ``[3, h, w]``."""

    path: Path
    size: tuple[int, int]
    tensor: Tensor


def read_image(path: str | Path) -> Tensor:
    """``[3, H, W]`` float32 RGB in [0, 1] from an image file; a :class:`~lhl.errors.DataError`
    starting with the path for a missing, unreadable or non-image file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file; expected an image file (PNG or JPEG)")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected an image file (PNG or JPEG)")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
            if image.mode in _SIXTEEN_BIT:  # 16-bit grey: scale by its own range, not clipped to 8 bits
                grey = np.asarray(image, dtype=np.float32) / 65535.0
                pixels = np.repeat(grey[..., None].clip(0, 1), 3, axis=-1)
            else:
                pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file Pillow can read; expected a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: unreadable image file ({reason})") from None
    if pixels.ndim != 3 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise DataError(f"{path}: empty image ({'x'.join(map(str, pixels.shape))})")
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def prepare_image(image: Tensor, data: DataConfig) -> Tensor:
    """A ``[3, H, W]`` image in [0, 1] → the model's input: resized to ``data.resolution``
    (bilinear, antialiased when shrinking: what the data loaders do) and normalised as the run was."""
    tensor = resize_image(image, tuple(int(v) for v in data.resolution))
    if data.normalize == "imagenet":
        tensor = normalize_image(tensor)
    return tensor.contiguous()


def predict_images(loaded: LoadedRun, paths: Sequence[str | Path], out: str | Path, raw: bool = False,
                   echo=print) -> list[Path]:
    """Write the pictures (and with ``raw`` the ``.npy`` predictions) of every image in ``paths``
    into ``out``; return the files written. Every image is read and checked before anything is
    written; two images with the same file stem are refused (their outputs would collide)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    stems: dict[str, Path] = {}
    for path in map(Path, paths):
        if path.stem in stems:
            raise ConfigError(f"{path} and {stems[path.stem]} have the same name {path.stem!r}; their predictions "
                              f"would overwrite each other (<stem>_<task>.png): rename one or predict them separately")
        stems[path.stem] = path
    images = []
    for path in stems.values():
        image = read_image(path)
        images.append(InputImage(path, (int(image.shape[1]), int(image.shape[2])),
                                 prepare_image(image, loaded.config.data)))
    out.mkdir(parents=True, exist_ok=True)
    device = loaded.run.device
    written: list[Path] = []
    for item in images:
        with torch.inference_mode():
            outputs = loaded.model(item.tensor[None].to(device))
        names = []
        for task_name, task in loaded.tasks.items():
            prediction = task.postprocess(outputs[task_name].float())[0].cpu()
            picture = Image.fromarray(colorize(task, prediction))
            height, width = item.size
            if picture.size != (width, height):
                nearest = task.display == "classes"
                picture = picture.resize((width, height), Image.NEAREST if nearest else Image.BILINEAR)
            target = out / f"{item.path.stem}_{task_name}.png"
            picture.save(target)
            written.append(target)
            names.append(target.name)
            if raw:
                array = prediction.numpy()
                array = array.astype(np.int64) if task.display == "classes" else array.astype(np.float32)
                target = out / f"{item.path.stem}_{task_name}.npy"
                np.save(target, array)
                written.append(target)
                names.append(target.name)
        echo(f"{item.path}: {' '.join(names)}")
    return written
