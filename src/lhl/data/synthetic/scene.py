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

import numpy as np

SPLIT_CODES: dict[str, int] = {"train": 0, "test": 1}

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

_OBJECT_PROBS = np.array([0.22, 0.24, 0.16, 0.22, 0.16])  # sphere, cube, slab, cylinder, pillar
# Texture kind preferences per category (plain, checker, stripes, noise): the categories differ in
# texture statistics as well as shape, which keeps segmentation learnable from small images.
_TEXTURE_PROBS = {
    "sphere": (0.30, 0.05, 0.10, 0.55), "cube": (0.10, 0.65, 0.10, 0.15),
    "slab": (0.10, 0.05, 0.70, 0.15), "cylinder": (0.20, 0.05, 0.60, 0.15),
    "pillar": (0.45, 0.05, 0.05, 0.45),
    "floor": (0.0, 0.4, 0.35, 0.25), "wall": (0.35, 0.0, 0.3, 0.35), "ceiling": (0.6, 0, 0, 0.4),
}


def _hsv(h: float, s: float, v: float) -> Vec3:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (r, g, b)


def _texture(rng: np.random.Generator, kind_of: str, colors: tuple[Vec3, Vec3], scale: float,
             direction: Vec3) -> Texture:
    kind = TEXTURE_KINDS[int(rng.choice(4, p=_TEXTURE_PROBS[kind_of]))]
    offset = tuple(float(x) for x in rng.uniform(0.0, 10.0, 3))
    return Texture(kind, colors[0], colors[1], scale, offset, direction,  # type: ignore[arg-type]
                   int(rng.integers(0, 2**31 - 1)))


def _object_colors(rng: np.random.Generator) -> tuple[Vec3, Vec3]:
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.45, 0.9), rng.uniform(0.5, 0.95)
    if rng.uniform() < 0.5:  # same hue, darker
        return _hsv(hue, sat, val), _hsv(hue, sat, val * rng.uniform(0.3, 0.6))
    return _hsv(hue, sat, val), _hsv(hue + rng.uniform(0.25, 0.75), sat, val * 0.8)


def _room_textures(rng: np.random.Generator) -> tuple[Texture, ...]:
    fh, fs, fv = rng.uniform(0.03, 0.13), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.7)
    floor_cols = (_hsv(fh, fs, fv), _hsv(fh, fs, fv * rng.uniform(0.5, 0.75)))
    a = float(rng.choice([0.0, math.pi / 2]))
    floor = _texture(rng, "floor", floor_cols, rng.uniform(0.3, 0.8), (math.cos(a), 0.0, math.sin(a)))
    wh, ws, wv = rng.uniform(0, 1), rng.uniform(0.08, 0.35), rng.uniform(0.65, 0.9)
    wall_cols = (_hsv(wh, ws, wv), _hsv(wh + rng.uniform(-0.1, 0.1), ws, wv * rng.uniform(0.7, 0.85)))
    wall = _texture(rng, "wall", wall_cols, rng.uniform(0.15, 0.6), (0.0, 0.0, 0.0))
    vertical = rng.uniform() < 0.5  # stripes across the wall (vertical) or bands (horizontal)
    walls = []
    for along in ((0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)):
        walls.append(Texture(wall.kind, wall.color_a, wall.color_b, wall.scale,
                             tuple(float(x) for x in rng.uniform(0, 10, 3)),  # type: ignore[arg-type]
                             along if vertical else (0.0, 1.0, 0.0), wall.seed + len(walls)))
    cv = rng.uniform(0.82, 0.97)
    ceil_cols = (_hsv(rng.uniform(0, 1), rng.uniform(0, 0.08), cv), _hsv(0, 0, cv * 0.85))
    ceiling = _texture(rng, "ceiling", ceil_cols, rng.uniform(0.3, 0.8), (1.0, 0.0, 0.0))
    return (floor, ceiling, *walls)


