"""Image-level labels of a synthetic scene — what ``lhl pretrain`` learns from (docs/pretrained-weights.md,
"Synthetic pretraining"); no benchmark task reads them.

Four families, the columns of one float vector per image (:func:`scene_attributes`):

* ``fractions`` (8): the fraction of the image's pixels of each class of :data:`CLASS_NAMES` — a soft
  class histogram (what is in the picture, and how much of it);
* ``present`` (31, binary): which of the 5 shapes are visible (at least 0.2 % of the pixels); which
  (shape, texture kind) pairs the scene's objects wear (5 × 4); which of 6 hue bins the objects'
  main colours fall in — object categories with their materials and colours, ImageNet's kind of label;
* ``materials`` (3, class indices 0–3): the texture kind of the floor, the walls and the ceiling;
* ``scene`` (15, real): room width, height and depth; the camera's height, sideways position (a
  fraction of the room's width), distance from the back wall, yaw, pitch and field of view; the
  light's azimuth (cosine, sine), elevation, intensity and ambient level; the number of objects.

:data:`MIRROR_ODD` marks the ``scene`` columns that change sign when the image is mirrored left-right
(the camera's sideways position and yaw, the sine of the light's azimuth); every other label is
unchanged by a mirror.
"""

from __future__ import annotations

import colorsys
import math
from itertools import accumulate
from typing import Sequence

import torch
from torch import Tensor

from lhl.data.synthetic.scene import NUM_CLASSES, SHAPE_KINDS, TEXTURE_KINDS, Scene

HUE_BINS = 6
VISIBLE_FRACTION = 0.002
SCENE_VALUES: tuple[str, ...] = (
    "room_width", "room_height", "room_depth", "camera_height", "camera_side", "camera_back",
    "camera_yaw", "camera_pitch", "camera_fov", "light_azimuth_cos", "light_azimuth_sin",
    "light_elevation", "light_intensity", "light_ambient", "objects")
MIRROR_ODD: tuple[str, ...] = ("camera_side", "camera_yaw", "light_azimuth_sin")

_WIDTHS = {"fractions": NUM_CLASSES, "present": len(SHAPE_KINDS) * (1 + len(TEXTURE_KINDS)) + HUE_BINS,
           "materials": 3, "scene": len(SCENE_VALUES)}
_ENDS = list(accumulate(_WIDTHS.values()))
#: column ranges of the attribute vector, in order
FAMILIES: dict[str, tuple[int, int]] = {name: (end - width, end) for (name, width), end in zip(_WIDTHS.items(), _ENDS)}
NUM_ATTRIBUTES: int = _ENDS[-1]


def _scene_values(scene: Scene) -> list[float]:
    w, h, d = scene.room_size
    x, y, z = scene.camera.position
    lx, ly, lz = scene.light.direction
    return [w, h, d, y, x / w, z + d / 2, math.degrees(scene.camera.yaw), math.degrees(scene.camera.pitch),
            scene.camera.fov_x, lz / math.hypot(lx, lz), lx / math.hypot(lx, lz), math.degrees(math.asin(ly)),
            scene.light.intensity, scene.light.ambient, float(len(scene.objects))]


def scene_attributes(scenes: Sequence[Scene], segmentation: Tensor) -> Tensor:
    """The attribute vectors ``[N, NUM_ATTRIBUTES]`` (float32) of ``scenes`` rendered to
    ``segmentation`` (int64 ``[N, H, W]``, class indices)."""
    fractions = torch.nn.functional.one_hot(segmentation.flatten(1), NUM_CLASSES).float().mean(1)
    rows = []
    for scene, frac in zip(scenes, fractions.tolist()):
        visible = [float(f >= VISIBLE_FRACTION) for f in frac[NUM_CLASSES - len(SHAPE_KINDS):]]
        worn = [float(any(o.kind == shape and o.texture.kind == kind for o in scene.objects))
                for shape in SHAPE_KINDS for kind in TEXTURE_KINDS]
        hues = [0.0] * HUE_BINS
        for obj in scene.objects:
            hues[min(int(colorsys.rgb_to_hsv(*obj.texture.color_a)[0] * HUE_BINS), HUE_BINS - 1)] = 1.0
        floor, ceiling, wall = scene.room_textures[0], scene.room_textures[1], scene.room_textures[2]
        materials = [float(TEXTURE_KINDS.index(t.kind)) for t in (floor, wall, ceiling)]
        rows.append(visible + worn + hues + materials + _scene_values(scene))
    return torch.cat([fractions, torch.tensor(rows, dtype=torch.float32)], 1)


def mirror(attributes: Tensor) -> Tensor:
    """The attributes of the left-right mirrored images (a copy)."""
    out = attributes.clone()
    first = FAMILIES["scene"][0]
    for name in MIRROR_ODD:
        out[:, first + SCENE_VALUES.index(name)] *= -1
    return out
