import numpy as np
import pytest

from lhl.data.splits import phase_chunks


@pytest.mark.parametrize("mode", ["shuffle", "contiguous"])
def test_chunks_disjoint_equal(mode):
    chunks = phase_chunks(103, 3, seed=5, mode=mode)
    assert [len(c) for c in chunks] == [34, 34, 34]
    flat = [i for c in chunks for i in c]
    assert len(set(flat)) == len(flat) == 102
    assert all(0 <= i < 103 for i in flat)


def test_contiguous_and_seeded_shuffle():
    assert phase_chunks(6, 3, 0, "contiguous") == [[0, 1], [2, 3], [4, 5]]
    assert phase_chunks(60, 3, 1) == phase_chunks(60, 3, 1)
    assert phase_chunks(60, 3, 1) != phase_chunks(60, 3, 2)


def test_bad_mode_and_too_few_images():
    with pytest.raises(ValueError, match="chunking"):
        phase_chunks(6, 3, 0, "random")
    with pytest.raises(ValueError, match="2 training images"):
        phase_chunks(2, 3, 0)


# ----------------------------------------------------------------------------- the validation split (data.val_size)
def test_synthetic_val_split_is_disjoint_and_deterministic():
    import torch

    from lhl.config.schema import DataConfig
    from lhl.data.synthetic import render
    from lhl.registry import BENCHMARKS, load_builtins

    load_builtins()
    bench = BENCHMARKS.get("synthetic-nyu")(DataConfig(resolution=[16, 16], val_size=5), seed=3)
    assert bench.num_images("val") == 5 and bench.num_images("train") == 600
    assert BENCHMARKS.get("synthetic-nyu")(DataConfig(), seed=3).num_images("val") == 0
    val = render(3, "val", [0, 1, 2], (16, 16), ())["image"]
    assert torch.equal(val, render(3, "val", [0, 1, 2], (16, 16), ())["image"])  # a pure function of (seed, i)
    assert torch.equal(val[1], render(3, "val", [1], (16, 16), ())["image"][0])
    for split in ("train", "test"):
        other = render(3, split, [0, 1, 2], (16, 16), ())["image"]
        assert all(not torch.equal(val[i], other[i]) for i in range(3))
    assert not torch.equal(val, render(4, "val", [0, 1, 2], (16, 16), ())["image"])
    # the settings digest: unchanged by val_size = 0, changed by val_size > 0
    plain = BENCHMARKS.get("synthetic-nyu")(DataConfig(resolution=[16, 16]), seed=3)
    assert plain.fingerprint() != bench.fingerprint()


def test_disk_val_split_is_a_seeded_slice_outside_every_chunk(nyuv2_root):
    from lhl.config.schema import DataConfig
    from lhl.registry import BENCHMARKS, load_builtins

    load_builtins()
    make = lambda val_size, seed: BENCHMARKS.get("nyuv2")(DataConfig(root=str(nyuv2_root), val_size=val_size), seed)
    plain = make(0, 1)
    listing = plain.entries("train")
    assert plain.num_images("val") == 0 and plain.entries("train") == plain.listing("train")
    bench = make(3, 1)
    bench.validate()
    val, train = bench.entries("val"), bench.entries("train")
    assert bench.num_images("val") == 3 and bench.num_images("train") == len(listing) - 3
    assert sorted(map(str, val + train)) == sorted(map(str, listing)) and not set(val) & set(train)
    chunks = phase_chunks(bench.num_images("train"), 3, seed=1)
    assert [len(c) for c in chunks] == [(len(listing) - 3) // 3] * 3
    assert not {train[i] for c in chunks for i in c} & set(val)
    assert val == make(3, 1).entries("val")  # deterministic per seed
    order = np.random.default_rng([1, 12345]).permutation(len(listing))
    assert val == [listing[i] for i in sorted(order[:3])]
    assert any(make(3, s).entries("val") != val for s in range(2, 6))
    # val items: the training folder's files, labels of every task
    item = bench.dataset("val", [0], ["segmentation", "depth", "normal"])[0]
    assert set(item) == {"image", "index", "segmentation", "depth", "normal"}
    # fingerprint: unchanged at val_size 0, changed (and seed-dependent) above
    assert plain.fingerprint() == make(0, 2).fingerprint() != bench.fingerprint() != make(3, 2).fingerprint()
    with pytest.raises(Exception, match="data.val_size"):
        make(len(listing), 1).validate()


def test_val_size_range_checked():
    from lhl.config.schema import DataConfig

    with pytest.raises(Exception, match="data.val_size"):
        DataConfig(val_size=-1)


def test_validation_result_in_performance_json(run_smoke, capsys):
    import json

    from lhl.cli import main

    plain, plain_dir = run_smoke(name="plain")
    assert "validation" not in plain and "validation" not in json.loads((plain_dir / "performance.json").read_text())
    with_val, val_dir = run_smoke("data.val_size=4", name="val")
    assert set(with_val["validation"]) == {"segmentation", "depth", "normal"}
    assert with_val["phases"] == plain["phases"]  # a rendered validation split changes no training
    saved = json.loads((val_dir / "performance.json").read_text())
    assert saved["validation"] == with_val["validation"]
    # lhl eval --split val gives the same numbers; a run without a validation split refuses it
    capsys.readouterr()
    assert main(["eval", str(val_dir), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == with_val["validation"]
    assert main(["eval", str(plain_dir), "--split", "val"]) == 2
    # a resumed, finished run keeps it
    from lhl.config import load_config
    from lhl.engine.trainer import Trainer

    config = load_config(preset="smoke", overrides=["data.val_size=4"])
    again = Trainer(config, val_dir, quiet=True, resume=True).run()
    assert again["validation"] == with_val["validation"]
