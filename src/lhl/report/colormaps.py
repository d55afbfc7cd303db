"""Colour-mapped pictures of dense predictions (``lhl predict``).

The task says how it is shown (:attr:`lhl.tasks.Task.display` and ``colormap``), for a
prediction in label space (``task.postprocess`` of one image):

- ``"classes"`` (segmentation): class ``c`` gets colour ``PALETTE[c]`` — the ten ``tab10``
  colours of ``lhl data preview`` for classes 0–9, then a fixed sequence of distinct colours; a
  negative label (ignore) is black;
- ``"vectors"`` (surface normals): RGB = (v + 1) / 2 per component (x → red, y → green, z → blue);
- ``"scalar"`` (every other task): its first channel, min–max scaled per image (a constant map is
  mapped to the low end), through the task's matplotlib colormap (``viridis`` for depth, ``magma``
  by default, as ``lhl data preview``); non-finite values are black.
"""

from __future__ import annotations

import colorsys

import numpy as np
import torch
from torch import Tensor

from lhl.tasks import Task

__all__ = ["PALETTE", "colorize", "colormap_name", "palette"]


def palette(count: int) -> np.ndarray:
    """``[count, 3]`` uint8 class colours: ``tab10`` for the first ten, then hues spaced by the
    golden ratio at two alternating lightnesses (fixed: the same classes always get the same colours)."""
    from matplotlib import colormaps

    base = [tuple(int(round(255 * v)) for v in colormaps["tab10"](i)[:3]) for i in range(10)]
    colours = base[:count]
    k = 0
    while len(colours) < count:
        hue = (0.11 + k * 0.618033988749895) % 1.0
        lightness = 0.45 if k % 2 == 0 else 0.65
        colours.append(tuple(int(round(255 * v)) for v in colorsys.hls_to_rgb(hue, lightness, 0.75)))
        k += 1
    return np.asarray(colours, dtype=np.uint8).reshape(-1, 3)


#: colours of the first 256 classes
PALETTE = palette(256)


def colormap_name(task: Task) -> str:
    """The matplotlib colormap of a task drawn from one channel."""
    return task.colormap


def colorize(task: Task, prediction: Tensor | np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8 picture of one image's label-space prediction: ``[H, W]`` class
    indices for a classification task, ``[C, H, W]`` (or ``[H, W]``) values otherwise."""
    values = prediction.detach().cpu().numpy() if isinstance(prediction, torch.Tensor) else np.asarray(prediction)
    if task.display == "classes":
        labels = values.reshape(values.shape[-2:]).astype(np.int64)
        top = int(labels.max(initial=0))
        colours = PALETTE if top < len(PALETTE) else palette(top + 1)
        picture = colours[np.clip(labels, 0, None)]
        picture[labels < 0] = 0
        return picture
    if values.ndim == 2:
        values = values[None]
    if task.display == "vectors" and values.shape[0] >= 3:
        normal = np.nan_to_num(values[:3].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        return np.round(np.clip((normal + 1) / 2, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    return scalar_picture(values[0], colormap_name(task))


def scalar_picture(values: np.ndarray, cmap: str) -> np.ndarray:
    """``[H, W]`` values → ``[H, W, 3]`` uint8 through ``cmap``, min–max scaled; non-finite → black."""
    from matplotlib import colormaps

    values = values.astype(np.float64)
    finite = np.isfinite(values)
    scaled = np.zeros_like(values)
    if finite.any():
        low, high = values[finite].min(), values[finite].max()
        if high > low:
            scaled[finite] = (values[finite] - low) / (high - low)
    picture = colormaps[cmap](scaled, bytes=True)[..., :3]
    picture[~finite] = 0
    return np.ascontiguousarray(picture, dtype=np.uint8)
