"""``Benchmark.validate``: a bad ``data.root`` or a setting a benchmark cannot honour fails at
assembly, before a run writes anything, with one line naming the key or path."""

from __future__ import annotations

import builtins
import os
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from lhl.config.schema import DataConfig
from lhl.errors import ConfigError, DataError
from lhl.registry import BENCHMARKS, load_builtins
from lhl.data.testing import write_mtan, write_taskonomy

load_builtins()

NYU_LAYOUT = "root/{train,val}/{image,label,depth,normal}/<i>.npy"


# ---------------------------------------------------------------------- dataset builders: tmp → root
def nyu(tmp: Path) -> Path:
    return write_mtan(tmp / "nyu", "nyuv2", n_train=6, n_test=3, size=(8, 8))


def city_label(tmp: Path) -> Path:
    return write_mtan(tmp / "city", "cityscapes", n_train=4, n_test=2, size=(8, 8), label_folder="label")


def tk(tmp: Path) -> Path:
    return write_taskonomy(tmp / "tk", buildings=("allensville", "ihlen"), points=1, views=4, size=(8, 8))


def tk_test_buildings(tmp: Path) -> Path:
    return write_taskonomy(tmp / "tk", buildings=("ihlen",), points=1, views=2, size=(8, 8))


def nowhere(tmp: Path) -> Path:
    return tmp / "nowhere"


def a_file(tmp: Path) -> Path:
    path = tmp / "nyuv2.tar"
    path.write_bytes(b"not a directory")
    return path


def empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def without(*parts: str, base=nyu):
    def build(tmp: Path) -> Path:
        root = base(tmp)
        target = root.joinpath(*parts)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return root
    build.__name__ = f"{base.__name__}-without-{'/'.join(parts)}"
    return build


def unreadable(monkeypatch, root: Path) -> None:
    # tests may run as root, for whom chmod 000 changes nothing: make os.access say no instead
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path) == root else real(path, mode))


# ---------------------------------------------------------------------- the table
# (benchmark, dataset builder or None, data settings, tasks, error type or None, named in the message,
#  patch applied to the root or None)
CASES = [
    # data.root unset, missing, a file, unreadable, empty
    ("nyuv2", None, {}, None, ConfigError, ["data.root", "not set", NYU_LAYOUT], None),
    ("taskonomy", None, {}, None, ConfigError, ["data.root", "not set", "domain_<domain>.png"], None),
    ("nyuv2", nowhere, {}, None, DataError, ["{root}: no such directory", "data.root", NYU_LAYOUT], None),
    ("nyuv2", a_file, {}, None, DataError, ["{root}: not a directory", "data.root"], None),
    ("nyuv2", nyu, {}, None, DataError, ["{root}: not readable", "data.root"], unreadable),
    ("cityscapes", empty, {}, None, DataError, ["{root}: empty directory", "data.root", "label_7"], None),
    # a split missing
    ("nyuv2", without("train"), {}, None, DataError, ["{root}/train/image: missing folder", NYU_LAYOUT], None),
    ("nyuv2", without("val"), {}, None, DataError, ["{root}/val/image: missing folder"], None),
    ("nyuv2", without("train", "image", "2.npy"), {}, None, DataError, ["{root}/train/image/2.npy: missing index 2"],
     None),
    ("taskonomy", without("rgb", base=tk), {}, None, DataError, ["{root}/rgb: missing folder", "images"], None),
    ("taskonomy", tk_test_buildings, {"taskonomy_split": "tiny"}, None, DataError,
     ["{root}: no train images found", "data.root"], None),
    # a requested task's labels missing (folder or file); an unrequested one is not looked at
    ("nyuv2", without("train", "normal"), {}, None, DataError,
     ["{root}/train/normal: missing folder for task 'normal'"], None),
    ("nyuv2", without("val", "depth"), {}, ["depth"], DataError, ["{root}/val/depth: missing folder"], None),
    ("nyuv2", without("train", "normal"), {}, ["segmentation", "depth"], None, [], None),
    ("nyuv2", without("train", "depth", "4.npy"), {}, ["depth"], DataError,
     ["{root}/train/depth/4.npy: missing file", "1 of 6 train depth labels"], None),
    ("nyuv2", without("train", "depth", "4.npy"), {"train_size": 2}, ["depth"], None, [], None),  # capped away
    ("taskonomy", without("keypoints3d", base=tk), {}, None, DataError,
     ["{root}/keypoints3d: missing folder for task 'keypoints3d'"], None),
    ("taskonomy", without("keypoints3d", base=tk), {}, ["segmentation"], None, [], None),
    ("taskonomy", without("reshading", "ihlen", "point_0_view_3_domain_reshading.png", base=tk), {}, None, DataError,
     ["{root}/reshading/ihlen/point_0_view_3_domain_reshading.png: missing file", "test reshading"], None),
    # well-formed datasets, including the accepted spelling variants
    ("nyuv2", nyu, {}, None, None, [], None),
    ("cityscapes", city_label, {}, None, None, [], None),
    ("taskonomy", tk, {"taskonomy_classes": "grouped8"}, None, None, [], None),
    # settings
    ("nyuv2", nyu, {}, ["segmentation", "curvature"], ConfigError, ["tasks:", "'curvature'", "segmentation, depth"],
     None),
    ("nyuv2", nyu, {"train_size": 0}, None, ConfigError, ["data.train_size", "expected an integer >= 1"], None),
    ("nyuv2", nyu, {"taskonomy_split": "tiny"}, None, ConfigError, ["data.taskonomy_split", "only to the taskonomy"],
     None),
    ("cityscapes", city_label, {"taskonomy_depth": "unit"}, None, ConfigError, ["data.taskonomy_depth"], None),
    # synthetic benchmarks: nothing to read, no augmentation, no Taskonomy options
    ("synthetic-nyu", None, {}, None, None, [], None),
    ("synthetic-nyu", None, {"normalize": "imagenet"}, None, None, [], None),
    ("synthetic-nyu", nyu, {}, None, ConfigError, ["data.root", "only to on-disk benchmarks"], None),
    ("synthetic-city", None, {"augment": True}, None, ConfigError,
     ["data.augment", "not supported by synthetic benchmarks"], None),
    ("synthetic-taskonomy", None, {"taskonomy_classes": "grouped8"}, None, ConfigError,
     ["data.taskonomy_classes"], None),
    ("synthetic-city", None, {"test_size": -1}, None, ConfigError, ["data.test_size"], None),
    ("synthetic-nyu", None, {}, ["depth", "keypoints3d"], None, [], None),
    ("synthetic-nyu", None, {}, ["depth", "height"], ConfigError, ["tasks:", "'height'"], None),
]


