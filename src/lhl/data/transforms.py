"""Joint spatial transforms of an image and its dense labels (SPEC §6).

A sample is a dict ``{"image": [3,H,W] float, <task>: label}``; each label has a *kind* that
says how it resizes and what a geometric change does to its values:

- ``"class"``: int64 ``[H,W]``, ``-1`` = ignore; nearest-neighbour.
- ``"depth"``: float ``[1,H,W]``, 0 = invalid; divided by the zoom factor s (zooming in by s
  brings the scene s times closer).
- ``"disparity"``: like depth, but *multiplied* by s (disparity is inverse depth). MTAN's code
  divides CityScapes disparity by s as if it were depth; we follow the physics (docs).
- ``"normal"``: float ``[3,H,W]`` unit vectors, all-zero = invalid; x negated on a horizontal
  flip; unit length restored after interpolation.
- ``"dense"``: float ``[C,H,W]``, NaN = invalid; values unchanged by the geometry.

Continuous labels are resized with *masked* bilinear interpolation (invalid pixels never leak
into valid ones; the validity mask itself is resized nearest-neighbour), segmentation with
nearest-neighbour. :class:`RandomScaleCrop` is MTAN's augmentation: scale s ∈ {1, 1.2, 1.5},
random crop of H/s × W/s resized back (bilinear for image, normals and other continuous
labels; nearest for segmentation and depth, as MTAN), then a horizontal flip with p = 0.5.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

KINDS = ("class", "depth", "disparity", "normal", "dense")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    down = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=down)[0]


def _nearest(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x[None].float(), size=size, mode="nearest-exact")[0]


def valid_mask(label: Tensor, kind: str) -> Tensor:
    """``[H,W]`` bool: pixels with a label, by the kind's convention."""
    if kind == "class":
        return label >= 0
    if kind in ("depth", "disparity"):
        return (torch.isfinite(label) & (label != 0)).all(dim=0)
    if kind == "normal":
        return torch.isfinite(label).all(dim=0) & (label != 0).any(dim=0)
    if kind == "dense":
        return torch.isfinite(label).all(dim=0)
    raise ValueError(f"unknown label kind {kind!r}; kinds: {', '.join(KINDS)}")


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return _bilinear(image, size).clamp_(0.0, 1.0)


def resize_label(label: Tensor, kind: str, size: tuple[int, int], nearest: bool = False) -> Tensor:
    """Resize one label to ``size`` (H, W). ``nearest=True`` forces nearest-neighbour values."""
    size = (int(size[0]), int(size[1]))
    if tuple(label.shape[-2:]) == size:
        return label
    if kind == "class":
        return _nearest(label[None], size)[0].long()
    valid = valid_mask(label, kind)
    if nearest:
        out = _nearest(label, size)
    else:
        clean = torch.where(valid, label, torch.zeros((), dtype=label.dtype))
        weight = _bilinear(valid[None].to(label.dtype), size)
        out = _bilinear(clean, size) / weight.clamp(min=1e-6)
    keep = _nearest(valid[None], size)[0] > 0.5
    if kind == "normal":
        out = F.normalize(out, dim=0, eps=1e-12)
    fill = float("nan") if kind == "dense" else 0.0
    return torch.where(keep, out, torch.full((), fill, dtype=out.dtype))


def resize_sample(sample: dict[str, Tensor], kinds: Mapping[str, str], size: Sequence[int]) -> dict[str, Tensor]:
    """Resize the image and every label of ``sample`` to ``size`` (H, W)."""
    size = (int(size[0]), int(size[1]))
    out = {"image": resize_image(sample["image"], size)}
    for task, label in sample.items():
        if task != "image":
            out[task] = resize_label(label, kinds[task], size)
    return out


def scale_crop_flip(sample: dict[str, Tensor], kinds: Mapping[str, str], scale: float, top: int, left: int,
                    flip: bool) -> dict[str, Tensor]:
    """The deterministic core of :class:`RandomScaleCrop`: crop ``int(H/s) × int(W/s)`` at
    (``top``, ``left``), resize back to H × W, adjust depth-like values, optionally flip."""
    height, width = sample["image"].shape[-2:]
    h, w = int(height / scale), int(width / scale)
    if not (0 <= top <= height - h and 0 <= left <= width - w):
        raise ValueError(f"crop {h}x{w} at ({top}, {left}) does not fit in {height}x{width}")
    size = (height, width)

    def crop(x: Tensor) -> Tensor:
        return x[..., top:top + h, left:left + w]

    out = {"image": resize_image(crop(sample["image"]), size)}
    for task, label in sample.items():
        if task == "image":
            continue
        kind = kinds[task]
        value = resize_label(crop(label), kind, size, nearest=kind in ("depth", "disparity"))
        if kind == "depth":
            value = value / scale
        elif kind == "disparity":
            value = value * scale
        out[task] = value
    if flip:
        for task, value in out.items():
            value = value.flip(-1)
            if task != "image" and kinds[task] == "normal":
                value = value.clone()
                value[0] = -value[0]
            out[task] = value
    return out


class RandomScaleCrop:
    """MTAN's RandomScaleCrop plus a horizontal flip, joint over image and labels.

    Random numbers come from torch's generator, so data-loader workers (seeded by the
    loader) and the main process (seeded per phase) give reproducible augmentations.
    """

    def __init__(self, scales: Sequence[float] = (1.0, 1.2, 1.5), flip_probability: float = 0.5) -> None:
        self.scales = tuple(float(s) for s in scales)
        self.flip_probability = float(flip_probability)

    def __call__(self, sample: dict[str, Tensor], kinds: Mapping[str, str]) -> dict[str, Tensor]:
        height, width = sample["image"].shape[-2:]
        scale = self.scales[int(torch.randint(len(self.scales), ()))]
        h, w = int(height / scale), int(width / scale)
        top = int(torch.randint(height - h + 1, ()))
        left = int(torch.randint(width - w + 1, ()))
        flip = bool(torch.rand(()) < self.flip_probability)
        return scale_crop_flip(sample, kinds, scale, top, left, flip)


def normalize_image(image: Tensor) -> Tensor:
    """ImageNet mean/std standardisation of a ``[3,H,W]`` image in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(3, 1, 1)
    return (image - mean) / std
