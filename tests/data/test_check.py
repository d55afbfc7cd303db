"""``lhl data check`` finds every planted defect and names its path."""

import numpy as np
from PIL import Image

from lhl.cli import main
from lhl.data.testing import write_mtan, write_taskonomy


def test_clean_datasets_pass(nyuv2_root, cityscapes_root, taskonomy_root, capsys):
    for root, name in ((nyuv2_root, "nyuv2"), (cityscapes_root, "cityscapes"), (taskonomy_root, "taskonomy")):
        assert main(["data", "check", str(root), "--benchmark", name]) == 0
        out = capsys.readouterr().out
        assert "no problems found" in out and "train: " in out and "test: " in out
    assert "depth_euclidean" in out and "uint16" in out and "%" in out


def test_report_counts_shapes_dtypes_ranges(nyuv2_root, capsys):
    assert main(["data", "check", str(nyuv2_root), "--benchmark", "nyuv2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  train: 8 images" in lines and "  test: 4 images" in lines
    seg = next(line for line in lines if line.split()[:2] == ["train", "segmentation"])
    assert seg.split()[2:5] == ["8", "16x24", "float32"] and "[0, 12]" in seg and seg.endswith("%")
    depth = next(line for line in lines if line.split()[:2] == ["test", "depth"])
    assert "16x24x1" in depth


def test_planted_npy_defects(tmp_path, capsys):
    root = write_mtan(tmp_path, "nyuv2", n_train=8, n_test=3)
    train, val = root / "train", root / "val"
    (train / "depth" / "2.npy").unlink()                                   # missing file
    np.save(train / "normal" / "1.npy", np.zeros((8, 8, 3), np.float32))  # wrong shape
    depth = np.load(train / "depth" / "3.npy")
    depth[2, 2] = np.nan
    np.save(train / "depth" / "3.npy", depth)                              # NaN
    label = np.load(val / "label" / "0.npy")
    label[1, 1] = 20
    np.save(val / "label" / "0.npy", label)                                # label out of range
    (train / "image" / "5.npy").unlink()                                   # missing index
    np.save(train / "depth" / "9.npy", depth)                              # file without image
    (val / "normal" / "2.npy").write_bytes(b"truncated")                   # unreadable
    assert main(["data", "check", str(root), "--benchmark", "nyuv2"]) == 1
    out = capsys.readouterr().out
    expected = {
        train / "depth" / "2.npy": "missing file",
        train / "normal" / "1.npy": "shape mismatch: expected 16x24",
        train / "depth" / "3.npy": "1 NaN or infinite values",
        val / "label" / "0.npy": "labels outside the class range [-1, 12]: found [20]",
        train / "image" / "5.npy": "missing index 5",
        train / "depth" / "9.npy": "no image with this index",
        val / "normal" / "2.npy": "unreadable .npy file",
    }
    for path, message in expected.items():
        assert f"{path}: {message}" in out, (path, out)
    assert f"{len(expected)} problem(s):" in out


def test_planted_png_defects_and_missing_folder(tmp_path, capsys):
    root = write_taskonomy(tmp_path, buildings=("allensville",), points=1, views=4, size=(8, 8))
    normal = root / "normal" / "allensville" / "point_0_view_1_domain_normal.png"
    normal.write_bytes(normal.read_bytes()[:60])                               # truncated PNG
    missing = root / "reshading" / "allensville" / "point_0_view_2_domain_reshading.png"
    missing.unlink()
    bad_seg = root / "segment_semantic" / "allensville" / "point_0_view_3_domain_segment_semantic.png"
    Image.fromarray(np.full((8, 8), 30, np.uint8)).save(bad_seg)              # label 30 > 17
    small = root / "keypoints2d" / "allensville" / "point_0_view_0_domain_keypoints2d.png"
    Image.fromarray(np.zeros((4, 8), np.uint16)).save(small)                   # wrong shape
    (root / "keypoints3d").rename(root / "kp3d-moved")                         # missing domain
    assert main(["data", "check", str(root), "--benchmark", "taskonomy"]) == 1
    out = capsys.readouterr().out
    assert f"{normal}: unreadable image file" in out
    assert f"{missing}: missing file" in out
    assert f"{bad_seg}: labels outside the class range [0, 17]: found [30]" in out
    assert f"{small}: shape mismatch: expected 8x8 (the image's size), found 4x8" in out
    assert f"{root / 'keypoints3d'}: missing folder for task 'keypoints3d'" in out


def test_cli_errors(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "none"), "--benchmark", "nyuv2"]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path), "--benchmark", "synthetic-nyu"]) == 2
    assert "nothing to check" in capsys.readouterr().err
    root = write_taskonomy(tmp_path / "t", buildings=("ihlen",), points=1, views=1, size=(8, 8))
    assert main(["data", "check", str(root), "--benchmark", "taskonomy", "--set", "data.taskonomy_split=tiny",
                 "--limit", "1"]) == 1  # ihlen is a test building: no training images
    assert "no train images found" in capsys.readouterr().out
