"""``lhl data render``: a synthetic benchmark pre-rendered into NYUv2's .npy layout and read back by nyuv2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lhl.cli import main
from lhl.config.schema import DataConfig
from lhl.data.synthetic import export
from lhl.data.synthetic.export import render_to_disk
from lhl.errors import ConfigError, DataError
from lhl.registry import BENCHMARKS, load_builtins

SIZE = [24, 32]  # not square: a swapped H/W would show
TASKS = ("segmentation", "depth", "normal")


def _data(**values) -> DataConfig:
    return DataConfig(**{"resolution": list(SIZE), "train_size": 5, "test_size": 3, **values})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "synthetic"
    render_to_disk(out, "synthetic-nyu", _data(), seed=3, batch=2)  # batches of 2: a partial last batch
    return out


def test_nyuv2_reads_the_synthetic_benchmark_items(rendered):
    load_builtins()
    disk = BENCHMARKS.get("nyuv2")(DataConfig(root=str(rendered), resolution=list(SIZE)), 0)
    disk.validate(TASKS)
    synthetic = BENCHMARKS.get("synthetic-nyu")(_data(), 3)
    for split, count in (("train", 5), ("test", 3)):
        assert disk.num_images(split) == synthetic.num_images(split) == count
        read = disk.dataset(split, range(count), TASKS)
        made = synthetic.dataset(split, range(count), TASKS)
        for i in range(count):
            a, b = read[i], made[i]
            assert sorted(a) == sorted(b)
            for key in b:
                assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (split, i, key)
                assert torch.equal(a[key], b[key]), (split, i, key)
    # the 8 synthetic classes fit nyuv2's 13; nothing is marked ignore
    labels = torch.stack([disk.dataset("train", range(5), ["segmentation"])[i]["segmentation"] for i in range(5)])
    assert 0 <= int(labels.min()) and int(labels.max()) < 8


def test_layout_files_and_record(rendered):
    assert sorted(p.name for p in rendered.iterdir()) == ["render.json", "train", "val"]
    for split, count in (("train", 5), ("val", 3)):
        for folder, shape in (("image", (*SIZE, 3)), ("label", tuple(SIZE)), ("depth", (*SIZE, 1)),
                              ("normal", (*SIZE, 3))):
            files = sorted((rendered / split / folder).iterdir())
            assert [f.name for f in files] == [f"{i}.npy" for i in range(count)]
            array = np.load(files[0])
            assert array.dtype == np.float32 and array.shape == shape
    record = json.loads((rendered / "render.json").read_text())
    assert record["benchmark"] == "synthetic-nyu" and record["read_as"] == "nyuv2"
    assert (record["seed"], record["resolution"], record["train_size"], record["test_size"]) == (3, SIZE, 5, 3)
    assert record["fingerprint"].startswith("synthetic-nyu train=5 test=3 render=")
    assert "lhl_version" in record


def test_data_check_finds_no_problem(rendered, capsys):
    assert main(["data", "check", str(rendered), "--benchmark", "nyuv2"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_nyuv2_trains_on_the_rendered_directory(rendered, run_smoke):
    performance, _ = run_smoke("benchmark=nyuv2", f"data.root={rendered}", f"data.resolution={SIZE}",
                               "data.train_size=null", "data.test_size=null", "tasks=[segmentation,depth]")
    assert performance["benchmark"] == "nyuv2"
    assert "miou" in performance["phases"][-1]["metrics"]["segmentation"]


def test_cli_renders_and_refuses_an_existing_directory(tmp_path, capsys):
    out = tmp_path / "d"
    args = ["data", "render", "--benchmark", "synthetic-nyu", "--out", str(out), "--resolution", "16", "16",
            "--train-size", "2", "--test-size", "1", "--seed", "1"]
    out.mkdir()  # an empty directory is fine
    assert main(args) == 0
    assert f"wrote {out}: 2 train + 1 test images at 16x16" in capsys.readouterr().out
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lhl: error: {out}: already exists and is not empty")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    (tmp_path / "f").write_text("x")
    assert main([*args[:5], str(tmp_path / "f"), *args[6:]]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("fault", [KeyboardInterrupt, DataError])
def test_an_interrupted_render_leaves_nothing(tmp_path, monkeypatch, fault):
    calls = []
    real = export._Batches.__getitem__

    def failing(self, b):
        calls.append(b)
        if self.split == "test":  # the training split is already written
            raise fault("stop")
        return real(self, b)

    monkeypatch.setattr(export._Batches, "__getitem__", failing)
    with pytest.raises(fault):
        render_to_disk(tmp_path / "d", "synthetic-nyu", _data(resolution=[8, 8]), batch=2)
    assert calls and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("benchmark, sets, message", [
    ("synthetic-taskonomy", [], "cannot be rendered to disk"),
    ("synthetic-city", [], "supported: synthetic-nyu"),
    ("nyuv2", [], "read from disk"),
    ("synthetic-nyu", ["data.normalize=imagenet"], "data.normalize: does not apply"),
    ("synthetic-nyu", ["data.val_size=2"], "data.val_size: does not apply"),
    ("synthetic-nyu", ["data.root=/x"], "data.root: does not apply"),
    ("synthetic-nyu", ["seed=1"], "only data.* options"),
])
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, benchmark, sets, message):
    argv = ["data", "render", "--benchmark", benchmark, "--out", str(tmp_path / "d")]
    for text in sets:
        argv += ["--set", text]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert list(tmp_path.iterdir()) == []


def test_settings_errors_from_python(tmp_path):
    with pytest.raises(ConfigError, match="--batch"):
        render_to_disk(tmp_path / "d", "synthetic-nyu", _data(), batch=0)
    assert list(tmp_path.iterdir()) == []


def test_worker_processes_write_the_same_files(tmp_path):
    data = _data(resolution=[8, 12], train_size=3, test_size=1)
    render_to_disk(tmp_path / "a", "synthetic-nyu", data, batch=2)
    render_to_disk(tmp_path / "b", "synthetic-nyu", _data(resolution=[8, 12], train_size=3, test_size=1,
                                                           num_workers=1), batch=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.npy"))
    assert len(files) == 16
    for path in files:
        assert np.array_equal(np.load(tmp_path / "a" / path), np.load(tmp_path / "b" / path)), path


def test_sigterm_removes_the_partial_directory(tmp_path):
    """A real process stopped by SIGTERM mid-render exits 143 and leaves no file behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import lhl

    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(lhl.__file__))}
    proc = subprocess.Popen([sys.executable, "-m", "lhl", "data", "render", "--benchmark", "synthetic-nyu", "--out",
                             str(tmp_path / "d"), "--resolution", "16", "16", "--train-size", "100000", "--batch", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any((p / "train" / "image" / "0.npy").exists() for p in tmp_path.glob(".d.*.partial")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, err.strip()) == (143, "lhl: error: SIGTERM received; the render stopped and wrote nothing")
    assert list(tmp_path.iterdir()) == []
