"""Vectorised ray caster for the procedural indoor scenes (SPEC §6 "Synthetic").

Conventions
-----------
* Camera frame (all camera-frame outputs): OpenCV, ``x`` right, ``y`` down, ``z`` forward.
  Pixel ``(i, j)`` looks through ``((j + 0.5 - W/2) / f, (i + 0.5 - H/2) / f, 1)`` with
  ``f = (W/2) / tan(fov_x/2)`` (square pixels, principal point at the image centre).
* ``depth`` is z-buffer depth (camera ``z`` of the hit point, metres); ``depth_euclidean`` is the
  ray length from the camera centre, so ``depth_euclidean >= depth`` with equality on the axis.
  The camera is always inside a closed box room, so every ray hits something and depth > 0.
* ``normal`` is the unit surface normal in the camera frame, flipped to face the camera.
* ``segmentation`` holds one class per surface / shape category (:data:`CLASS_NAMES`).
* ``reshading``: ``0.1 + 0.9 * max(0, n . l)`` for a unit-albedo scene under the fixed
  camera-frame light ``l ~ (-0.35, -0.6, -0.72)`` (up-left, behind the camera), no shadows.
* ``edge_occlusion``: 1 at pixels whose 4-neighbour lies on another surface and whose ray length
  differs by more than 4 % (silhouettes; creases and contacts are not occlusions), else 0.
* ``edge_texture``: Sobel magnitude of the grey noise-free image (replicate padding) / 4,
  clipped to [0, 1] (a fixed scale, not per-image normalisation, so values compare across images).
* ``keypoints2d``: Harris response (k = 0.05, 3x3 binomial window) of the grey noise-free image,
  ``min(1, sqrt(max(R, 0)) * 12)``.
* ``keypoints3d``: 3-D corner saliency from the hit point in the local frame of its surface:
  ``max(b(d_vertex), 0.5 b(d_edge))`` with ``b(d) = max(0, 1 - d^2/0.15^2)^2`` for box vertices /
  edges (cubes, slabs and the room's own corners and creases) and ``0.5 b(d_rim)`` for cylinder
  rims; spheres have none.
* ``principal_curvature``: analytic ``(k1, k2)`` in 1/m: sphere ``(1/r, 1/r)``, cylinder and
  pillar sides ``(1/r, 0)``, caps and planes ``(0, 0)``.
* ``image``: albedo * (ambient + intensity * max(0, n . light) * unshadowed), shadows from one
  shadow ray per pixel tested against the objects, plus Gaussian sensor noise (image only).

Determinism: every per-pixel computation is elementwise (+, *, /, sqrt, floor, comparisons,
gathers, max-reductions) with no matrix products or transcendental functions, so a sample's
pixels are bit-identical whatever batch it is rendered in. Intersections are batched over all
images of a chunk: objects are grouped by shape and padded with inactive slots.

Label isolation: the shared geometry (:class:`Geometry`: hit distance, surface id, class, hit
point, normals, local hit point) and the image are always computed; each label is computed by
its entry in :data:`LABEL_FUNCTIONS`, looked up at call time, only when requested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from lhl.data.synthetic.scene import (CLASS_NAMES, NUM_CLASSES, SHAPE_KINDS, SPLIT_CODES,
                                      TEXTURE_KINDS, Scene, sample_scene)

SYNTHETIC_TASKS: tuple[str, ...] = ("segmentation", "depth", "normal", "edge_occlusion", "reshading",
                                    "keypoints2d", "edge_texture", "depth_euclidean",
                                    "principal_curvature", "keypoints3d")
LABEL_CHANNELS: dict[str, int] = {t: 1 for t in SYNTHETIC_TASKS}
LABEL_CHANNELS.update(segmentation=NUM_CLASSES, normal=3, principal_curvature=2)

# Surface kinds: 0 room plane (seen from inside), 1 sphere, 2 box, 3 vertical cylinder.
_KIND_CODE = {"sphere": 1, "cube": 2, "slab": 2, "cylinder": 3, "pillar": 3}
_ROOM_CLASSES = (0, 2, 1, 1, 1, 1)  # floor, ceiling, wall x-, x+, z-, z+
_MAX_RAYS_PER_CHUNK = 1 << 18
_EPS = 1e-4
_INF = float("inf")

V3 = tuple[Tensor, Tensor, Tensor]


@dataclass
class Geometry:
    """Ray-cast buffers of a chunk of N images (all ``[N, H, W]`` unless noted).

    ``depth``: z-buffer depth; ``ray_len``: length of the ``z = 1`` camera ray (depth_euclidean
    = depth * ray_len); ``surface``: int64 surface id (0-5 room planes, 6 + k object k);
    ``cls``: int64 class; ``kind``: int64 surface kind; ``point``/``local``: hit point in world /
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


