"""Joint augmentation and resizing keep image and labels aligned; each label transforms as its task says."""

import numpy as np
import pytest
import torch

from lhl.data.testing import block_image, mtan_labels
from lhl.data.transforms import RandomScaleCrop, normalize_image, resize_sample, scale_crop_flip
from lhl.tasks import DepthTask, NormalTask, RegressionTask, SegmentationTask

TASKS = {"segmentation": SegmentationTask("segmentation", 13), "depth": DepthTask("depth"),
         "normal": NormalTask("normal")}


def _sample(size=(48, 64), block=8, seed=0):
    image = block_image(np.random.default_rng(seed), size, block)
    labels = mtan_labels(image, 13)
    return {"image": torch.from_numpy(np.moveaxis(image, -1, 0).copy()),
            "segmentation": torch.from_numpy(labels["label"]).long(),
            "depth": torch.from_numpy(np.moveaxis(labels["depth"], -1, 0).copy()),
            "normal": torch.from_numpy(np.moveaxis(labels["normal"], -1, 0).copy())}


def _pure(image):
    """Pixels whose 3×3 neighbourhood has one colour (interpolation there is exact)."""
    padded = torch.nn.functional.pad(image[None], (1, 1, 1, 1), mode="replicate")[0]
    same = torch.ones(image.shape[-2:], dtype=torch.bool)
    for dy in range(3):
        for dx in range(3):
            shifted = padded[:, dy:dy + image.shape[1], dx:dx + image.shape[2]]
            same &= (shifted - image).abs().amax(0) < 1e-6
    return same


def _expected(image):
    labels = mtan_labels(np.moveaxis(image.numpy(), 0, -1), 13)
    return (torch.from_numpy(labels["label"]).long(), torch.from_numpy(labels["depth"][..., 0]),
            torch.from_numpy(np.moveaxis(labels["normal"], -1, 0).copy()))


@pytest.mark.parametrize("scale, top, left, flip", [(1.0, 0, 0, True), (1.5, 5, 11, False), (1.2, 3, 7, True),
                                                    (1.5, 16, 21, True)])
def test_crop_and_flip_keep_labels_aligned(scale, top, left, flip):
    out = scale_crop_flip(_sample(), TASKS, scale, top, left, flip)
    assert out["image"].shape == (3, 48, 64) and out["segmentation"].shape == (48, 64)
    pure = _pure(out["image"])
    assert pure.float().mean() > 0.3
    seg, depth, normal = _expected(out["image"])
    assert torch.equal(out["segmentation"][pure], seg[pure])
    torch.testing.assert_close(out["depth"][0][pure], depth[pure] / scale)
    if flip:  # the image was mirrored, so the true normals point the other way in x
        normal[0] = -normal[0]
    torch.testing.assert_close(out["normal"][:, pure], normal[:, pure], atol=1e-5, rtol=0)


def test_flip_negates_normal_x_exactly():
    sample = _sample()
    out = scale_crop_flip(sample, TASKS, 1.0, 0, 0, True)
    torch.testing.assert_close(out["normal"][0], -sample["normal"][0].flip(-1))
    torch.testing.assert_close(out["normal"][1:], sample["normal"][1:].flip(-1))
    assert torch.equal(out["segmentation"], sample["segmentation"].flip(-1))


def test_depth_divided_disparity_multiplied_invalid_kept():
    sample = _sample()
    city = dict(TASKS, depth=DepthTask("depth", zoom="inverse"))  # CityScapes' disparity
    out_depth = scale_crop_flip(sample, TASKS, 1.5, 0, 0, False)["depth"]
    out_disp = scale_crop_flip(sample, city, 1.5, 0, 0, False)["depth"]
    valid = out_depth != 0
    assert torch.equal(valid, out_disp != 0) and 0 < valid.float().mean() < 1
    torch.testing.assert_close(out_disp[valid], out_depth[valid] * 1.5 * 1.5)


def test_random_scale_crop_draws_scales_and_flips():
    torch.manual_seed(0)
    sample = _sample(size=(30, 40))
    augment = RandomScaleCrop()
    outs = [augment(sample, TASKS) for _ in range(40)]
    unchanged = sum(torch.equal(o["image"], sample["image"]) for o in outs)
    flipped = sum(torch.equal(o["image"], sample["image"].flip(-1)) for o in outs)
    assert unchanged > 0 and flipped > 0 and unchanged + flipped < 40  # some scale > 1 happened
    for out in outs:
        pure = _pure(out["image"])
        seg, _, _ = _expected(out["image"])
        assert torch.equal(out["segmentation"][pure], seg[pure])


def test_masked_resize_never_leaks_invalid_values():
    depth = torch.full((1, 8, 8), 2.0)
    depth[:, :, :4] = 0  # left half invalid
    small = DepthTask("depth").resize_label(depth, (4, 4))
    assert torch.equal(small[0, :, :2], torch.zeros(4, 2))
    torch.testing.assert_close(small[0, :, 2:], torch.full((4, 2), 2.0))
    dense = torch.ones(1, 8, 8)
    dense[0, 0, 0] = float("nan")
    out = RegressionTask("dense", 1).resize_label(dense, (16, 16))
    assert torch.isnan(out).sum() == 4 and torch.allclose(out[~torch.isnan(out)], torch.tensor(1.0))
    normal = torch.zeros(3, 8, 8)
    normal[2] = 1.0
    normal[:, 0] = 0
    up = NormalTask("normal").resize_label(normal, (16, 16))
    assert torch.equal(up[:, :2], torch.zeros(3, 2, 16))
    torch.testing.assert_close(up[:, 2:].norm(dim=0), torch.ones(14, 16))


def test_resize_sample_and_normalize():
    out = resize_sample(_sample(), TASKS, (24, 32))
    assert out["image"].shape == (3, 24, 32) and out["segmentation"].dtype == torch.int64
    assert set(out["segmentation"].unique().tolist()) <= set(range(-1, 13))
    image = torch.full((3, 2, 2), 0.5)
    assert torch.allclose(normalize_image(image)[0], torch.tensor((0.5 - 0.485) / 0.229))
