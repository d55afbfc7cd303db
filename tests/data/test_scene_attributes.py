"""Image-level scene labels (lhl.data.synthetic.attributes), the targets of lhl pretrain."""

import dataclasses
import math

import pytest
import torch

from lhl.data.synthetic import render_scenes, sample_scene
from lhl.data.synthetic.attributes import (FAMILIES, MIRROR_ODD, NUM_ATTRIBUTES, SCENE_VALUES, mirror,
                                           scene_attributes)
from lhl.data.synthetic.scene import CLASS_NAMES, SHAPE_KINDS, TEXTURE_KINDS


def _mirrored(scene):
    """The same room seen in a mirror: every x coordinate and every yaw negated."""
    cam = scene.camera
    light = scene.light
    objects = tuple(dataclasses.replace(o, center=(-o.center[0], *o.center[1:]), yaw=-o.yaw) for o in scene.objects)
    return dataclasses.replace(
        scene, camera=dataclasses.replace(cam, position=(-cam.position[0], *cam.position[1:]), yaw=-cam.yaw),
        light=dataclasses.replace(light, direction=(-light.direction[0], *light.direction[1:])), objects=objects)


def test_layout_and_values_of_one_scene():
    scenes = [sample_scene(0, "pretrain", i) for i in range(6)]
    seg = render_scenes(scenes, (32, 32), ("segmentation",))["segmentation"]
    attrs = scene_attributes(scenes, seg)
    assert attrs.shape == (6, NUM_ATTRIBUTES) and list(FAMILIES) == ["fractions", "present", "materials", "scene"]
    assert FAMILIES["scene"][1] == NUM_ATTRIBUTES
    f0, f1 = FAMILIES["fractions"]
    assert torch.allclose(attrs[:, f0:f1].sum(1), torch.ones(6))
    p0, _ = FAMILIES["present"]
    s0, _ = FAMILIES["scene"]
    m0, _ = FAMILIES["materials"]
    for row, scene, labels in zip(attrs, scenes, seg):
        shapes_seen = {CLASS_NAMES[c] for c in labels.unique().tolist()} & set(SHAPE_KINDS)
        counts = labels.flatten().bincount(minlength=len(CLASS_NAMES))
        visible = {SHAPE_KINDS[j] for j in range(len(SHAPE_KINDS)) if row[p0 + j] == 1}
        assert visible == {s for s in shapes_seen if counts[CLASS_NAMES.index(s)] >= 0.002 * labels.numel()}
        pairs = row[p0 + len(SHAPE_KINDS):p0 + len(SHAPE_KINDS) * (1 + len(TEXTURE_KINDS))].view(len(SHAPE_KINDS), -1)
        assert {(SHAPE_KINDS[a], TEXTURE_KINDS[b]) for a, b in pairs.nonzero().tolist()} == \
            {(o.kind, o.texture.kind) for o in scene.objects}
        assert row[m0].item() == TEXTURE_KINDS.index(scene.room_textures[0].kind)  # the floor
        values = dict(zip(SCENE_VALUES, row[s0:].tolist()))
        assert values["objects"] == len(scene.objects)
        assert values["camera_pitch"] == pytest.approx(math.degrees(scene.camera.pitch), rel=1e-5)
        assert values["room_width"] == pytest.approx(scene.room_size[0], rel=1e-6)


def test_mirror_negates_exactly_the_labels_a_mirrored_scene_changes():
    scenes = [sample_scene(1, "pretrain", i) for i in range(4)]
    mirrored = [_mirrored(s) for s in scenes]
    out, out_m = (render_scenes(s, (32, 32), ("segmentation",)) for s in (scenes, mirrored))
    attrs, attrs_m = scene_attributes(scenes, out["segmentation"]), scene_attributes(mirrored, out_m["segmentation"])
    s0, _ = FAMILIES["scene"]
    assert torch.allclose(mirror(attrs)[:, s0:], attrs_m[:, s0:], atol=1e-5)
    assert torch.equal(mirror(mirror(attrs)), attrs)
    changed = [SCENE_VALUES[j] for j in range(len(SCENE_VALUES)) if not torch.equal(mirror(attrs)[:, s0 + j], attrs[:, s0 + j])]
    assert sorted(changed) == sorted(MIRROR_ODD)
    # the mirrored scene renders as the flipped image: the class fractions agree up to edge pixels
    f0, f1 = FAMILIES["fractions"]
    assert (attrs[:, f0:f1] - attrs_m[:, f0:f1]).abs().max() < 0.02
    assert (out["segmentation"].flip(2) != out_m["segmentation"]).float().mean() < 0.02