def _case_id(case) -> str:
    name, build, data, tasks, error, _, patch = case
    parts = [name, getattr(build, "__name__", "no-root")]
    parts += [f"{k}={v}" for k, v in data.items()]
    parts += [f"tasks={','.join(tasks)}"] if tasks else []
    parts += [patch.__name__] if patch else []
    return "-".join(parts) + ("-ok" if error is None else f"-{error.__name__}")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_validate(case, tmp_path, monkeypatch):
    name, build, data, tasks, error, named, patch = case
    root = build(tmp_path) if build else None
    if patch:
        patch(monkeypatch, root)
    bench = BENCHMARKS.get(name)(DataConfig(root=str(root) if root else None, **data), 0)
    if error is None:
        bench.validate(tasks)
        return
    with pytest.raises(error) as caught:
        bench.validate(tasks)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    for text in named:
        assert text.replace("{root}", str(root)) in message, message
    if error is DataError and root is not None:
        assert message.startswith(str(root))  # a data error starts with the offending path


def test_validate_lists_but_never_opens_files(monkeypatch, tmp_path):
    roots = {"nyuv2": nyu(tmp_path), "cityscapes": city_label(tmp_path), "taskonomy": tk(tmp_path)}
    opened = []
    real_open, real_load, real_image = builtins.open, np.load, PIL.Image.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(f) or real_open(f, *a, **k))
    monkeypatch.setattr(np, "load", lambda f, *a, **k: opened.append(f) or real_load(f, *a, **k))
    monkeypatch.setattr(PIL.Image, "open", lambda f, *a, **k: opened.append(f) or real_image(f, *a, **k))
    for name, root in roots.items():
        BENCHMARKS.get(name)(DataConfig(root=str(root)), 0).validate()
    assert not [p for p in opened if str(tmp_path) in str(p)]


def test_num_images_after_validate_counts_the_capped_split(tmp_path):
    root = nyu(tmp_path)
    bench = BENCHMARKS.get("nyuv2")(DataConfig(root=str(root), train_size=4, test_size=10), 0)
    bench.validate(["depth"])
    assert (bench.num_images("train"), bench.num_images("test")) == (4, 3)


def test_root_with_a_tilde_and_the_not_set_message_for_empty_string(tmp_path, monkeypatch):
    root = nyu(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    BENCHMARKS.get("nyuv2")(DataConfig(root="~/nyu"), 0).validate()
    with pytest.raises(ConfigError, match="data.root: not set"):
        BENCHMARKS.get("nyuv2")(DataConfig(root=""), 0).validate()
    assert root.is_dir()


def test_an_unlistable_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    root = nyu(tmp_path)
    real = Path.iterdir

    def iterdir(self):
        if self == root / "val" / "depth":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(DataError) as caught:
        BENCHMARKS.get("nyuv2")(DataConfig(root=str(root)), 0).validate(["depth"])
    assert str(caught.value) == f"{root / 'val' / 'depth'}: cannot be listed (Permission denied)"
