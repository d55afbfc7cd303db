"""Interpolation primitives for one sample's maps (``[C,H,W]``): what a task's
:meth:`~lhl.tasks.base.Task.resize_label` is built from, and what the data layer resizes images with.

- :func:`bilinear`: bilinear, ``align_corners=False``, antialiased when shrinking either side.
- :func:`nearest`: nearest-neighbour (``"nearest-exact"``), computed in float (so integer class
  maps come back as float; the caller casts).
- :func:`masked_bilinear`: bilinear over valid pixels only — the weighted average of the valid
  neighbours, the weights being the bilinearly resized validity mask — so an invalid pixel's
  placeholder value (0, NaN …) never leaks into a valid one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``[C,H,W]`` → ``[C,*size]``, bilinear; antialiased when either side shrinks."""
    down = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=down)[0]


def nearest(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``[C,H,W]`` → ``[C,*size]`` float, nearest-neighbour (``"nearest-exact"``)."""
    return F.interpolate(x[None].float(), size=size, mode="nearest-exact")[0]


def masked_bilinear(values: Tensor, valid: Tensor, size: tuple[int, int]) -> Tensor:
    """``values [C,H,W]`` resized with bilinear weights renormalised over the ``valid [H,W]``
    pixels; where no valid pixel contributes the result is 0 (the caller masks those pixels)."""
    clean = torch.where(valid, values, torch.zeros((), dtype=values.dtype))
    weight = bilinear(valid[None].to(values.dtype), size)
    return bilinear(clean, size) / weight.clamp(min=1e-6)
