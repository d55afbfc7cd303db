"""``Benchmark.fingerprint``: content-based, independent of where the data lies and of
``data.num_workers``, dependent on every setting that changes the samples."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lhl.config.schema import DataConfig
from lhl.data.testing import write_mtan, write_taskonomy
from lhl.registry import BENCHMARKS, load_builtins

load_builtins()


def fingerprint(name: str, root: Path | None = None, tasks=None, seed: int = 0, **data) -> str:
    data.setdefault("resolution", [16, 16])
    return BENCHMARKS.get(name)(DataConfig(root=str(root) if root else None, **data), seed).fingerprint(tasks)


@pytest.fixture
def nyu(tmp_path):
    """Files larger than the three sampled 4 KiB blocks: 64×96 float32 images (72 KiB)."""
    return write_mtan(tmp_path / "nyu", "nyuv2", n_train=5, n_test=3, size=(64, 96), block=8)


def _change_middle_pixel(path: Path) -> None:
    array = np.load(path)
    array[32, 48] = array[32, 48] * 0.5 + 0.25  # stays valid, differs
    np.save(path, array)


@pytest.mark.parametrize("relative", ["train/image/2.npy", "val/depth/1.npy", "train/normal/4.npy",
                                      "val/label/0.npy"])
def test_one_pixel_deep_inside_a_file_changes_it(nyu, relative):
    before = fingerprint("nyuv2", nyu)
    path = nyu / relative
    assert path.stat().st_size > 3 * 4096
    _change_middle_pixel(path)
    assert fingerprint("nyuv2", nyu) != before


def test_one_pixel_of_a_png_label_changes_it(tmp_path):
    root = write_taskonomy(tmp_path / "tk", buildings=("allensville",), points=1, views=4, size=(64, 64))
    before = fingerprint("taskonomy", root)
    path = root / "keypoints3d" / "allensville" / "point_0_view_1_domain_keypoints3d.png"
    pixels = np.array(Image.open(path))
    pixels[40, 30] ^= 1
    Image.fromarray(pixels).save(path)
    assert fingerprint("taskonomy", root) != before


def test_only_the_given_tasks_labels_count(nyu):
    before = fingerprint("nyuv2", nyu, tasks=["depth"])
    _change_middle_pixel(nyu / "train" / "normal" / "1.npy")
    assert fingerprint("nyuv2", nyu, tasks=["depth"]) == before
    _change_middle_pixel(nyu / "train" / "depth" / "1.npy")
    assert fingerprint("nyuv2", nyu, tasks=["depth"]) != before
    assert fingerprint("nyuv2", nyu, tasks=["depth", "normal"]) == fingerprint("nyuv2", nyu, tasks=["normal", "depth"])
    assert fingerprint("nyuv2", nyu, tasks=["depth", "normal"]) != fingerprint("nyuv2", nyu, tasks=["depth"])


def test_moving_or_copying_the_root_keeps_it(nyu, tmp_path):
    before = fingerprint("nyuv2", nyu)
    assert str(nyu) not in before and "nyu" not in before.replace("nyuv2", "")
    copy = shutil.copytree(nyu, tmp_path / "elsewhere" / "copy")
    assert fingerprint("nyuv2", copy) == before
    moved = nyu.rename(tmp_path / "renamed")
    assert fingerprint("nyuv2", moved) == before


def test_folder_spelling_variants_give_the_same_fingerprint(tmp_path):
    label_7 = write_mtan(tmp_path / "a", "cityscapes", n_train=4, n_test=2)
    label = write_mtan(tmp_path / "b", "cityscapes", n_train=4, n_test=2, label_folder="label")
    assert fingerprint("cityscapes", label_7) == fingerprint("cityscapes", label)


def test_settings_that_change_the_samples_change_it_and_num_workers_does_not(nyu):
    base = fingerprint("nyuv2", nyu)
    assert base.startswith("nyuv2 train=5 test=3 files=")
    assert fingerprint("nyuv2", nyu, num_workers=4) == base
    for change in ({"resolution": [32, 48]}, {"train_size": 3}, {"test_size": 2}, {"normalize": "imagenet"},
                   {"augment": True}, {"chunking": "contiguous"}):
        assert fingerprint("nyuv2", nyu, **change) != base, change
    assert fingerprint("nyuv2", nyu, train_size=3).startswith("nyuv2 train=3 test=3 ")


def test_taskonomy_options_change_it(tmp_path):
    root = write_taskonomy(tmp_path / "tk", buildings=("allensville", "ihlen"), points=1, views=4, size=(8, 8))
    base = fingerprint("taskonomy", root)
    for change in ({"taskonomy_classes": "grouped8"}, {"taskonomy_depth": "unit"}, {"taskonomy_split": "tiny"}):
        assert fingerprint("taskonomy", root, **change) != base, change


def test_synthetic_covers_seed_resolution_sizes_and_name():
    base = fingerprint("synthetic-nyu", train_size=20, test_size=10)
    assert base.startswith("synthetic-nyu train=20 test=10 render=")
    assert fingerprint("synthetic-nyu", train_size=20, test_size=10, num_workers=3) == base
    for other in (fingerprint("synthetic-nyu", train_size=20, test_size=10, seed=1),
                  fingerprint("synthetic-nyu", train_size=20, test_size=10, resolution=[16, 24]),
                  fingerprint("synthetic-nyu", train_size=21, test_size=10),
                  fingerprint("synthetic-nyu", train_size=20, test_size=10, normalize="imagenet"),
                  fingerprint("synthetic-city", train_size=20, test_size=10)):
        assert other != base


_OTHER_PROCESS = """
import sys, torch
torch.set_num_threads(2)
import lhl.data
from lhl.config.schema import DataConfig
from lhl.registry import BENCHMARKS
for name, root in (("synthetic-taskonomy", None), ("nyuv2", sys.argv[1])):
    print(BENCHMARKS.get(name)(DataConfig(root=root, resolution=[24, 32]), 3).fingerprint())
"""


def test_deterministic_across_processes_and_thread_counts(nyu):
    # this process runs torch with one thread (tests/conftest.py); the other with two and
    # another PYTHONHASHSEED
    env = {**os.environ, "PYTHONHASHSEED": "12345",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(nyu)], capture_output=True, text=True,
                         env=env, check=True).stdout.split("\n")[:2]
    here = [BENCHMARKS.get(name)(DataConfig(root=root, resolution=[24, 32]), 3).fingerprint()
            for name, root in (("synthetic-taskonomy", None), ("nyuv2", str(nyu)))]
    assert out == here