# --------------------------------------------------------------------------------- packing

def _pack(scenes: Sequence[Scene], resolution: tuple[int, int]) -> dict[str, Tensor]:
    """Per-image parameters as float32/int64 tensors; surfaces padded to ``6 + K``."""
    n, k = len(scenes), max(1, max(len(s.objects) for s in scenes))
    s_count = 6 + k
    # Per-surface float columns: 0-2 centre, 3-5 half extents, 6 cos(yaw), 7 sin(yaw),
    # 8-10 colour a, 11-13 colour b, 14 texture scale, 15-17 offset, 18-20 direction, 21 1/half_x.
    f = np.zeros((n, s_count, 22), np.float64)
    i = np.zeros((n, s_count, 4), np.int64)  # kind (-1 inactive), class, texture kind, tex seed
    i[:, :, 0] = -1
    cam = np.zeros((n, 13), np.float64)  # position 3, R 9 (row-major, columns = cam axes), f
    light = np.zeros((n, 5), np.float64)
    width = resolution[1]
    for b, sc in enumerate(scenes):
        w, h, d = sc.room_size
        surfaces = [("room", c, (0.0, h / 2, 0.0), (w / 2, h / 2, d / 2), 0.0, t)
                    for c, t in zip(_ROOM_CLASSES, sc.room_textures)]
        surfaces += [(o.kind, 3 + SHAPE_KINDS.index(o.kind), o.center, o.half, o.yaw, o.texture)
                     for o in sc.objects]
        for s, (kind, c, center, half, yaw, tex) in enumerate(surfaces):
            i[b, s] = (_KIND_CODE.get(kind, 0), c, TEXTURE_KINDS.index(tex.kind), tex.seed)
            f[b, s] = (*center, *half, math.cos(yaw), math.sin(yaw), *tex.color_a, *tex.color_b,
                       tex.scale, *tex.offset, *tex.direction, 1.0 / half[0])
        cm = sc.camera
        fwd = np.array([math.cos(cm.pitch) * math.sin(cm.yaw), -math.sin(cm.pitch),
                        math.cos(cm.pitch) * math.cos(cm.yaw)])
        right = np.cross([0.0, -1.0, 0.0], fwd)
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        rot = np.stack([right, down, fwd], axis=1)
        focal = (width / 2) / math.tan(math.radians(cm.fov_x) / 2)
        cam[b] = (*cm.position, *rot.reshape(-1), focal)
        ld = np.asarray(sc.light.direction, np.float64)
        light[b] = (*(ld / np.linalg.norm(ld)), sc.light.intensity, sc.light.ambient)
    t = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return {"f": t(f), "i": torch.from_numpy(i), "cam": t(cam), "light": t(light)}


# ---------------------------------------------------------------------------- intersections

def _to_local(p: V3, center: V3, cos: Tensor, sin: Tensor) -> V3:
    x, y, z = p[0] - center[0], p[1] - center[1], p[2] - center[2]
    return cos * x - sin * z, y, sin * x + cos * z


def _dir_local(d: V3, cos: Tensor, sin: Tensor) -> V3:
    return cos * d[0] - sin * d[2], d[1], sin * d[0] + cos * d[2]


def _hit_sphere(o: V3, d: V3, c: V3, r: Tensor) -> Tensor:
    ox, oy, oz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    b = ox * d[0] + oy * d[1] + oz * d[2]
    disc = b * b - a * (ox * ox + oy * oy + oz * oz - r * r)
    t = (-b - torch.sqrt(disc.clamp_min(0))) / a
    return torch.where((disc > 0) & (t > _EPS), t, _INF)


