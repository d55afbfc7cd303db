"""Explicit scene descriptions and the random scene sampler of the synthetic renderer.

A :class:`Scene` is a plain, immutable description (room, camera, light, objects, textures) that
:func:`lhl.data.synthetic.render_scenes` turns into an image and labels. :func:`sample_scene`
draws one at random; it is a pure function of ``(seed, split, index)``: its generator is
``numpy.random.default_rng([seed, SPLIT_CODES[split], index])`` and nothing else is consulted,
so any sample can be regenerated alone, in any process, in any batch.

World frame (metres): right-handed, ``y`` up, the floor is ``y = 0``; the room spans
``x in [-w/2, w/2]``, ``y in [0, h]``, ``z in [-d/2, d/2]`` for ``room_size = (w, h, d)``.
Camera yaw rotates about world ``y`` (yaw 0 looks along ``+z``), positive pitch looks down.

Object parametrisation (``SceneObject.center`` is the centre of the bounding box, ``half`` the
half extents of the shape in its local frame, ``yaw`` a rotation about the vertical axis):
sphere ``half = (r, r, r)``; cube / slab boxes ``half = (hx, hy, hz)``; cylinder / pillar
(vertical axis) ``half = (r, half_height, r)``.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: ``"val"`` (``data.val_size`` images) is rendered from its own generators, so it shares no sample with
#: train or test by construction. ``"pretrain"`` is used only by ``lhl pretrain``
#: (:mod:`lhl.engine.pretrain`): no benchmark reads it, so its scenes (generators
#: ``[seed, 3, index]``) differ from every benchmark split's scenes for every seed.
SPLIT_CODES: dict[str, int] = {"train": 0, "test": 1, "val": 2, "pretrain": 3}

CLASS_NAMES: tuple[str, ...] = ("floor", "wall", "ceiling", "sphere", "cube", "slab", "cylinder",
                                "pillar")
NUM_CLASSES: int = len(CLASS_NAMES)
SHAPE_KINDS: tuple[str, ...] = ("sphere", "cube", "slab", "cylinder", "pillar")
TEXTURE_KINDS: tuple[str, ...] = ("plain", "checker", "stripes", "noise")

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Texture:
    """Solid (3-D) procedural texture evaluated at ``q = (p_local + offset) / scale``.

    ``plain``: ``color_a``; ``checker``: parity of ``floor(qx)+floor(qy)+floor(qz)``;
    ``stripes``: parity of ``floor(q . direction)``; ``noise``: 3-D value noise (two octaves).
    The pattern value ``w`` in [0, 1] mixes ``color_a`` (w = 0) and ``color_b`` (w = 1).
    """

    kind: str = "plain"
    color_a: Vec3 = (0.7, 0.7, 0.7)
    color_b: Vec3 = (0.3, 0.3, 0.3)
    scale: float = 0.5
    offset: Vec3 = (0.0, 0.0, 0.0)
    direction: Vec3 = (1.0, 0.0, 0.0)
    seed: int = 0


@dataclass(frozen=True)
class SceneObject:
    """One shape resting in the room; ``kind`` is one of :data:`SHAPE_KINDS`."""

    kind: str
    center: Vec3
    half: Vec3
    yaw: float = 0.0
    texture: Texture = field(default_factory=Texture)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: position (world), yaw/pitch (radians), horizontal field of view (deg)."""

    position: Vec3 = (0.0, 1.5, -2.0)
    yaw: float = 0.0
    pitch: float = 0.0
    fov_x: float = 68.0


