"""``lhl pretrain`` and ``model.weights: synthetic-pretrained`` (docs/pretrained-weights.md,
"Synthetic pretraining"), on the tiny encoder with a few steps."""

import json

import pytest
import torch

from lhl.cli import main
from lhl.data.synthetic import render, sample_scene
from lhl.engine.trainer import Trainer
from lhl.errors import ConfigError
from lhl.models import file_sha256, load_encoder_weights
from lhl.models.encoders import tiny
from lhl.models.pretrained import resolve_weights
from lhl.data.synthetic.attributes import NUM_ATTRIBUTES
from lhl.engine.pretrain import (OUTPUTS, PretrainRecipe, Standardiser, augment, objective, pretrain,
                                 render_pretraining_set)

FEW = ["--encoder", "tiny", "--images", "16", "--epochs", "1", "--resolution", "16", "16", "--batch-size", "8",
       "--heldout", "8", "--quiet"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LHL_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "weights"


def test_pretrain_writes_weights_and_record_that_synthetic_pretrained_loads(home, smoke_config, tmp_path, capsys):
    assert main(["pretrain", *FEW]) == 0
    weights, record_path = home / "tiny-synthetic-pretrained.pt", home / "tiny-synthetic-pretrained.json"
    assert weights.is_file() and record_path.is_file()
    record = json.loads(record_path.read_text())
    digest = file_sha256(weights)
    assert record["sha256"] == digest and digest in capsys.readouterr().out
    assert record["scenes"]["split"] == "pretrain" and record["recipe"]["images"] == 16 and record["steps"] == 2
    assert record["command"].startswith("lhl pretrain --encoder tiny --images 16 --epochs 1 --resolution 16 16")
    assert set(record["heldout"]) >= {"fractions_ce", "present_accuracy", "materials_accuracy", "scene_r2"}
    assert [h["epoch"] for h in record["history"]] == [1] and set(record["history"][0]) >= {"total", "scene"}
    # torchvision key names: loads like an ImageNet resnet file
    state = torch.load(weights, weights_only=True)
    assert "conv1.weight" in state and "bn1.running_mean" in state and not any(k.startswith("stem") for k in state)
    encoder = tiny()
    assert load_encoder_weights(encoder, weights) == digest
    assert torch.equal(encoder.stem[0].weight, state["conv1.weight"])
    assert resolve_weights("synthetic-pretrained", "tiny") == weights
    # a run with model.weights: synthetic-pretrained loads it and records its hash
    Trainer(smoke_config("model.weights=synthetic-pretrained"), tmp_path / "run", quiet=True).run()
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert provenance["weights"] == "synthetic-pretrained" and provenance["weights_sha256"] == digest


def test_missing_file_names_the_exact_command(home, smoke_config, tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        Trainer(smoke_config("model.weights=synthetic-pretrained"), tmp_path / "run", quiet=True).run()
    message = str(info.value)
    assert "Make it with: lhl pretrain --encoder tiny " in message
    assert str(home / "tiny-synthetic-pretrained.pt") in message
    assert not (tmp_path / "run").exists()
    code = main(["run", "--preset", "smoke", "--quiet", "--set", "model.weights=synthetic-pretrained",
                 "--out", str(tmp_path / "run2")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "lhl pretrain --encoder tiny" in err


@pytest.mark.parametrize("argv, expected", [
    (["--images", "0"], "--images: expected a positive integer"),
    (["--epochs", "-1"], "--epochs: expected a positive integer"),
    (["--batch-size", "1"], "--batch-size: expected at least 2"),
    (["--resolution", "4", "16"], "--resolution: expected two integers"),
    (["--lr", "0"], "--lr: expected a positive number"),
    (["--encoder", "resnet7"], "resnet7"),
])
def test_bad_flags_are_one_line_errors(home, argv, expected, capsys):
    code = main(["pretrain", *FEW, *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("lhl: error:") and expected in err
    assert not home.exists()


def test_out_directory_is_refused_and_out_file_is_written(home, tmp_path, capsys):
    assert main(["pretrain", *FEW, "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    record = pretrain(PretrainRecipe("tiny", images=8, epochs=1, resolution=(16, 16), batch_size=4, heldout=0),
                      tmp_path / "w" / "enc.pt", echo=lambda _: None)
    assert (tmp_path / "w" / "enc.pt").is_file() and (tmp_path / "w" / "enc.json").is_file()
    assert record["command"].endswith(f"--out {tmp_path / 'w' / 'enc.pt'}") and not home.exists()


def test_pretraining_scenes_are_not_benchmark_scenes():
    images, targets = render_pretraining_set(0, range(4), (16, 16))
    assert images.dtype == torch.uint8 and targets.shape == (4, NUM_ATTRIBUTES)
    assert torch.allclose(targets[:, :8].sum(1), torch.ones(4))
    for split in ("train", "test", "val"):
        assert sample_scene(0, "pretrain", 0) != sample_scene(0, split, 0)
        bench = (render(0, split, range(4), (16, 16))["image"] * 255).round().to(torch.uint8)
        assert not torch.equal(bench, images)


def test_objective_is_zero_gradient_free_of_nan_and_mirror_consistent():
    images, targets = render_pretraining_set(0, range(8), (16, 16))
    standardise = Standardiser.fit(targets)
    # standardised scene values: mean 0 and std 1 over the images and their mirrors
    z = standardise(torch.cat([targets, augment(images.float() / 255, targets, torch.Generator())[1]]))
    assert torch.isfinite(z).all()
    logits = torch.zeros(8, OUTPUTS, requires_grad=True)
    terms = objective(logits, targets, standardise)
    assert set(terms) == {"fractions", "present", "materials", "scene", "total"}
    assert terms["present"].item() == pytest.approx(0.6931, abs=1e-4)  # log 2 at zero logits
    assert terms["materials"].item() == pytest.approx(1.3863, abs=1e-4)  # log 4
    terms["total"].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
