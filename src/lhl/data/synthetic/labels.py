"""Labels of the synthetic renderer, computed from the ray-cast :class:`Geometry` buffers.

Each label is computed by its entry in :data:`LABEL_FUNCTIONS` (task name -> function of a
:class:`Geometry`), which :func:`lhl.data.synthetic.render` looks up at call time and only for the
requested tasks. Conventions (camera frame: OpenCV, x right, y down, z forward):

* ``segmentation``: class of the hit surface / shape category (:data:`CLASS_NAMES`), int64.
* ``depth``: z-buffer depth (m); ``depth_euclidean``: ray length from the camera centre (m), so
  ``depth_euclidean >= depth`` with equality on the optical axis. Never 0 (closed room).
* ``normal``: unit surface normal in the camera frame, flipped to face the camera.
* ``reshading``: ``0.1 + 0.9 * max(0, n . l)`` for a unit-albedo scene under the fixed
  camera-frame light ``l ~ (-0.35, -0.6, -0.72)`` (up-left, behind the camera), no shadows.
* ``edge_occlusion``: 1 at pixels whose 4-neighbour lies on another surface, one of the two
  being an object, and whose ray length differs by more than 4 % (object silhouettes; the room's
  creases and contact points are not occlusions), else 0.
* ``edge_texture``: Sobel magnitude of the grey noise-free image (replicate padding) / 4,
  clipped to [0, 1] (a fixed scale, not per-image normalisation, so values compare across images).
* ``keypoints2d``: Harris response (k = 0.05, 3x3 binomial window, Sobel / 8 gradients) of the
  grey noise-free image, ``min(1, 40 sqrt(max(R, 0)))``.
* ``keypoints3d``: 3-D corner saliency from the hit point in the local frame of its surface:
  ``max(b(d_vertex), 0.5 b(d_edge))`` with ``b(d) = max(0, 1 - d^2/0.15^2)^2`` for box vertices /
  edges (cubes, slabs and the room's own corners and creases) and ``0.5 b(d_rim)`` for cylinder
  rims; spheres have none. In [0, 1].
* ``principal_curvature``: analytic ``(k1, k2)`` in 1/m: sphere ``(1/r, 1/r)``, cylinder and
  pillar sides ``(1/r, 0)``, caps and planes ``(0, 0)``.

All filters are written with slicing and elementwise arithmetic (no convolution kernels), so a
sample's labels are bit-identical whatever batch it is rendered in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from lhl.data.synthetic.scene import NUM_CLASSES

V3 = tuple[Tensor, Tensor, Tensor]

SYNTHETIC_TASKS: tuple[str, ...] = ("segmentation", "depth", "normal", "edge_occlusion",
                                    "reshading", "keypoints2d", "edge_texture", "depth_euclidean",
                                    "principal_curvature", "keypoints3d")
LABEL_CHANNELS: dict[str, int] = {t: 1 for t in SYNTHETIC_TASKS}
LABEL_CHANNELS.update(segmentation=NUM_CLASSES, normal=3, principal_curvature=2)


@dataclass
class Geometry:
    """Ray-cast buffers of a chunk of N images (all ``[N, H, W]`` unless noted).

    ``depth``: z-buffer depth; ``ray_len``: length of the ``z = 1`` camera ray (depth_euclidean
    = depth * ray_len); ``surface``: int64 surface id (0-5 room planes, 6 + k object k);
    ``cls``: int64 class; ``kind``: int64 surface kind (0 room plane, 1 sphere, 2 box,
    3 vertical cylinder); ``point``/``local``: hit point in world /
    surface-local frame; ``normal_world``/``normal_cam``: unit normals facing the camera;
    ``half``: half extents of the hit surface; ``image_clean``: ``[N, 3, H, W]`` noise-free image.
    """

    depth: Tensor
    ray_len: Tensor
    surface: Tensor
    cls: Tensor
    kind: Tensor
    point: V3
    local: V3
    normal_world: V3
    normal_cam: V3
    half: V3
    image_clean: Tensor | None = None



def _grey(img: Tensor) -> Tensor:
    return 0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]


def _pad(x: Tensor) -> Tensor:
    return torch.nn.functional.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]


def _sobel(x: Tensor) -> tuple[Tensor, Tensor]:
    p = _pad(x)
    sm_v = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]  # vertical smoothing, [N, H, W+2]
    sm_h = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]  # horizontal smoothing, [N, H+2, W]
    return sm_v[:, :, 2:] - sm_v[:, :, :-2], sm_h[:, 2:] - sm_h[:, :-2]


def _binomial3(x: Tensor) -> Tensor:
    p = _pad(x)
    p = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]
    return (p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]) * (1.0 / 16.0)


def _bump(d2: Tensor, sigma: float = 0.15) -> Tensor:
    return (1.0 - d2 * (1.0 / sigma**2)).clamp_min(0) ** 2


def label_segmentation(geo: Geometry) -> Tensor:
    """int64 ``[N, H, W]`` class ids."""
    return geo.cls.clone()


def label_depth(geo: Geometry) -> Tensor:
    """``[N, 1, H, W]`` z-buffer depth (m)."""
    return geo.depth[:, None].clone()


def label_depth_euclidean(geo: Geometry) -> Tensor:
    """``[N, 1, H, W]`` distance from the camera centre (m)."""
    return (geo.depth * geo.ray_len)[:, None]


def label_normal(geo: Geometry) -> Tensor:
    """``[N, 3, H, W]`` unit normals, camera frame, facing the camera."""
    return torch.stack(geo.normal_cam, 1)


_CANONICAL_LIGHT = (-0.35, -0.6, -0.72)


def label_reshading(geo: Geometry) -> Tensor:
    """``[N, 1, H, W]`` unit-albedo shading under the canonical camera-frame light, in [0, 1]."""
    ln = math.sqrt(sum(c * c for c in _CANONICAL_LIGHT))
    lam = sum(nc * (c / ln) for nc, c in zip(geo.normal_cam, _CANONICAL_LIGHT))
    return (0.1 + 0.9 * lam.clamp_min(0))[:, None]


def label_edge_occlusion(geo: Geometry, threshold: float = 0.04) -> Tensor:
    """``[N, 1, H, W]`` {0, 1} silhouette (depth-discontinuity) boundaries."""
    dist, s = geo.depth * geo.ray_len, geo.surface
    edge = torch.zeros_like(dist, dtype=torch.bool)
    for sl_a, sl_b in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                       ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
        a, b = (slice(None), *sl_a), (slice(None), *sl_b)
        jump = (dist[a] - dist[b]).abs() > threshold * torch.minimum(dist[a], dist[b])
        e = jump & (s[a] != s[b]) & ((s[a] >= 6) | (s[b] >= 6))  # room planes never occlude
        edge[a] |= e
        edge[b] |= e
    return edge[:, None].float()


def label_edge_texture(geo: Geometry) -> Tensor:
    """``[N, 1, H, W]`` Sobel magnitude of the noise-free grey image / 4, in [0, 1]."""
    gx, gy = _sobel(_grey(geo.image_clean))
    return (torch.sqrt(gx * gx + gy * gy) * 0.25).clamp(0, 1)[:, None]


def label_keypoints2d(geo: Geometry) -> Tensor:
    """``[N, 1, H, W]`` Harris corner response of the noise-free grey image, in [0, 1]."""
    gx, gy = _sobel(_grey(geo.image_clean))
    gx, gy = gx * 0.125, gy * 0.125
    sxx, syy, sxy = _binomial3(gx * gx), _binomial3(gy * gy), _binomial3(gx * gy)
    tr = sxx + syy
    resp = sxx * syy - sxy * sxy - 0.05 * tr * tr
    return (torch.sqrt(resp.clamp_min(0)) * 40.0).clamp(0, 1)[:, None]


def label_keypoints3d(geo: Geometry) -> Tensor:
    """``[N, 1, H, W]`` 3-D corner saliency in [0, 1] (box vertices 1, edges / rims 0.5)."""
    e2 = [((h - lc.abs()).clamp_min(0)) ** 2 for h, lc in zip(geo.half, geo.local)]
    vert = e2[0] + e2[1] + e2[2]
    edge = vert - torch.maximum(torch.maximum(e2[0], e2[1]), e2[2])
    box = torch.maximum(_bump(vert), 0.5 * _bump(edge))
    rho = torch.sqrt(geo.local[0] ** 2 + geo.local[2] ** 2)
    rim = 0.5 * _bump((geo.half[0] - rho) ** 2 + e2[1])
    out = torch.where((geo.kind == 0) | (geo.kind == 2), box, torch.where(geo.kind == 3, rim, 0.0))
    return out[:, None]


def label_principal_curvature(geo: Geometry) -> Tensor:
    """``[N, 2, H, W]`` analytic principal curvatures (k1, k2) in 1/m."""
    inv_r = 1.0 / geo.half[0]
    side = (geo.kind == 3) & (geo.normal_world[1].abs() < 0.5)
    k1 = torch.where((geo.kind == 1) | side, inv_r, 0.0)
    k2 = torch.where(geo.kind == 1, inv_r, 0.0)
    return torch.stack([k1, k2], 1)


# Task name -> label function; looked up at call time by ``render`` (tests monkeypatch entries).
LABEL_FUNCTIONS: dict[str, Callable[[Geometry], Tensor]] = {
    "segmentation": label_segmentation, "depth": label_depth, "normal": label_normal,
    "edge_occlusion": label_edge_occlusion, "reshading": label_reshading,
    "keypoints2d": label_keypoints2d, "edge_texture": label_edge_texture,
    "depth_euclidean": label_depth_euclidean, "principal_curvature": label_principal_curvature,
    "keypoints3d": label_keypoints3d,
}