@dataclass(frozen=True)
class Light:
    """Directional light: unit ``direction`` towards the light (world), plus ambient term."""

    direction: Vec3 = (0.3, 0.8, -0.5)
    intensity: float = 0.7
    ambient: float = 0.35


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one image. ``room_textures`` are for (floor, ceiling,
    wall x-, wall x+, wall z-, wall z+). ``noise_std`` is the sensor noise of the image only;
    the noise field is drawn from ``numpy.random.default_rng(noise_seed)``."""

    room_size: Vec3 = (6.0, 3.0, 6.0)
    camera: Camera = field(default_factory=Camera)
    light: Light = field(default_factory=Light)
    objects: tuple[SceneObject, ...] = ()
    room_textures: tuple[Texture, ...] = (Texture(),) * 6
    noise_std: float = 0.02
    noise_seed: int = 0


# ----------------------------------------------------------------------------------- sampling

_OBJECT_PROBS = (0.22, 0.24, 0.16, 0.22, 0.16)  # sphere, cube, slab, cylinder, pillar
# Texture kind preferences per category (plain, checker, stripes, noise): the categories differ in
# texture statistics as well as shape, which keeps segmentation learnable from small images.
_TEXTURE_PROBS = {
    "sphere": (0.30, 0.05, 0.10, 0.55), "cube": (0.10, 0.65, 0.10, 0.15),
    "slab": (0.10, 0.05, 0.70, 0.15), "cylinder": (0.20, 0.05, 0.60, 0.15),
    "pillar": (0.45, 0.05, 0.05, 0.45),
    "floor": (0.0, 0.4, 0.35, 0.25), "wall": (0.35, 0.0, 0.3, 0.35), "ceiling": (0.6, 0, 0, 0.4),
}


class _Stream:
    """Uniform [0, 1) numbers drawn from one generator in blocks (fast scalar draws)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.buf, self.pos = rng, [], 0

    def __call__(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if self.pos == len(self.buf):
            self.buf, self.pos = self.rng.random(64).tolist(), 0
        self.pos += 1
        return lo + (hi - lo) * self.buf[self.pos - 1]

    def choice(self, probs: Sequence[float]) -> int:
        u, acc = self(), 0.0
        for i, p in enumerate(probs):
            acc += p
            if u < acc:
                return i
        return len(probs) - 1

    def integer(self) -> int:
        return int(self() * 2**31)


def _hsv(h: float, s: float, v: float) -> Vec3:
    return colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))


def _texture(u: _Stream, kind_of: str, colors: tuple[Vec3, Vec3], scale: float,
             direction: Vec3) -> Texture:
    kind = TEXTURE_KINDS[u.choice(_TEXTURE_PROBS[kind_of])]
    return Texture(kind, colors[0], colors[1], scale, (u(0, 10), u(0, 10), u(0, 10)), direction,
                   u.integer())


def _object_colors(u: _Stream) -> tuple[Vec3, Vec3]:
    hue, sat, val = u(), u(0.45, 0.9), u(0.5, 0.95)
    if u() < 0.5:  # same hue, darker
        return _hsv(hue, sat, val), _hsv(hue, sat, val * u(0.3, 0.6))
    return _hsv(hue, sat, val), _hsv(hue + u(0.25, 0.75), sat, val * 0.8)


def _room_textures(u: _Stream) -> tuple[Texture, ...]:
    fh, fs, fv = u(0.03, 0.13), u(0.25, 0.6), u(0.35, 0.7)
    floor_cols = (_hsv(fh, fs, fv), _hsv(fh, fs, fv * u(0.5, 0.75)))
    a = math.pi / 2 if u() < 0.5 else 0.0
    floor = _texture(u, "floor", floor_cols, u(0.3, 0.8), (math.cos(a), 0.0, math.sin(a)))
    wh, ws, wv = u(), u(0.08, 0.35), u(0.65, 0.9)
    wall_cols = (_hsv(wh, ws, wv), _hsv(wh + u(-0.1, 0.1), ws, wv * u(0.7, 0.85)))
    wall = _texture(u, "wall", wall_cols, u(0.15, 0.6), (0.0, 0.0, 0.0))
    vertical = u() < 0.5  # stripes across the wall (vertical) or bands (horizontal)
    walls = []
    for along in ((0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)):
        walls.append(Texture(wall.kind, wall.color_a, wall.color_b, wall.scale,
                             (u(0, 10), u(0, 10), u(0, 10)), along if vertical else (0.0, 1.0, 0.0),
                             wall.seed + len(walls)))
    cv = u(0.82, 0.97)
    ceil_cols = (_hsv(u(), u(0, 0.08), cv), _hsv(0, 0, cv * 0.85))
    ceiling = _texture(u, "ceiling", ceil_cols, u(0.3, 0.8), (1.0, 0.0, 0.0))
    return (floor, ceiling, *walls)