def _sample_object(rng: np.random.Generator, room_h: float) -> tuple[str, Vec3, float, float]:
    """Returns (kind, half extents, centre height, footprint radius)."""
    kind = SHAPE_KINDS[int(rng.choice(5, p=_OBJECT_PROBS))]
    if kind == "sphere":
        r = rng.uniform(0.2, 0.55)
        return kind, (r, r, r), r, r
    if kind == "cube":
        s = rng.uniform(0.22, 0.5)
        return kind, (s, s, s), s, s * math.sqrt(2)
    if kind == "slab":  # a table top: wide, thin, raised (legs are not modelled)
        hx, hz, hy = rng.uniform(0.35, 0.75), rng.uniform(0.25, 0.5), rng.uniform(0.025, 0.05)
        return kind, (hx, hy, hz), rng.uniform(0.45, 0.9) - hy, math.hypot(hx, hz)
    if kind == "cylinder":
        r, hh = rng.uniform(0.18, 0.45), rng.uniform(0.2, 0.6)
        return kind, (r, hh, r), hh, r
    r = rng.uniform(0.08, 0.2)  # pillar: floor to ceiling
    return kind, (r, room_h / 2, r), room_h / 2, r


def sample_scene(seed: int, split: str, index: int) -> Scene:
    """Random indoor scene number ``index`` of ``split`` for ``seed`` (pure function)."""
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    w, h, d = rng.uniform(4.0, 8.0), rng.uniform(2.5, 3.5), rng.uniform(4.5, 9.0)
    cam_pos = (rng.uniform(-0.25, 0.25) * w, rng.uniform(1.1, 1.8), -d / 2 + rng.uniform(0.3, 0.9))
    yaw = math.radians(rng.uniform(-25, 25))
    camera = Camera(cam_pos, yaw, math.radians(rng.uniform(8, 28)), rng.uniform(60, 75))
    az, el = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(35, 75))
    light = Light((math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)),
                  rng.uniform(0.55, 0.8), rng.uniform(0.3, 0.45))
    room_textures = _room_textures(rng)

    target = int(rng.integers(2, 8))
    objects: list[SceneObject] = []
    placed: list[tuple[float, float, float]] = []  # (x, z, footprint radius)
    half_fov = math.radians(camera.fov_x) / 2 * 0.85
    for _ in range(80):
        if len(objects) == target:
            break
        kind, half, cy, foot = _sample_object(rng, h)
        dist, ang = rng.uniform(1.2, 5.0), yaw + rng.uniform(-half_fov, half_fov)
        x, z = cam_pos[0] + dist * math.sin(ang), cam_pos[2] + dist * math.cos(ang)
        if abs(x) > w / 2 - foot - 0.05 or abs(z) > d / 2 - foot - 0.05:
            continue
        if math.hypot(x - cam_pos[0], z - cam_pos[2]) < foot + 0.5:
            continue
        if any(math.hypot(x - px, z - pz) < foot + pf + 0.05 for px, pz, pf in placed):
            continue
        obj_yaw = float(rng.uniform(0, math.pi)) if kind in ("cube", "slab") else 0.0
        if kind == "cylinder" and rng.uniform() < 0.6:
            direction: Vec3 = (0.0, 1.0, 0.0)  # horizontal bands
        else:
            v = rng.normal(size=3)
            direction = tuple(float(c) for c in v / np.linalg.norm(v))  # type: ignore[assignment]
        scale = rng.uniform(0.08, 0.3) if kind != "pillar" else rng.uniform(0.1, 0.4)
        tex = _texture(rng, kind, _object_colors(rng), scale, direction)
        objects.append(SceneObject(kind, (x, cy, z), half, obj_yaw, tex))
        placed.append((x, z, foot))
    return Scene((w, h, d), camera, light, tuple(objects), room_textures, 0.02,
                 int(rng.integers(0, 2**63 - 1)))
