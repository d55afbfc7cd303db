"""POD: pooled outputs distillation (PLOP, Douillard et al., CVPR 2021, Sec. 3.1; HAD paper
App. E, Table 10).

Plain functions in the style of ``torchvision.ops``. A feature map ``x [B,C,H,W]`` is squared
element-wise, then described by pooled means:

- **Local POD** (PLOP eq. 3–4): at each scale s ∈ {1, 2, 4} the map is split into s × s regions;
  for every region r (row-major), its width-pooled means (mean over the region's columns, one per
  row and channel, ``C·h_r``) then its height-pooled means (mean over its rows, one per column and
  channel, ``C·w_r``) are appended to the embedding — PLOP's order.
- **Global POD**: the same pooled means of the whole map (scale 1 only), ``C·(H+W)`` values.

Region boundaries are computed **per axis**: rows are split at ⌊i·H/k⌋, i = 0 … k with
k = min(s, H), and columns likewise with W — so non-square maps (e.g. 9 × 12) are handled, every
pixel belongs to exactly one region, and a map smaller than s along an axis is split into single
rows/columns there (PLOP's code uses W // s for both axes, which breaks on non-square maps and
drops leftover rows). Embeddings are not normalised (PLOP's default).

Distances per image between student and teacher embeddings e_S, e_T ``[B,D]`` → ``[B]``:
``frobenius`` ‖e_S − e_T‖₂ (unsquared, PLOP), ``l1`` mean |e_S − e_T|, ``l2`` mean (e_S − e_T)²
— "L2" read as the squared distance (MSE), since the HAD paper lists it apart from Frobenius
(docs/deviations.md). :func:`pod_loss` averages the per-image distance over the batch and over
layers.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

LOCAL_SCALES = (1, 2, 4)


def _edges(size: int, scale: int) -> list[int]:
    parts = min(scale, size)
    return [i * size // parts for i in range(parts + 1)]


def pod_embedding(x: Tensor, scales: Sequence[int] = LOCAL_SCALES) -> Tensor:
    """Pooled embedding of ``x [B,C,H,W]`` (squared first): ``[B,D]``, D = Σ_s Σ_r C·(h_r + w_r).

    ``scales=(1, 2, 4)`` is Local POD, ``scales=(1,)`` Global POD."""
    x = x.float().pow(2)
    b, _, h, w = x.shape
    parts = []
    for scale in scales:
        rows, cols = _edges(h, scale), _edges(w, scale)
        for top, bottom in zip(rows[:-1], rows[1:]):
            for left, right in zip(cols[:-1], cols[1:]):
                region = x[:, :, top:bottom, left:right]
                parts += [region.mean(dim=3).reshape(b, -1), region.mean(dim=2).reshape(b, -1)]
    return torch.cat(parts, dim=1)


def pod_distance(student: Tensor, teacher: Tensor, distance: Literal["frobenius", "l1", "l2"] = "frobenius") -> Tensor:
    """Per-image distance between embeddings ``[B,D]`` → ``[B]`` (see the module docstring)."""
    diff = student - teacher
    if distance == "frobenius":
        return diff.norm(dim=1)
    if distance == "l1":
        return diff.abs().mean(dim=1)
    if distance == "l2":
        return diff.pow(2).mean(dim=1)
    raise ValueError(f"distance must be 'frobenius', 'l1' or 'l2', got {distance!r}")


def pod_loss(student: Sequence[Tensor], teacher: Sequence[Tensor], mode: Literal["local", "global"] = "local",
             distance: Literal["frobenius", "l1", "l2"] = "frobenius") -> Tensor:
    """POD between lists of stage features ``[B,C_l,H_l,W_l]``: batch-mean distance, mean over layers."""
    if len(student) != len(teacher) or not student:
        raise ValueError(f"expected equally many (≥ 1) student and teacher maps, "
                         f"got {len(student)} and {len(teacher)}")
    if mode not in ("local", "global"):
        raise ValueError(f"mode must be 'local' or 'global', got {mode!r}")
    scales = LOCAL_SCALES if mode == "local" else (1,)
    layers = [pod_distance(pod_embedding(s, scales), pod_embedding(t, scales), distance).mean()
              for s, t in zip(student, teacher)]
    return torch.stack(layers).mean()
