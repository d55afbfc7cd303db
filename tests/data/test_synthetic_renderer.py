"""Tests of the procedural synthetic renderer (lhl.data.synthetic)."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lhl.data.synthetic as syn
from lhl.data.synthetic import (CLASS_NAMES, LABEL_CHANNELS, LABEL_FUNCTIONS, NUM_CLASSES,
                                SYNTHETIC_TASKS, Camera, Scene, SceneObject, render, render_scenes,
                                sample_scene)

RES = (32, 40)  # non-square on purpose


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    return render(0, "train", [0, 1, 2, 3, 4, 5], RES, SYNTHETIC_TASKS)


def _camera_rays(fov_x: float, height: int, width: int) -> np.ndarray:
    """[H, W, 3] camera-frame rays with z = 1 (x right, y down), computed independently."""
    f = (width / 2) / math.tan(math.radians(fov_x) / 2)
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return np.stack([(jj - width / 2) / f, (ii - height / 2) / f, np.ones_like(jj)], -1)


# ------------------------------------------------------------------------------ API / shapes

def test_public_constants():
    assert SYNTHETIC_TASKS == ("segmentation", "depth", "normal", "edge_occlusion", "reshading",
                               "keypoints2d", "edge_texture", "depth_euclidean",
                               "principal_curvature", "keypoints3d")
    assert NUM_CLASSES >= 8 and len(CLASS_NAMES) == NUM_CLASSES
    assert LABEL_CHANNELS == {"segmentation": NUM_CLASSES, "depth": 1, "normal": 3,
                              "edge_occlusion": 1, "reshading": 1, "keypoints2d": 1,
                              "edge_texture": 1, "depth_euclidean": 1, "principal_curvature": 2,
                              "keypoints3d": 1}
    assert set(LABEL_FUNCTIONS) == set(SYNTHETIC_TASKS)


def test_shapes_dtypes_and_ranges(batch):
    assert set(batch) == {"image", *SYNTHETIC_TASKS}
    img = batch["image"]
    assert img.shape == (6, 3, *RES) and img.dtype == torch.float32
    assert 0 <= img.min() and img.max() <= 1
    seg = batch["segmentation"]
    assert seg.shape == (6, *RES) and seg.dtype == torch.int64
    assert 0 <= seg.min() and seg.max() < NUM_CLASSES
    assert len(seg.unique()) >= 3
    for task in SYNTHETIC_TASKS[1:]:
        value = batch[task]
        assert value.shape == (6, LABEL_CHANNELS[task], *RES) and value.dtype == torch.float32
        assert torch.isfinite(value).all(), task
    for task in ("edge_occlusion", "reshading", "keypoints2d", "edge_texture", "keypoints3d"):
        assert 0 <= batch[task].min() and batch[task].max() <= 1, task
        assert batch[task].max() > 0, task


def test_scene_sampler_object_counts():
    scenes = [sample_scene(3, "train", i) for i in range(40)]
    counts = [len(s.objects) for s in scenes]
    assert min(counts) >= 2 and max(counts) <= 7
    assert {o.kind for s in scenes for o in s.objects} == set(syn.SHAPE_KINDS)


# ----------------------------------------------------------------------------- determinism

def test_determinism_independent_of_batch_composition():
    full = render(7, "train", [3, 1, 2], RES, SYNTHETIC_TASKS)
    single = render(7, "train", [1], RES, SYNTHETIC_TASKS)
    pair = render(7, "train", [2, 3], RES, SYNTHETIC_TASKS)
    for key in full:
        assert torch.equal(full[key][1:2], single[key]), key
        assert torch.equal(full[key][2:3], pair[key][0:1]), key
        assert torch.equal(full[key][0:1], pair[key][1:2]), key


def test_different_seed_or_split_differs():
    a = render(0, "train", [0], RES)["image"]
    assert not torch.equal(a, render(1, "train", [0], RES)["image"])
    assert not torch.equal(a, render(0, "test", [0], RES)["image"])
    assert not torch.equal(a, render(0, "train", [1], RES)["image"])


def test_same_result_in_another_process():
    code = ("import hashlib; from lhl.data.synthetic import render; "
            "print(hashlib.sha256(render(5, 'test', [4], (32, 40), ('depth',))['depth']"
            ".numpy().tobytes()).hexdigest())")
    env = dict(os.environ, PYTHONPATH=str(Path(syn.__file__).parents[3]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    here = hashlib.sha256(render(5, "test", [4], RES, ("depth",))["depth"].numpy().tobytes())
    assert out == here.hexdigest()


# ------------------------------------------------------------------------- label isolation

def test_only_requested_labels_are_computed(monkeypatch):
    calls = {task: 0 for task in SYNTHETIC_TASKS}
    for task, fn in list(LABEL_FUNCTIONS.items()):
        def counting(geo, _fn=fn, _task=task):
            calls[_task] += 1
            return _fn(geo)
        monkeypatch.setitem(LABEL_FUNCTIONS, task, counting)
    out = render(0, "train", [0, 1], RES, ("depth",))
    assert set(out) == {"image", "depth"}
    assert calls["depth"] >= 1
    assert all(count == 0 for task, count in calls.items() if task != "depth")
    calls.update({task: 0 for task in calls})
    out = render(0, "train", [0], RES, ())
    assert set(out) == {"image"} and sum(calls.values()) == 0


# ------------------------------------------------------------------------------ consistency

def test_geometric_consistency(batch):
    n = batch["normal"]
    assert torch.allclose(n.norm(dim=1), torch.ones(1), atol=1e-4)
    depth, eucl = batch["depth"], batch["depth_euclidean"]
    assert depth.min() > 0
    assert (eucl >= depth).all()
    for b in range(6):  # normals face the camera: n . ray < 0
        rays = torch.from_numpy(_camera_rays(sample_scene(0, "train", b).camera.fov_x, *RES))
        dots = (n[b].permute(1, 2, 0).double() * rays).sum(-1)
        assert (dots < 0).all()
        # depth_euclidean / depth = |ray| (ray length of the z = 1 camera ray)
        ratio = (eucl[b, 0] / depth[b, 0]).double()
        assert torch.allclose(ratio, rays.norm(dim=-1), rtol=1e-5)


def test_curvature_values_per_class(batch):
    curv, seg = batch["principal_curvature"], batch["segmentation"]
    planes = (seg <= CLASS_NAMES.index("ceiling")) | (seg == CLASS_NAMES.index("cube")) \
        | (seg == CLASS_NAMES.index("slab"))
    assert (curv.permute(1, 0, 2, 3)[:, planes] == 0).all()
    assert (curv[:, 0] >= curv[:, 1]).all()  # k1 >= k2 >= 0 for these convex shapes


def test_explicit_sphere_scene_depth_normal_curvature():
    radius, center = 0.5, np.array([0.3, 1.4, 0.8])
    cam = Camera(position=(0.0, 1.5, -2.0), yaw=0.0, pitch=0.0, fov_x=60.0)
    scene = Scene(room_size=(6.0, 3.0, 8.0), camera=cam,
                  objects=(SceneObject("sphere", tuple(center), (radius,) * 3),), noise_std=0.0)
    out = render_scenes([scene], RES, ("segmentation", "depth", "normal", "principal_curvature"))
    seg, depth = out["segmentation"][0], out["depth"][0, 0].double()
    # Independent ray-sphere intersection. yaw = pitch = 0: camera right = world -x, down = -y.
    rays = _camera_rays(60.0, *RES)
    dirs = rays * np.array([-1.0, -1.0, 1.0])
    oc = np.array(cam.position) - center
    b = dirs @ oc
    a = (dirs**2).sum(-1)
    disc = b * b - a * (oc @ oc - radius**2)
    hit = disc > 0
    t = (-b - np.sqrt(np.where(hit, disc, 0))) / a  # = z-depth, since ray z = 1
    sphere = (seg == CLASS_NAMES.index("sphere")).numpy()
    assert (sphere != hit).sum() <= 1 and sphere.sum() > 20
    both = torch.from_numpy(sphere & hit)
    assert torch.allclose(depth[both], torch.from_numpy(t)[both], rtol=1e-4)
    # Normal on the sphere: (p - c) / r in camera frame.
    p_world = np.array(cam.position) + t[..., None] * dirs
    n_cam = (p_world - center) / radius * np.array([-1.0, -1.0, 1.0])
    got = out["normal"][0].permute(1, 2, 0).double()
    assert torch.allclose(got[both], torch.from_numpy(n_cam)[both], atol=1e-3)
    curv = out["principal_curvature"][0]
    assert torch.allclose(curv[:, torch.from_numpy(sphere)], torch.tensor(1 / radius), atol=1e-5)
    assert (curv[:, seg <= CLASS_NAMES.index("ceiling")] == 0).all()
    # The far wall (z = 4, depth 6) where an independent calculation says the ray reaches it.
    xw, yw = -rays[..., 0] * 6.0, 1.5 - rays[..., 1] * 6.0
    far = torch.from_numpy((np.abs(xw) < 2.95) & (yw > 0.05) & (yw < 2.95) & ~hit)
    assert far.sum() > 100 and (seg[far] == CLASS_NAMES.index("wall")).all()
    assert torch.allclose(depth[far], torch.tensor(6.0, dtype=torch.float64), atol=1e-4)


def test_explicit_cylinder_curvature():
    cam = Camera(position=(0.0, 1.2, -2.0), yaw=0.0, pitch=0.3, fov_x=60.0)
    cyl = SceneObject("cylinder", (0.0, 0.4, 0.5), (0.4, 0.4, 0.4))
    out = render_scenes([Scene(camera=cam, objects=(cyl,), noise_std=0.0)], RES,
                        ("segmentation", "principal_curvature", "normal"))
    seg, curv = out["segmentation"][0], out["principal_curvature"][0]
    mask = seg == CLASS_NAMES.index("cylinder")
    k1, k2 = curv[0][mask], curv[1][mask]
    side, cap = k1 > 0, k1 == 0
    assert side.sum() > 10 and cap.sum() > 10  # seen from above: side and top cap
    assert torch.allclose(k1[side], torch.tensor(2.5)) and (k2 == 0).all()


def test_noise_only_on_image():
    scene = sample_scene(0, "train", 0)
    quiet = Scene(scene.room_size, scene.camera, scene.light, scene.objects, scene.room_textures,
                  0.0, scene.noise_seed)
    a = render_scenes([scene], RES, ("edge_texture", "depth"))
    b = render_scenes([quiet], RES, ("edge_texture", "depth"))
    assert not torch.equal(a["image"], b["image"])
    assert (a["image"] - b["image"]).abs().mean() < 0.05
    assert torch.equal(a["edge_texture"], b["edge_texture"]) and torch.equal(a["depth"], b["depth"])


# ------------------------------------------------------------------------------- bad inputs

def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="validation"):
        render(0, "validation", [0], RES)
    with pytest.raises(ValueError, match="train"):
        render(0, "dev", [0], RES)  # "val" is a split (data.val_size): tests/data/test_splits.py
    with pytest.raises(ValueError, match="depth_zbuffer"):
        render(0, "train", [0], RES, ("depth_zbuffer",))
    with pytest.raises(ValueError, match="segmentation"):
        render(0, "train", [0], RES, ("nope",))
    with pytest.raises(ValueError):
        render(-1, "train", [0], RES)


def test_empty_indices():
    out = render(0, "train", [], RES, ("segmentation", "normal"))
    assert out["image"].shape == (0, 3, *RES) and out["normal"].shape == (0, 3, *RES)
    assert out["segmentation"].shape == (0, *RES)


# ---------------------------------------------------------------------------------- preview

def test_preview_grid_writes_png(tmp_path):
    from PIL import Image

    from lhl.data.synthetic.preview import save_preview_grid

    path = save_preview_grid(tmp_path / "grid.png", seed=0, count=2, resolution=(24, 32))
    assert path.exists()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
