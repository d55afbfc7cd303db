"""Joint spatial transforms of an image and its dense labels (README, "Benchmarks and datasets";
docs/deviations.md, "Data").

A sample is a dict ``{"image": [3,H,W] float, <task>: label}``; ``tasks`` maps each label's name
to its :class:`~lhl.tasks.Task`, which says how its label resizes and what a geometric change
does to its values (:mod:`lhl.tasks.base`, "Labels: validity and geometry"): for the built-in
tasks, class maps resize nearest-neighbour and continuous labels with *masked* bilinear
interpolation (invalid pixels never leak into valid ones; normals renormalised); zooming in by s
divides depth by s and multiplies CityScapes' disparity by s; a horizontal flip negates the x
component of normals.

:class:`RandomScaleCrop` is MTAN's augmentation: scale s ∈ {1, 1.2, 1.5}, random crop of
H/s × W/s resized back (bilinear for the image; each label as its task says, which for MTAN's
depth is nearest-neighbour), then a horizontal flip with p = 0.5.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor

from lhl.tasks import Task
from lhl.tasks.resize import bilinear

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return bilinear(image, size).clamp_(0.0, 1.0)


def resize_sample(sample: dict[str, Tensor], tasks: Mapping[str, Task], size: Sequence[int]) -> dict[str, Tensor]:
    """Resize the image and every label of ``sample`` to ``size`` (H, W)."""
    size = (int(size[0]), int(size[1]))
    out = {"image": resize_image(sample["image"], size)}
    for name, label in sample.items():
        if name != "image":
            out[name] = tasks[name].resize_label(label, size)
    return out


def scale_crop_flip(sample: dict[str, Tensor], tasks: Mapping[str, Task], scale: float, top: int, left: int,
                    flip: bool) -> dict[str, Tensor]:
    """The deterministic core of :class:`RandomScaleCrop`: crop ``int(H/s) × int(W/s)`` at
    (``top``, ``left``), resize back to H × W, adjust the label values for the zoom (each task's
    :meth:`~lhl.tasks.Task.zoom_label`), optionally flip (:meth:`~lhl.tasks.Task.flip_label`)."""
    height, width = sample["image"].shape[-2:]
    h, w = int(height / scale), int(width / scale)
    if not (0 <= top <= height - h and 0 <= left <= width - w):
        raise ValueError(f"crop {h}x{w} at ({top}, {left}) does not fit in {height}x{width}")
    size = (height, width)

    out = {"image": resize_image(sample["image"][..., top:top + h, left:left + w], size)}
    for name, label in sample.items():
        if name == "image":
            continue
        task = tasks[name]
        value = task.resize_label(task.crop_label(label, top, left, h, w), size, nearest=task.zoom_nearest)
        out[name] = task.zoom_label(value, scale)
    if flip:
        out = {name: value.flip(-1) if name == "image" else tasks[name].flip_label(value)
               for name, value in out.items()}
    return out


class RandomScaleCrop:
    """MTAN's RandomScaleCrop plus a horizontal flip, joint over image and labels.

    Random numbers come from torch's generator, so data-loader workers (seeded by the
    loader) and the main process (seeded per phase) give reproducible augmentations.
    """

    def __init__(self, scales: Sequence[float] = (1.0, 1.2, 1.5), flip_probability: float = 0.5) -> None:
        self.scales = tuple(float(s) for s in scales)
        self.flip_probability = float(flip_probability)

    def __call__(self, sample: dict[str, Tensor], tasks: Mapping[str, Task]) -> dict[str, Tensor]:
        height, width = sample["image"].shape[-2:]
        scale = self.scales[int(torch.randint(len(self.scales), ()))]
        h, w = int(height / scale), int(width / scale)
        top = int(torch.randint(height - h + 1, ()))
        left = int(torch.randint(width - w + 1, ()))
        flip = bool(torch.rand(()) < self.flip_probability)
        return scale_crop_flip(sample, tasks, scale, top, left, flip)


def normalize_image(image: Tensor) -> Tensor:
    """ImageNet mean/std standardisation of a ``[3,H,W]`` image in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(3, 1, 1)
    return (image - mean) / std