def _hit_box(o: V3, d: V3, c: V3, h: V3, cos: Tensor, sin: Tensor) -> Tensor:
    ol, dl = _to_local(o, c, cos, sin), _dir_local(d, cos, sin)
    near, far = None, None
    for a in range(3):
        inv = 1.0 / dl[a]
        t1, t2 = (-h[a] - ol[a]) * inv, (h[a] - ol[a]) * inv
        lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
        near = lo if near is None else torch.maximum(near, lo)
        far = hi if far is None else torch.minimum(far, hi)
    return torch.where((near <= far) & (near > _EPS), near, _INF)


def _hit_cylinder(o: V3, d: V3, c: V3, r: Tensor, hh: Tensor) -> Tensor:
    ox, oy, oz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
    a = d[0] * d[0] + d[2] * d[2]
    b = ox * d[0] + oz * d[2]
    disc = b * b - a * (ox * ox + oz * oz - r * r)
    ts = (-b - torch.sqrt(disc.clamp_min(0))) / a
    ys = oy + ts * d[1]
    side = torch.where((disc > 0) & (ts > _EPS) & (ys.abs() <= hh), ts, _INF)
    tc = (torch.where(oy > 0, hh, -hh) - oy) / d[1]  # the cap facing the origin
    xc, zc = ox + tc * d[0], oz + tc * d[2]
    cap = torch.where((oy.abs() > hh) & (tc > _EPS) & (xc * xc + zc * zc <= r * r), tc, _INF)
    return torch.minimum(side, cap)


def _take(x: Tensor, img: Tensor, pix: Tensor) -> Tensor:
    """Values of ``x`` (``[N, 1, 1]`` per image or ``[N, H, W]`` per ray) at candidate rays."""
    return x.reshape(-1)[img] if x.shape[1] == x.shape[2] == 1 else x.reshape(-1)[pix]


def _cast_objects(o: V3, d: V3, pk: dict[str, Tensor], shape: tuple[int, int, int],
                  mask: Tensor | None = None, any_hit: bool = False):
    """Nearest object hit per ray: ``(t, surface id)`` ``[N, H, W]`` (inf / -1 where none), or
    with ``any_hit`` a bool "blocked" mask. ``None`` when the batch has no objects.

    ``o``/``d`` components are ``[N, 1, 1]`` (per image) or ``[N, H, W]`` (per ray). Each ray is
    first tested against every object's bounding sphere (dense, cheap); the exact sphere / box /
    cylinder intersections run only on the (ray, object) candidate pairs that pass."""
    n, hgt, wid = shape
    f, kinds = pk["f"][:, 6:], pk["i"][:, 6:, 0]
    active = kinds > 0
    if not bool(active.any()):
        return None
    ex = lambda x: x[..., None]  # noqa: E731
    obj = lambda col: f[:, :, col].view(n, 1, 1, -1)  # noqa: E731
    oc = [ex(o[a]) - obj(a) for a in range(3)]
    dd = [ex(x) for x in d]
    b = oc[0] * dd[0] + oc[1] * dd[1] + oc[2] * dd[2]
    rad2 = (f[:, :, 3] ** 2 + f[:, :, 4] ** 2 + f[:, :, 5] ** 2) * 1.001 + 1e-4
    c = oc[0] * oc[0] + oc[1] * oc[1] + oc[2] * oc[2] - rad2.view(n, 1, 1, -1)
    a = dd[0] * dd[0] + dd[1] * dd[1] + dd[2] * dd[2]
    cand = (b * b > a * c) & ((b < 0) | (c < 0)) & active.view(n, 1, 1, -1)
    if mask is not None:
        cand &= mask[..., None]
    img, row, col, k = cand.nonzero(as_tuple=True)
    pix = (img * hgt + row) * wid + col
    oo = tuple(_take(x, img, pix) for x in o)
    do = tuple(_take(x, img, pix) for x in d)
    p = f[img, k]  # [M, 22]
    kind = kinds[img, k]
    cen, half = (p[:, 0], p[:, 1], p[:, 2]), (p[:, 3], p[:, 4], p[:, 5])
    t = torch.where(kind == 1, _hit_sphere(oo, do, cen, half[0]),
                    torch.where(kind == 2, _hit_box(oo, do, cen, half, p[:, 6], p[:, 7]),
                                _hit_cylinder(oo, do, cen, half[0], half[1])))
    hit = torch.isfinite(t)
    if any_hit:
        blocked = torch.zeros(n * hgt * wid, dtype=torch.bool)
        blocked[pix[hit]] = True
        return blocked.view(n, hgt, wid)
    t_min = torch.full((n * hgt * wid,), _INF).scatter_reduce(0, pix, t, "amin")
    win = hit & (t == t_min[pix])  # ties resolved to the lowest surface id
    surf = torch.full((n * hgt * wid,), 1 << 30, dtype=torch.int64)
    surf = surf.scatter_reduce(0, pix[win], k[win] + 6, "amin")
    return t_min.view(n, hgt, wid), surf.view(n, hgt, wid)


