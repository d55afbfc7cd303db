"""Vectorised ray caster for the procedural indoor scenes (docs/design.md; the synthetic benchmarks in the README).

Conventions
-----------
* Camera frame (all camera-frame outputs): OpenCV, ``x`` right, ``y`` down, ``z`` forward.
  Pixel ``(i, j)`` looks along ``((j + 0.5 - W/2) / f, (i + 0.5 - H/2) / f, 1)`` with
  ``f = (W/2) / tan(fov_x/2)`` (square pixels, principal point at the image centre). World frame
  and scene parametrisation: see :mod:`lhl.data.synthetic.scene`; labels: see
  :mod:`lhl.data.synthetic.labels`.
* Rays are cast with ``z = 1`` camera directions, so the ray parameter of a hit *is* its
  z-buffer depth. The camera is inside a closed box room: every ray hits a room plane (exit
  distance of the box), unless an object is nearer.
* ``image``: ``albedo * (ambient + intensity * max(0, n . light) * unshadowed)`` with one shadow
  ray per pixel towards the directional light, tested against the objects; solid procedural
  textures (plain / checker / stripes / value noise, :class:`~lhl.data.synthetic.scene.Texture`);
  plus Gaussian sensor noise (image only; labels use the geometry or the noise-free image).

Performance: images are rendered in chunks of ~2**17 rays. Objects are culled per (ray, object)
pair before the exact analytic intersections, which run only on surviving pairs: primary rays
by the screen rectangle of each object's projected bounding box, shadow rays by the bounding
box projected along the light. Culling is conservative, so it never changes a result.

Determinism: every per-pixel computation is elementwise (+, *, /, sqrt, floor, comparisons,
gathers, min/max reductions) without matrix products, transcendental functions or convolution
kernels, so a sample's pixels are bit-identical whatever batch it is rendered in; the scene and
the sensor noise come from per-sample numpy generators.

Label isolation: the shared geometry (:class:`~lhl.data.synthetic.labels.Geometry`: hit
distance, surface id, class, hit point, normals, local hit point) and the image are always
computed; each label is computed by its entry in ``LABEL_FUNCTIONS``, looked up at call time,
only when requested.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from lhl.data.synthetic.labels import (LABEL_CHANNELS, LABEL_FUNCTIONS, SYNTHETIC_TASKS, V3,
                                       Geometry)
from lhl.data.synthetic.scene import (CLASS_NAMES, SHAPE_KINDS, SPLIT_CODES, TEXTURE_KINDS, Scene,
                                      sample_scene)

_KIND_CODE = {"sphere": 1, "cube": 2, "slab": 2, "cylinder": 3, "pillar": 3}
_ROOM_CLASSES = (0, 2, 1, 1, 1, 1)  # floor, ceiling, wall x-, x+, z-, z+
_MAX_RAYS_PER_CHUNK = 1 << 17
_EPS = 1e-4
_INF = float("inf")


# --------------------------------------------------------------------------------- packing

def _pack(scenes: Sequence[Scene], resolution: tuple[int, int]) -> dict[str, Tensor]:
    """Per-image parameters as float32 / int64 tensors; surfaces padded to ``6 + K``.

    ``f`` ``[N, S, 21]`` per-surface floats: 0-2 centre, 3-5 half extents, 6 cos(yaw),
    7 sin(yaw), 8-10 colour a, 11-13 colour b, 14 texture scale, 15-17 offset, 18-20 direction;
    ``i`` ``[N, S, 4]``: kind (-1 inactive), class, texture kind, texture seed;
    ``cam`` ``[N, 13]``: position, R (row-major; columns = camera axes in world), focal (px);
    ``light`` ``[N, 5]``: unit direction, intensity, ambient; culling bounds (see
    :func:`_culling_bounds`)."""
    n, k = len(scenes), max(1, max(len(s.objects) for s in scenes))
    pad_f, pad_i = (0.0,) * 21, (-1, 0, 0, 0)
    fl, il, cam, light = [], [], [], []
    width = resolution[1]
    for sc in scenes:
        bad = [o.kind for o in sc.objects if o.kind not in _KIND_CODE]
        if bad or len(sc.room_textures) != 6:
            raise ValueError(f"bad scene: object kinds {bad} not in {SHAPE_KINDS} or "
                             f"{len(sc.room_textures)} room textures instead of 6")
        w, h, d = sc.room_size
        surfaces = [(0, c, (0.0, h / 2, 0.0), (w / 2, h / 2, d / 2), 0.0, t)
                    for c, t in zip(_ROOM_CLASSES, sc.room_textures)]
        surfaces += [(_KIND_CODE[o.kind], CLASS_NAMES.index(o.kind), o.center, o.half, o.yaw,
                      o.texture) for o in sc.objects]
        for kind, c, center, half, yaw, tex in surfaces:
            il.append((kind, c, TEXTURE_KINDS.index(tex.kind), tex.seed))
            fl.append((*center, *half, math.cos(yaw), math.sin(yaw), *tex.color_a, *tex.color_b,
                       tex.scale, *tex.offset, *tex.direction))
        fl.extend([pad_f] * (k - len(sc.objects)))
        il.extend([pad_i] * (k - len(sc.objects)))
        cm = sc.camera
        cp, sp, cy, sy = math.cos(cm.pitch), math.sin(cm.pitch), math.cos(cm.yaw), math.sin(cm.yaw)
        right, down, fwd = (-cy, 0.0, sy), (-sp * sy, -cp, -sp * cy), (cp * sy, -sp, cp * cy)
        rot = [axis[a] for a in range(3) for axis in (right, down, fwd)]
        cam.append((*cm.position, *rot, (width / 2) / math.tan(math.radians(cm.fov_x) / 2)))
        lx, ly, lz = sc.light.direction
        ln = math.sqrt(lx * lx + ly * ly + lz * lz)
        light.append((lx / ln, ly / ln, lz / ln, sc.light.intensity, sc.light.ambient))
    f_np, cam_np, light_np = (np.asarray(x, np.float64) for x in (fl, cam, light))
    f_np = f_np.reshape(n, 6 + k, 21)
    screen, basis, shadow = _culling_bounds(f_np, cam_np, light_np, resolution)
    t = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return {"f": t(f_np), "i": torch.tensor(il, dtype=torch.int64).view(n, 6 + k, 4),
            "cam": t(cam_np), "light": t(light_np), "screen": t(screen), "basis": t(basis),
            "shadow": t(shadow)}


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
    return x.reshape(-1).index_select(0, img if x.shape[1] == x.shape[2] == 1 else pix)


def _culling_bounds(f: np.ndarray, cam: np.ndarray, light: np.ndarray,
                    resolution: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conservative per-object bounds for culling (numpy, float64, vectorised over the chunk).

    Returns ``screen`` ``[N, K, 4]`` (u0, u1, v0, v1: pixel-centre range of the projected
    bounding box, 1 px margin, the whole image if a corner is behind / near the camera),
    ``basis`` ``[N, 3, 3]`` (e1, e2 perpendicular to the light, and the light direction) and
    ``shadow`` ``[N, K, 5]`` (e1 range, e2 range, max along the light) of the bounding boxes."""
    obj = f[:, 6:]
    sgn = np.array([[(c >> a & 1) * 2.0 - 1.0 for c in range(8)] for a in range(3)])
    lx, ly, lz = (obj[:, :, 3 + a, None] * sgn[a] for a in range(3))
    cos, sin = obj[:, :, 6, None], obj[:, :, 7, None]
    corners = np.stack([obj[:, :, 0, None] + cos * lx + sin * lz, obj[:, :, 1, None] + ly,
                        obj[:, :, 2, None] - sin * lx + cos * lz], -1)  # [N, K, 8, 3]
    rot = cam[:, 3:12].reshape(-1, 3, 3)
    pc = np.einsum("nkci,nij->nkcj", corners - cam[:, None, None, :3], rot)  # camera frame
    hgt, wid = resolution
    front = (pc[..., 2] > 1e-2).all(-1)
    z = np.maximum(pc[..., 2], 1e-2)
    focal = cam[:, 12, None, None]
    u, v = focal * pc[..., 0] / z + wid / 2, focal * pc[..., 1] / z + hgt / 2
    big = float(max(hgt, wid) + 10)
    screen = np.stack([np.where(front, u.min(-1) - 1, -big), np.where(front, u.max(-1) + 1, big),
                       np.where(front, v.min(-1) - 1, -big), np.where(front, v.max(-1) + 1, big)],
                      -1)
    ld = light[:, :3]
    helper = np.where(np.abs(ld[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(ld, helper)
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    basis = np.stack([e1, np.cross(ld, e1), ld], 1)
    proj = np.einsum("nkci,nai->nkac", corners, basis)  # [N, K, 3, 8]
    margin = 1e-3
    shadow = np.stack([proj[:, :, 0].min(-1) - margin, proj[:, :, 0].max(-1) + margin,
                       proj[:, :, 1].min(-1) - margin, proj[:, :, 1].max(-1) + margin,
                       proj[:, :, 2].max(-1) + margin], -1)
    return screen, basis, shadow


def _cull_primary(pk: dict[str, Tensor], shape: tuple[int, int, int]) -> Tensor:
    """``[N, H, W, K]`` bool: pixel centre inside the object's screen rectangle."""
    n, hgt, wid = shape
    scr = pk["screen"][:, None]  # [N, 1, K, 4]
    jj = torch.arange(wid, dtype=torch.float32).view(1, wid, 1) + 0.5
    ii = torch.arange(hgt, dtype=torch.float32).view(1, hgt, 1) + 0.5
    cols = (jj >= scr[..., 0]) & (jj <= scr[..., 1])  # [N, W, K]
    rows = (ii >= scr[..., 2]) & (ii <= scr[..., 3])  # [N, H, K]
    return rows[:, :, None] & cols[:, None]


def _cull_shadow(pk: dict[str, Tensor], point: V3) -> Tensor:
    """``[N, H, W, K]`` bool: the shadow ray from ``point`` (parallel to the light) passes through
    the object's bounding box projected along the light, and the box is not entirely behind."""
    n = point[0].shape[0]
    basis, bounds = pk["basis"], pk["shadow"].view(n, 1, 1, -1, 5)
    out = None
    for a in range(3):
        w = [basis[:, a, c].view(n, 1, 1) for c in range(3)]
        proj = (point[0] * w[0] + point[1] * w[1] + point[2] * w[2])[..., None]
        ok = proj < bounds[..., 2 * a + 1 if a < 2 else 4]
        if a < 2:
            ok &= proj > bounds[..., 2 * a]
        out = ok if out is None else out & ok
    return out


def _cast_objects(o: V3, d: V3, pk: dict[str, Tensor], cand: Tensor, any_hit: bool = False):
    """Nearest object hit per ray: ``(t, surface id)`` ``[N, H, W]`` (inf / 2**30 where none), or
    with ``any_hit`` a bool "blocked" mask. ``None`` when the batch has no objects.

    ``o``/``d`` components are ``[N, 1, 1]`` (per image) or ``[N, H, W]`` (per ray); ``cand``
    ``[N, H, W, K]`` marks the (ray, object) pairs that survived culling: the exact sphere / box /
    cylinder intersections run only on those."""
    n, hgt, wid, _ = cand.shape
    f, kinds = pk["f"][:, 6:], pk["i"][:, 6:, 0]
    cand = cand & (kinds > 0).view(n, 1, 1, -1)
    img, row, col, k = cand.nonzero(as_tuple=True)
    pix = (img * hgt + row) * wid + col
    oo = tuple(_take(x, img, pix) for x in o)
    do = tuple(_take(x, img, pix) for x in d)
    obj = img * f.shape[1] + k
    p = f[:, :, :8].reshape(-1, 8).index_select(0, obj)  # [M, 8]
    kind = kinds.reshape(-1).index_select(0, obj)
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
    # Room: the camera is inside the box, so the exit distance along each axis (the larger of
    # the two slab roots; +inf for a ray parallel to the slab) is the hit.
    f0 = pk["f"][:, 0]
    ts = []
    for a in range(3):
        lo = per(f0[:, a] - f0[:, 3 + a] - cam[:, a])
        hi = per(f0[:, a] + f0[:, 3 + a] - cam[:, a])
        ts.append(torch.maximum(lo / d[a], hi / d[a]))
    t_room = torch.minimum(torch.minimum(ts[0], ts[1]), ts[2])
    # Surface order: floor (y-), ceiling (y+), wall x-, x+, z-, z+.
    surf = torch.where(t_room == ts[1], (d[1] > 0).long(),
                       torch.where(t_room == ts[0], 2 + (d[0] > 0).long(), 4 + (d[2] > 0).long()))
    if bool((pk["i"][:, 6:, 0] > 0).any()):
        t_obj, s_obj = _cast_objects(o, d, pk, _cull_primary(pk, (n, height, width)))
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
    # Local normal direction = local point masked per axis: boxes / room keep the dominant
    # relative coordinate, spheres keep all three, cylinders (x, z) on the side and y on a cap.
    ax, ay, az = lx.abs() / half[0], ly.abs() / half[1], lz.abs() / half[2]
    bx = (ax >= ay) & (ax >= az)
    by = ~bx & (ay >= az)
    is_sph, is_cyl = kind == 1, kind == 3
    boxy = ~(is_sph | is_cyl)
    cap = is_cyl & (ay * ay >= ax * ax + az * az)
    side = is_cyl ^ cap
    wx = is_sph | side | (boxy & bx)
    wy = is_sph | cap | (boxy & by)
    wz = is_sph | side | (boxy & ~(bx | by))
    nx, ny, nz = lx * wx, ly * wy, lz * wz
    nx, ny, nz = cos * nx + sin * nz, ny, cos * nz - sin * nx  # local -> world
    nrm = torch.sqrt(nx * nx + ny * ny + nz * nz)
    flip = torch.where(nx * d[0] + ny * d[1] + nz * d[2] > 0, -1.0, 1.0) / nrm  # face the camera
    nw = (nx * flip, ny * flip, nz * flip)
    nc = tuple(rot[a] * nw[0] + rot[3 + a] * nw[1] + rot[6 + a] * nw[2] for a in range(3))
    ray_len = torch.sqrt(u * u + v * v + 1.0).expand(n, height, width)
    return Geometry(depth, ray_len, surf, cls, kind, point, (lx, ly, lz), nw, nc, half)


# ------------------------------------------------------------------------------------ image

# Lattice values of the value noise: a fixed random table indexed by a linear hash of the
# lattice coordinates and the texture seed (wrapping modulo 2**16).
_NOISE_TABLE = torch.from_numpy(np.random.default_rng(20240601).random(1 << 16).astype(np.float32))
_PRIMES = (374761393, 668265263, 1440662683)


def _value_noise(q: V3, seed: Tensor) -> Tensor:
    """3-D value noise in [0, 1] (smoothstep-trilinear interpolation of lattice values)."""
    base = [torch.floor(x) for x in q]
    w = [(x - b) * (x - b) * (3.0 - 2.0 * (x - b)) for x, b in zip(q, base)]
    h0 = (base[0].long() * _PRIMES[0] + base[1].long() * _PRIMES[1] + base[2].long() * _PRIMES[2]
          + seed)
    corner = lambda cx, cy, cz: _NOISE_TABLE[  # noqa: E731
        (h0 + (cx * _PRIMES[0] + cy * _PRIMES[1] + cz * _PRIMES[2])) & 0xFFFF]
    lerp = lambda a, b, t: a + t * (b - a)  # noqa: E731
    yz = [[lerp(corner(0, cy, cz), corner(1, cy, cz), w[0]) for cz in (0, 1)] for cy in (0, 1)]
    z = [lerp(yz[0][cz], yz[1][cz], w[1]) for cz in (0, 1)]
    return lerp(z[0], z[1], w[2])


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
        m = seed.shape[0]
        both = _value_noise(tuple(torch.cat([x, 2.0 * x]) for x in qs), torch.cat([seed, seed + 7]))
        val = 0.65 * both[:m] + 0.35 * both[m:]  # two octaves
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
    if bool((pk["i"][:, 6:, 0] > 0).any()):
        cand = _cull_shadow(pk, origin) & (lam > 0)[..., None]
        lam = torch.where(_cast_objects(origin, ld, pk, cand, any_hit=True), 0.0, lam)
    return lt[:, 4].view(n, 1, 1) + lt[:, 3].view(n, 1, 1) * lam


# ----------------------------------------------------------------------------------- render

def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tasks, str):
        tasks = (tasks,)
    for task in tasks:
        if task not in SYNTHETIC_TASKS:
            raise ValueError(f"unknown synthetic task {task!r}; "
                             f"valid tasks: {', '.join(SYNTHETIC_TASKS)}")
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
    """Render samples ``indices`` of ``split`` ("train" | "test" | "val"; "pretrain" is lhl pretrain's own) for ``seed``.

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


__all__ = ["Geometry", "LABEL_CHANNELS", "LABEL_FUNCTIONS", "SYNTHETIC_TASKS", "render",
           "render_scenes"]
