"""Taskonomy loader: decodings, invalid masks, file-name spellings, splits, class maps."""

import numpy as np
import pytest
import torch
from PIL import Image

from lhl.config.schema import ConfigError, DataConfig
from lhl.errors import DataError
from lhl.data.taskonomy import CLASS_MAPS, TASK_ORDER, TINY_BUILDINGS, Taskonomy
from lhl.data.testing import write_taskonomy


def tk(root, **data):
    data.setdefault("resolution", [4, 4])
    return Taskonomy(DataConfig(root=str(root), **data), 0)


def put(root, domain, array, building="allensville", point=0, view=0, spelling=None):
    path = root / domain / building / f"point_{point}_view_{view}_domain_{spelling or domain}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def one_image(tmp_path):
    """One training image (view 0) and one test image (view 3) with hand-picked labels."""
    for view in (0, 3):
        put(tmp_path, "rgb", np.full((4, 4, 3), 51, np.uint8), view=view)
        put(tmp_path, "segment_semantic", np.array([[0, 1, 2, 17]] * 4, np.uint8), view=view,
            spelling="segmentsemantic" if view == 0 else "segment_semantic")
        put(tmp_path, "depth_zbuffer", np.array([[512, 1024, 65535, 0]] * 4, np.uint16), view=view)
        put(tmp_path, "depth_euclidean", np.array([[256, 65535, 512, 512]] * 4, np.uint16), view=view)
        normal = np.zeros((4, 4, 3), np.uint8)
        normal[:] = (255, 128, 128)
        normal[:, 1] = 128
        normal[:, 2] = (127, 127, 128)
        put(tmp_path, "normal", normal, view=view)
        put(tmp_path, "principal_curvature", np.array([[[127, 255, 0]] * 4] * 4, np.uint8), view=view)
        put(tmp_path, "reshading", np.full((4, 4, 3), 255, np.uint8), view=view)
        put(tmp_path, "edge_texture", np.array([[0, 65535, 32768, 0]] * 4, np.uint16), view=view)
        put(tmp_path, "keypoints2d", np.array([[0, 255, 51, 0]] * 4, np.uint8), view=view)  # an 8-bit copy
        for domain in ("edge_occlusion", "keypoints3d"):
            put(tmp_path, domain, np.zeros((4, 4), np.uint16), view=view)
    return tmp_path


def test_decodings_and_invalid_masks(one_image):
    bench = tk(one_image)
    assert bench.num_images("train") == 1 and bench.num_images("test") == 1
    item = bench.dataset("train", [0], list(TASK_ORDER))[0]
    torch.testing.assert_close(item["image"], torch.full((3, 4, 4), 0.2))
    assert item["segmentation"][0].tolist() == [-1, 0, 1, 16]  # raw 0 ignored, r → r−1
    assert item["depth"][0, 0].tolist() == [1.0, 2.0, 0.0, 0.0]  # metres; 65535 (and 0) invalid
    assert item["depth_euclidean"][0, 0].tolist() == [0.5, 0.0, 1.0, 1.0]
    assert item["normal"][:, 0, 0].tolist() == pytest.approx([1.0, 0.0039, 0.0039], abs=1e-3)
    assert torch.equal(item["normal"][:, :, 1:3], torch.zeros(3, 4, 2))  # grey 127/128 = invalid
    assert item["principal_curvature"].shape == (2, 4, 4)
    assert item["principal_curvature"][:, 0, 0].tolist() == [0.0, 1.0]
    assert torch.equal(item["reshading"], torch.ones(1, 4, 4))
    assert item["edge_texture"][0, 0].tolist() == pytest.approx([0.0, 1.0, 32768 / 65535, 0.0])
    assert item["keypoints2d"][0, 0].tolist() == pytest.approx([0.0, 1.0, 0.2, 0.0])  # 8-bit decoding
    assert not torch.isnan(item["edge_texture"]).any()  # zeros are valid edge values