def _geometry(pk: dict[str, Tensor], n: int, height: int, width: int) -> Geometry:
    cam = pk["cam"]
    per = lambda x: x.view(n, 1, 1)  # noqa: E731
    focal = per(cam[:, 12])
    u = (torch.arange(width, dtype=torch.float32) + 0.5 - width / 2).view(1, 1, width) / focal
    v = (torch.arange(height, dtype=torch.float32) + 0.5 - height / 2).view(1, height, 1) / focal
    rot = [per(cam[:, 3 + j]) for j in range(9)]  # R[a, b] = rot[3a + b]; columns = cam axes
    d = tuple(rot[3 * a] * u + rot[3 * a + 1] * v + rot[3 * a + 2] for a in range(3))
    o = tuple(per(cam[:, a]) for a in range(3))
    # Room: the camera is inside the box, so the exit distance along each axis is the hit.
    f0 = pk["f"][:, 0]
    t_room = surf = None
    for a in range(3):
        lo, hi = per(f0[:, a] - f0[:, 3 + a]), per(f0[:, a] + f0[:, 3 + a])
        t = torch.where(d[a] > 0, (hi - o[a]) / d[a], (lo - o[a]) / d[a])
        t = torch.where(d[a] == 0, _INF, t)
        code = torch.where(d[a] > 0, 1, 0) + (2, 0, 4)[a]  # surface order: y-, y+, x-, x+, z-, z+
        code = code.expand_as(t)
        if t_room is None:
            t_room, surf = t, code
        else:
            closer = t < t_room
            t_room, surf = torch.where(closer, t, t_room), torch.where(closer, code, surf)
    surf = surf.long()
    cast = _cast_objects(o, d, pk, (n, height, width))
    if cast is not None:
        t_obj, s_obj = cast
        closer = t_obj < t_room
        depth, surf = torch.where(closer, t_obj, t_room), torch.where(closer, s_obj, surf)
    else:
        depth = t_room
    # Gather the hit surface's parameters per pixel.
    flat = surf.view(n, -1)
    g = lambda col: pk["f"][:, :, col].gather(1, flat).view(n, height, width)  # noqa: E731
    ints = lambda col: pk["i"][:, :, col].gather(1, flat).view(n, height, width)  # noqa: E731
    kind, cls = ints(0), ints(1)
    point = tuple(o[a] + depth * d[a] for a in range(3))
    center, half, cos, sin = (g(0), g(1), g(2)), (g(3), g(4), g(5)), g(6), g(7)
    lx, ly, lz = _to_local(point, center, cos, sin)
    # Local normals: boxes / room by the dominant relative coordinate, spheres radial,
    # cylinders radial on the side and axial on the caps.
    ax, ay, az = lx.abs() / half[0], ly.abs() / half[1], lz.abs() / half[2]
    bx = (ax >= ay) & (ax >= az)
    by = ~bx & (ay >= az)
    bz = ~bx & ~by
    sx, sy, sz = torch.sign(lx), torch.sign(ly), torch.sign(lz)
    rho = torch.sqrt(lx * lx + lz * lz).clamp_min(1e-12)
    cap = ay >= rho / half[0]
    inv_r = g(21)
    is_sph, is_box, is_cyl = kind == 1, kind == 2, kind == 3
    nx = torch.where(is_sph, lx * inv_r, torch.where(is_cyl, torch.where(cap, 0.0, lx / rho), bx * sx))
    ny = torch.where(is_sph, ly * inv_r, torch.where(is_cyl, torch.where(cap, sy, 0.0), by * sy))
    nz = torch.where(is_sph, lz * inv_r, torch.where(is_cyl, torch.where(cap, 0.0, lz / rho), bz * sz))
    nx, ny, nz = cos * nx + sin * nz, ny, cos * nz - sin * nx  # local -> world
    nrm = torch.sqrt(nx * nx + ny * ny + nz * nz)
    flip = torch.where(nx * d[0] + ny * d[1] + nz * d[2] > 0, -1.0, 1.0) / nrm  # face the camera
    nw = (nx * flip, ny * flip, nz * flip)
    nc = tuple(rot[a] * nw[0] + rot[3 + a] * nw[1] + rot[6 + a] * nw[2] for a in range(3))
    del is_box
    ray_len = torch.sqrt(u * u + v * v + 1.0).expand(n, height, width)
    return Geometry(depth, ray_len, surf, cls, kind, point, (lx, ly, lz), nw, nc, half)


