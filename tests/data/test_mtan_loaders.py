"""NYUv2 and CityScapes loaders on fixtures in MTAN's exact .npy layout."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lhl.config.schema import ConfigError, DataConfig
from lhl.errors import DataError
from lhl.data.testing import write_mtan
from lhl.registry import BENCHMARKS, load_builtins

load_builtins()


def bench(name, root, **data):
    return BENCHMARKS.get(name)(DataConfig(root=str(root), resolution=data.pop("resolution", [16, 24]), **data), 0)


def test_nyuv2_items_decode_to_documented_units(nyuv2_root):
    nyu = bench("nyuv2", nyuv2_root)
    assert nyu.num_images("train") == 8 and nyu.num_images("test") == 4
    item = nyu.dataset("test", [2], ["segmentation", "depth", "normal"])[0]
    image = np.load(nyuv2_root / "val" / "image" / "2.npy")
    label = np.load(nyuv2_root / "val" / "label" / "2.npy")
    depth = np.load(nyuv2_root / "val" / "depth" / "2.npy")
    normal = np.load(nyuv2_root / "val" / "normal" / "2.npy")
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 16, 24)
    assert torch.equal(item["image"], torch.from_numpy(np.moveaxis(image, -1, 0)))
    assert item["segmentation"].dtype == torch.int64
    assert torch.equal(item["segmentation"], torch.from_numpy(label).long())
    assert (item["segmentation"] == -1).any()
    assert item["depth"].shape == (1, 16, 24) and torch.equal(item["depth"][0], torch.from_numpy(depth[..., 0]))
    assert (item["depth"] == 0).any()
    assert item["normal"].shape == (3, 16, 24)
    invalid = (item["normal"] == 0).all(0)
    assert invalid.any() and torch.allclose(item["normal"][:, ~invalid].norm(dim=0), torch.tensor(1.0))
    assert torch.equal(item["normal"], torch.from_numpy(np.moveaxis(normal, -1, 0)))
    specs = nyu.task_specs()
    assert specs["segmentation"].channels == 13 and specs["segmentation"].options["ignore_index"] == -1


def test_items_hold_only_requested_tasks(nyuv2_root):
    item = bench("nyuv2", nyuv2_root).dataset("train", [0, 1], ["depth"])[1]
    assert set(item) == {"image", "index", "depth"}


@pytest.mark.parametrize("folder", ["label_7", "label"])
def test_cityscapes_accepts_both_label_folders(tmp_path, folder):
    root = write_mtan(tmp_path, "cityscapes", n_train=4, n_test=2, label_folder=folder)
    city = bench("cityscapes", root)
    item = city.dataset("train", [3], ["segmentation", "depth"])[0]
    label = np.load(root / "train" / folder / "3.npy")
    assert torch.equal(item["segmentation"], torch.from_numpy(label).long())
    assert item["segmentation"].max() <= 6 and city.task_specs()["segmentation"].channels == 7
    assert city.make_task("depth").zoom == "inverse"  # disparity: multiplied by the zoom factor


def test_resize_caps_and_imagenet_normalisation(nyuv2_root):
    nyu = bench("nyuv2", nyuv2_root, resolution=[8, 12], train_size=3, normalize="imagenet")
    assert nyu.num_images("train") == 3 and nyu.entries("train") == [0, 2, 5]
    item = nyu.dataset("train", [0], ["segmentation", "depth", "normal"])[0]
    assert item["image"].shape == (3, 8, 12) and item["segmentation"].shape == (8, 12)
    assert item["image"].min() < 0  # standardised


def test_workers_load_the_same_items(nyuv2_root):
    dataset = bench("nyuv2", nyuv2_root).dataset("train", list(range(8)), ["segmentation"])
    serial = next(iter(DataLoader(dataset, batch_size=8)))
    parallel = next(iter(DataLoader(dataset, batch_size=8, num_workers=1)))
    assert torch.equal(serial["segmentation"], parallel["segmentation"])
    assert torch.equal(serial["image"], parallel["image"])


def test_training_split_augments_only_when_asked(nyuv2_root):
    plain = bench("nyuv2", nyuv2_root)
    augmented = bench("nyuv2", nyuv2_root, augment=True)
    assert plain.dataset("train", [0], ["depth"]).augment is None
    assert augmented.dataset("train", [0], ["depth"]).augment is not None
    assert augmented.dataset("test", [0], ["depth"]).augment is None


def test_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.root"):
        BENCHMARKS.get("nyuv2")(DataConfig(), 0).num_images("train")
    with pytest.raises(DataError, match="no such directory"):
        bench("nyuv2", tmp_path / "nowhere").num_images("train")
    root = write_mtan(tmp_path / "d", "nyuv2", n_train=4, n_test=2)
    np.save(root / "train" / "depth" / "1.npy", np.zeros((5, 5, 1), np.float32))
    label = np.load(root / "train" / "label" / "2.npy")
    label[0, 0] = 13
    np.save(root / "train" / "label" / "2.npy", label)
    (root / "train" / "normal" / "3.npy").write_bytes(b"\x93NUMPY garbage")
    nyu = bench("nyuv2", root)
    with pytest.raises(DataError, match=r"train/depth/1\.npy: shape mismatch: expected 16x24 .* found 5x5"):
        nyu.dataset("train", [1], ["depth"])[0]
    with pytest.raises(DataError, match=r"train/label/2\.npy: labels outside the class range \[-1, 12\]: found \[13\]"):
        nyu.dataset("train", [2], ["segmentation"])[0]
    with pytest.raises(DataError, match=r"train/normal/3\.npy: unreadable \.npy file"):
        nyu.dataset("train", [3], ["normal"])[0]
    (root / "train" / "image" / "1.npy").unlink()
    with pytest.raises(DataError, match=r"train/image/1\.npy: missing index 1"):
        bench("nyuv2", root).num_images("train")