def _sample_object(u: _Stream, room_h: float) -> tuple[str, Vec3, float, float]:
    """Returns (kind, half extents, centre height, footprint radius)."""
    kind = SHAPE_KINDS[u.choice(_OBJECT_PROBS)]
    if kind == "sphere":
        r = u(0.2, 0.55)
        return kind, (r, r, r), r, r
    if kind == "cube":
        s = u(0.22, 0.5)
        return kind, (s, s, s), s, s * math.sqrt(2)
    if kind == "slab":  # a table top: wide, thin, raised (legs are not modelled)
        hx, hz, hy = u(0.35, 0.75), u(0.25, 0.5), u(0.025, 0.05)
        return kind, (hx, hy, hz), u(0.45, 0.9) - hy, math.hypot(hx, hz)
    if kind == "cylinder":
        r, hh = u(0.18, 0.45), u(0.2, 0.6)
        return kind, (r, hh, r), hh, r
    r = u(0.08, 0.2)  # pillar: floor to ceiling
    return kind, (r, room_h / 2, r), room_h / 2, r


def sample_scene(seed: int, split: str, index: int) -> Scene:
    """Random indoor scene number ``index`` of ``split`` for ``seed`` (pure function)."""
    u = _Stream(np.random.default_rng([seed, SPLIT_CODES[split], index]))
    w, h, d = u(4.0, 8.0), u(2.5, 3.5), u(4.5, 9.0)
    cam_pos = (u(-0.25, 0.25) * w, u(1.1, 1.8), -d / 2 + u(0.3, 0.9))
    yaw = math.radians(u(-25, 25))
    camera = Camera(cam_pos, yaw, math.radians(u(8, 28)), u(60, 75))
    az, el = u(0, 2 * math.pi), math.radians(u(35, 75))
    light = Light((math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)),
                  u(0.55, 0.8), u(0.3, 0.45))
    room_textures = _room_textures(u)

    target = 2 + min(int(u() * 6), 5)  # 2..7 objects
    objects: list[SceneObject] = []
    placed: list[tuple[float, float, float]] = []  # (x, z, footprint radius)
    half_fov = math.radians(camera.fov_x) / 2 * 0.85
    for _ in range(80):
        if len(objects) == target:
            break
        kind, half, cy, foot = _sample_object(u, h)
        dist, ang = u(1.2, 5.0), yaw + u(-half_fov, half_fov)
        x, z = cam_pos[0] + dist * math.sin(ang), cam_pos[2] + dist * math.cos(ang)
        if abs(x) > w / 2 - foot - 0.05 or abs(z) > d / 2 - foot - 0.05:
            continue
        if math.hypot(x - cam_pos[0], z - cam_pos[2]) < foot + 0.5:
            continue
        if any(math.hypot(x - px, z - pz) < foot + pf + 0.05 for px, pz, pf in placed):
            continue
        obj_yaw = u(0, math.pi) if kind in ("cube", "slab") else 0.0
        if kind == "cylinder" and u() < 0.6:
            direction: Vec3 = (0.0, 1.0, 0.0)  # horizontal bands
        else:
            v = (u(-1, 1), u(-1, 1), u(-1, 1))
            norm = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2) + 1e-9
            direction = (v[0] / norm, v[1] / norm, v[2] / norm)
        scale = u(0.08, 0.3) if kind != "pillar" else u(0.1, 0.4)
        tex = _texture(u, kind, _object_colors(u), scale, direction)
        objects.append(SceneObject(kind, (x, cy, z), half, obj_yaw, tex))
        placed.append((x, z, foot))
    noise_seed = int(u.rng.integers(0, 2**63 - 1))
    return Scene((w, h, d), camera, light, tuple(objects), room_textures, 0.02, noise_seed)
