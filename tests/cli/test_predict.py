"""``lhl predict``: colour-mapped predictions of a finished run on image files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import lhl
from lhl.cli import main
from lhl.config import load_config
from lhl.config.schema import DataConfig
from lhl.data.transforms import normalize_image, resize_image
from lhl.engine.prediction import prepare_image, read_image
from lhl.engine.trainer import Trainer
from lhl.errors import DataError
from lhl.report.colormaps import PALETTE, colorize
from lhl.tasks import DepthTask, NormalTask, RegressionTask, SegmentationTask

TASKS = ("segmentation", "depth", "normal")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    Trainer(load_config(preset="smoke"), out, quiet=True).run()
    return out


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).save(folder / "room.png")
    Image.fromarray((rng.random((21, 33, 4)) * 255).astype(np.uint8), "RGBA").save(folder / "alpha.png")
    Image.fromarray((rng.random((50, 50, 3)) * 255).astype(np.uint8)).save(folder / "photo.jpg", quality=90)
    Image.fromarray((rng.random((12, 20)) * 255).astype(np.uint8), "L").save(folder / "grey.png")
    return folder


SIZES = {"room.png": (40, 60), "alpha.png": (21, 33), "photo.jpg": (50, 50), "grey.png": (12, 20)}


def test_one_picture_per_task_per_image_at_the_image_size(finished, images, tmp_path, capsys):
    out = tmp_path / "out"
    paths = [str(images / name) for name in SIZES]
    assert main(["predict", str(finished), *paths, "--out", str(out)]) == 0
    assert f"wrote {len(SIZES) * len(TASKS)} files to {out}" in capsys.readouterr().out
    expected = {f"{name.split('.')[0]}_{task}.png" for name in SIZES for task in TASKS}
    assert {p.name for p in out.iterdir()} == expected
    for name, (height, width) in SIZES.items():
        for task in TASKS:
            with Image.open(out / f"{name.split('.')[0]}_{task}.png") as picture:
                assert picture.mode == "RGB" and picture.size == (width, height)


def test_raw_predictions_are_the_models(finished, images, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(finished), str(images / "room.png"), "--raw", "--out", str(out)]) == 0
    assert {p.name for p in out.glob("*.npy")} == {f"room_{task}.npy" for task in TASKS}
    segmentation = np.load(out / "room_segmentation.npy")
    depth, normal = np.load(out / "room_depth.npy"), np.load(out / "room_normal.npy")
    assert segmentation.shape == (16, 16) and segmentation.dtype == np.int64  # the run's data.resolution
    assert depth.shape == (1, 16, 16) and depth.dtype == np.float32
    assert normal.shape == (3, 16, 16) and np.allclose(np.linalg.norm(normal, axis=0), 1, atol=1e-5)
    loaded = lhl.load_run(finished)
    image = prepare_image(read_image(images / "room.png"), loaded.config.data)
    with torch.no_grad():
        outputs = loaded.model(image[None])
    assert np.array_equal(segmentation, loaded.tasks["segmentation"].postprocess(outputs["segmentation"])[0].numpy())
    assert np.array_equal(depth, outputs["depth"][0].numpy())
    # the segmentation picture is the palette of the raw prediction (same size here: no resize)
    small = tmp_path / "small"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(images / "small.png")
    assert main(["predict", str(finished), str(images / "small.png"), "--raw", "--out", str(small)]) == 0
    labels = np.load(small / "small_segmentation.npy")
    assert np.array_equal(np.asarray(Image.open(small / "small_segmentation.png")), PALETTE[labels])


def test_first_phase_has_one_head(finished, images, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(finished), str(images / "room.png"), "--phase", "1", "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["room_segmentation.png"]


def test_reading_and_preparing_images(images):
    image = read_image(images / "room.png")
    assert image.shape == (3, 40, 60) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert read_image(images / "alpha.png").shape == (3, 21, 33)  # alpha dropped
    grey = read_image(images / "grey.png")
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[0], grey[2])
    plain = prepare_image(image, DataConfig(resolution=[16, 24]))
    assert torch.equal(plain, resize_image(image, (16, 24)))
    normalised = prepare_image(image, DataConfig(resolution=[16, 24], normalize="imagenet"))
    assert torch.equal(normalised, normalize_image(resize_image(image, (16, 24))))


def test_colour_maps():
    segmentation = SegmentationTask("segmentation", 13)
    labels = torch.tensor([[0, 1], [12, -1]])
    picture = colorize(segmentation, labels)
    assert picture.dtype == np.uint8 and picture.shape == (2, 2, 3)
    assert picture[0, 0].tolist() == [31, 119, 180]  # tab10's first colour, as in 'lhl data preview'
    assert picture[1, 1].tolist() == [0, 0, 0]  # ignore
    assert len({tuple(c) for c in PALETTE[:40].tolist()}) == 40  # distinct, fixed
    normal = torch.tensor([[[1.0]], [[0.0]], [[-1.0]]])
    assert colorize(NormalTask("normal"), normal)[0, 0].tolist() == [255, 128, 0]
    depth = torch.tensor([[[1.0, 3.0], [2.0, float("nan")]]])
    picture = colorize(DepthTask("depth"), depth)
    from matplotlib import colormaps

    viridis = colormaps["viridis"]
    assert picture[0, 0].tolist() == list(viridis(0.0, bytes=True)[:3])
    assert picture[0, 1].tolist() == list(viridis(1.0, bytes=True)[:3])
    assert picture[1, 1].tolist() == [0, 0, 0]
    assert colorize(DepthTask("depth"), torch.full((1, 2, 2), 5.0)).shape == (2, 2, 3)  # constant: no division by 0
    curvature = torch.stack([torch.arange(4.0).view(2, 2), torch.zeros(2, 2)])
    magma = colormaps["magma"]
    assert colorize(RegressionTask("principal_curvature", 2), curvature)[1, 1].tolist() == list(magma(1.0, bytes=True)[:3])


def test_bad_inputs_are_one_line_naming_the_file(finished, images, tmp_path, capsys):
    (images / "notes.png").write_text("not an image")
    png = (images / "room.png").read_bytes()
    (images / "cut.png").write_bytes(png[: len(png) // 2])
    (images / "other").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "other" / "room.jpg")
    out = tmp_path / "out"
    cases = [
        ([str(finished), str(images / "room.png"), str(images / "missing.png")], 2, f"{images / 'missing.png'}: no such file"),
        ([str(finished), str(images / "room.png"), str(images / "notes.png")], 2, f"{images / 'notes.png'}: not an image file"),
        ([str(finished), str(images / "cut.png")], 2, f"{images / 'cut.png'}: unreadable image file"),
        ([str(finished), str(images)], 2, f"{images}: is a directory"),
        ([str(finished), str(images / "room.png"), str(images / "other" / "room.jpg")], 2, "same name 'room'"),
        ([str(tmp_path), str(images / "room.png")], 1, f"'{tmp_path}' is not a run directory (no config.yaml"),
        ([str(tmp_path / "nope"), str(images / "room.png")], 1, "is not a run directory (it does not exist)"),
        ([str(finished), str(images / "room.png"), "--phase", "9"], 1, "phase 9 of"),
    ]
    for args, code, message in cases:
        # a bad image after a good one: nothing is written
        assert main(["predict", *args, "--out", str(out)]) == code, args
        err = capsys.readouterr().err
        assert err.startswith("lhl: error: ") and message in err and err.count("\n") == 1, err
        assert not out.exists()
    (tmp_path / "file").write_text("x")
    assert main(["predict", str(finished), str(images / "room.png"), "--out", str(tmp_path / "file")]) == 2
    assert "--out" in capsys.readouterr().err


def test_read_image_errors_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "x.png")