# ------------------------------------------------------------------------------------ image

def _hash(ix: Tensor, iy: Tensor, iz: Tensor, seed: Tensor) -> Tensor:
    m = 0x7FFFFFFF
    h = (ix * 374761393 + iy * 668265263 + iz * 1440662683 + seed * 1274126177) & m
    h = ((h ^ (h >> 13)) * 1103515245) & m
    h = h ^ (h >> 16)
    return (h & 0xFFFF).float() * (1.0 / 65535.0)


def _value_noise(q: V3, seed: Tensor) -> Tensor:
    base = [torch.floor(x) for x in q]
    frac = [x - b for x, b in zip(q, base)]
    w = [fr * fr * (3.0 - 2.0 * fr) for fr in frac]
    ib = [b.long() for b in base]
    out = 0.0
    for cx in (0, 1):
        for cy in (0, 1):
            for cz in (0, 1):
                wt = (w[0] if cx else 1 - w[0]) * (w[1] if cy else 1 - w[1]) * (w[2] if cz else 1 - w[2])
                out = out + wt * _hash(ib[0] + cx, ib[1] + cy, ib[2] + cz, seed)
    return out


def _albedo(geo: Geometry, pk: dict[str, Tensor]) -> Tensor:
    n, hgt, wid = geo.depth.shape
    flat = geo.surface.view(n, -1)
    g = lambda col: pk["f"][:, :, col].gather(1, flat).view(n, hgt, wid)  # noqa: E731
    tkind = pk["i"][:, :, 2].gather(1, flat).view(n, hgt, wid)
    inv_scale = 1.0 / g(14)
    q = tuple((geo.local[a] + g(15 + a)) * inv_scale for a in range(3))
    fl = [torch.floor(x) for x in q]
    checker = torch.remainder(fl[0] + fl[1] + fl[2], 2.0)
    stripes = torch.remainder(torch.floor(q[0] * g(18) + q[1] * g(19) + q[2] * g(20)), 2.0)
    w = torch.where(tkind == 1, checker, torch.where(tkind == 2, stripes, 0.0))
    noisy = tkind == 3
    if bool(noisy.any()):
        seed = pk["i"][:, :, 3].gather(1, flat).view(n, hgt, wid)[noisy]
        qs = tuple(x[noisy] for x in q)
        val = 0.65 * _value_noise(qs, seed) + 0.35 * _value_noise(tuple(2.0 * x for x in qs), seed + 7)
        w = w.masked_scatter(noisy, ((val - 0.5) * 2.2 + 0.5).clamp(0, 1))
    cols = [g(8 + c) + w * (g(11 + c) - g(8 + c)) for c in range(3)]
    return torch.stack(cols, 1)


def _shade(geo: Geometry, pk: dict[str, Tensor]) -> Tensor:
    n = geo.depth.shape[0]
    lt = pk["light"]
    ld = tuple(lt[:, a].view(n, 1, 1) for a in range(3))
    lam = (geo.normal_world[0] * ld[0] + geo.normal_world[1] * ld[1]
           + geo.normal_world[2] * ld[2]).clamp_min(0)
    origin = tuple(geo.point[a] + 2e-3 * geo.normal_world[a] for a in range(3))
    blocked = _cast_objects(origin, ld, pk, tuple(geo.depth.shape), lam > 0, any_hit=True)
    if blocked is not None:
        lam = torch.where(blocked, 0.0, lam)
    return lt[:, 4].view(n, 1, 1) + lt[:, 3].view(n, 1, 1) * lam


# ----------------------------------------------------------------------------------- labels

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
        e = jump & (s[a] != s[b])
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
    return (torch.sqrt(resp.clamp_min(0)) * 12.0).clamp(0, 1)[:, None]


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