def test_unit_depth_scale_and_class_maps(one_image):
    item = tk(one_image, taskonomy_depth="unit", taskonomy_classes="grouped8").dataset(
        "test", [0], ["depth", "segmentation"])[0]
    assert item["depth"][0, 0].tolist() == pytest.approx([512 / 65535, 1024 / 65535, 0, 0])
    assert item["segmentation"][0].tolist() == [-1, 0, 7, 7]
    specs = tk(one_image, taskonomy_classes="grouped8").task_specs()
    assert specs["segmentation"].channels == 8
    assert specs["segmentation"].options == {"ignore_index": -1, "metric": "loss"}
    assert tk(one_image).task_specs()["segmentation"].channels == 17
    custom = [-1] * 18
    custom[17] = 2
    bench = tk(one_image, taskonomy_classes=custom)
    assert bench.task_specs()["segmentation"].channels == 3
    assert bench.dataset("train", [0], ["segmentation"])[0]["segmentation"][0].tolist() == [-1, -1, -1, 2]
    with pytest.raises(ConfigError, match="18 entries"):
        tk(one_image, taskonomy_classes=[0, 1])
    assert all(len(m) == 18 for m in CLASS_MAPS.values())
    assert all(spec.options.get("metric") == "loss" for name, spec in tk(one_image).task_specs().items()
               if name in ("segmentation", "depth", "normal", "depth_euclidean"))


def test_resize_to_configured_size(one_image):
    item = tk(one_image, resolution=[8, 8]).dataset("train", [0], ["depth", "segmentation", "normal"])[0]
    assert item["image"].shape == (3, 8, 8) and item["segmentation"].shape == (8, 8)
    # bilinear between valid pixels; the invalid neighbour of 2 m does not pull it down
    assert item["depth"][0, 0].tolist() == pytest.approx([1.0, 1.25, 1.75, 2.0, 0, 0, 0, 0])
    assert item["segmentation"][0].tolist() == [-1, -1, 0, 0, 1, 1, 16, 16]


def test_both_segmentation_spellings_and_8bit_domains(taskonomy_root):
    bench = tk(taskonomy_root, resolution=[16, 16])
    entries = bench.entries("train")
    buildings = [entry[0] for entry in entries]
    assert set(buildings) == {"allensville", "collierville", "ihlen"} and len(entries) == 18
    first = buildings.index("allensville")  # its files are spelled 'segmentsemantic'
    other = buildings.index("ihlen")
    dataset = bench.dataset("train", [first, other], ["segmentation"])
    assert dataset[0]["segmentation"].shape == dataset[1]["segmentation"].shape == (16, 16)
    root = write_taskonomy(taskonomy_root.parent / "tk8", buildings=("ihlen",), points=1, views=4,
                           segmentation_folder="segmentsemantic", eight_bit=("edge_texture",))
    item = tk(root, resolution=[16, 16]).dataset("test", [0], ["segmentation", "edge_texture"])[0]
    assert item["edge_texture"].max() <= 1 and item["segmentation"].max() <= 16


def test_paper_and_tiny_splits(taskonomy_root):
    paper = tk(taskonomy_root, resolution=[16, 16])
    assert all(view in (0, 1, 2) for _, _, view in paper.entries("train"))
    assert all(view == 3 for _, _, view in paper.entries("test"))
    tiny = tk(taskonomy_root, resolution=[16, 16], taskonomy_split="tiny")
    assert {b for b, _, _ in tiny.entries("train")} == {"allensville"}
    assert {b for b, _, _ in tiny.entries("test")} == {"ihlen"}  # collierville is a validation building
    assert len(tiny.entries("train")) == 8
    assert len(TINY_BUILDINGS["train"]) == 25 and len(TINY_BUILDINGS["test"]) == 5
    capped = tk(taskonomy_root, resolution=[16, 16], train_size=6)
    assert len({b for b, _, _ in capped.entries("train")}) == 3  # evenly spaced over buildings


def test_errors_name_the_file(one_image):
    put(one_image, "depth_zbuffer", np.zeros((4, 4), np.uint8))  # 8-bit depth
    put(one_image, "segment_semantic", np.full((4, 4), 18, np.uint8), spelling="segmentsemantic")
    path = one_image / "normal" / "allensville" / "point_0_view_0_domain_normal.png"
    path.write_bytes(path.read_bytes()[:40])
    dataset = tk(one_image).dataset("train", [0], ["depth"])
    with pytest.raises(DataError, match="depth_zbuffer.png: expected a 16-bit PNG"):
        dataset[0]
    with pytest.raises(DataError, match=r"segmentsemantic.png: labels outside the class range \[0, 17\]: found \[18\]"):
        tk(one_image).dataset("train", [0], ["segmentation"])[0]
    with pytest.raises(DataError, match="normal.png: unreadable image file"):
        tk(one_image).dataset("train", [0], ["normal"])[0]
    (one_image / "keypoints3d").rename(one_image / "elsewhere")
    with pytest.raises(DataError, match="missing folder for task 'keypoints3d'"):
        tk(one_image).dataset("train", [0], ["keypoints3d"])[0]