LABEL_FUNCTIONS: dict[str, Callable[[Geometry], Tensor]] = {
    "segmentation": label_segmentation, "depth": label_depth, "normal": label_normal,
    "edge_occlusion": label_edge_occlusion, "reshading": label_reshading,
    "keypoints2d": label_keypoints2d, "edge_texture": label_edge_texture,
    "depth_euclidean": label_depth_euclidean, "principal_curvature": label_principal_curvature,
    "keypoints3d": label_keypoints3d,
}


# ----------------------------------------------------------------------------------- render

def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tasks, str):
        tasks = (tasks,)
    for task in tasks:
        if task not in SYNTHETIC_TASKS:
            raise ValueError(f"unknown synthetic task {task!r}; valid tasks: {', '.join(SYNTHETIC_TASKS)}")
    return tuple(dict.fromkeys(tasks))


def _check_resolution(resolution: Sequence[int]) -> tuple[int, int]:
    if len(resolution) != 2 or any(int(r) != r or r < 2 for r in resolution):
        raise ValueError(f"resolution must be (height, width) with both >= 2, got {resolution!r}")
    return int(resolution[0]), int(resolution[1])


def render_scenes(scenes: Sequence[Scene], resolution: tuple[int, int] = (64, 64),
                  tasks: Sequence[str] = ()) -> dict[str, Tensor]:
    """Render explicit :class:`Scene` descriptions (same outputs as :func:`render`).

    Returns ``"image"`` float32 ``[N, 3, H, W]`` in [0, 1] and one entry per requested task
    (``segmentation`` int64 ``[N, H, W]``, others float32 ``[N, LABEL_CHANNELS[task], H, W]``).
    """
    tasks = _check_tasks(tasks)
    height, width = _check_resolution(resolution)
    per_chunk = max(1, _MAX_RAYS_PER_CHUNK // (height * width))
    parts: dict[str, list[Tensor]] = {"image": [], **{t: [] for t in tasks}}
    for start in range(0, len(scenes), per_chunk):
        chunk = scenes[start:start + per_chunk]
        n = len(chunk)
        pk = _pack(chunk, (height, width))
        geo = _geometry(pk, n, height, width)
        clean = (_albedo(geo, pk) * _shade(geo, pk)[:, None]).clamp(0, 1)
        geo.image_clean = clean
        noise = np.stack([np.random.default_rng(s.noise_seed).standard_normal((3, height, width),
                                                                           dtype=np.float32)
                          * np.float32(s.noise_std) for s in chunk])
        parts["image"].append((clean + torch.from_numpy(noise)).clamp(0, 1))
        for task in tasks:
            parts[task].append(LABEL_FUNCTIONS[task](geo))
    if not scenes:
        empty = {"image": torch.zeros(0, 3, height, width)}
        for t in tasks:
            empty[t] = (torch.zeros(0, height, width, dtype=torch.int64) if t == "segmentation"
                        else torch.zeros(0, LABEL_CHANNELS[t], height, width))
        return empty
    return {k: torch.cat(v) if len(v) > 1 else v[0] for k, v in parts.items()}


def render(seed: int, split: str, indices: Sequence[int], resolution: tuple[int, int] = (64, 64),
           tasks: Sequence[str] = ()) -> dict[str, Tensor]:
    """Render samples ``indices`` of ``split`` ("train" | "test") for ``seed``.

    Sample ``i`` is a pure function of ``(seed, split, i)`` (and the resolution). Returns
    ``"image"`` float32 ``[N, 3, H, W]`` in [0, 1] with mild sensor noise, plus one entry per
    requested task: ``"segmentation"`` int64 ``[N, H, W]`` in ``0..NUM_CLASSES-1``, every other
    task float32 ``[N, LABEL_CHANNELS[task], H, W]``. Only the requested labels are computed.
    """
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLIT_CODES)}")
    tasks = _check_tasks(tasks)
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    idx = [int(i) for i in indices]
    if any(i < 0 for i in idx):
        raise ValueError(f"indices must be non-negative, got {min(idx)}")
    return render_scenes([sample_scene(int(seed), split, i) for i in idx], resolution, tasks)


__all__ = ["CLASS_NAMES", "Geometry", "LABEL_CHANNELS", "LABEL_FUNCTIONS", "NUM_CLASSES",
           "SYNTHETIC_TASKS", "render", "render_scenes"]
