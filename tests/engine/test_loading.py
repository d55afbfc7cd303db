"""lhl.load_run: a finished run's model, tasks and configuration, reproducing its own evaluation."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

import lhl
from lhl.data.testing import write_mtan
from lhl.engine.evaluation import evaluate, evaluate_run
from lhl.engine.trainer import Trainer
from lhl.errors import CheckpointError, ConfigError, DataError, RunDirectoryError



def smoke_config(*overrides: str, method: str | None = None):
    return lhl.load_config(preset="smoke", method=method, overrides=list(overrides))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-phase smoke run (HAD, so that the checkpoints hold method state too)."""
    out = tmp_path_factory.mktemp("loading") / "run"
    Trainer(smoke_config(method="had"), out, quiet=True).run()
    return out


def _performance(run_dir):
    return json.loads((run_dir / "performance.json").read_text())


def test_loaded_model_reproduces_the_runs_evaluation(finished):
    performance = _performance(finished)
    for phase in (None, 1, 2, 3):
        loaded = lhl.load_run(finished, phase=phase)
        t = loaded.phase
        assert t == (3 if phase is None else phase)
        assert not loaded.model.training
        # by hand, with the public pieces: the benchmark's test split, the run's eval batch size
        benchmark = loaded.run.benchmark
        dataset = benchmark.dataset("test", list(range(benchmark.num_images("test"))), list(loaded.tasks))
        batch = loaded.config.train.eval_batch_size or 2 * loaded.config.train.batch_size
        metrics = evaluate(loaded.model, list(loaded.tasks.values()), DataLoader(dataset, batch_size=batch),
                           loaded.run.device, quiet=True)
        recorded = performance["phases"][t - 1]
        assert json.loads(json.dumps(metrics)) == recorded["metrics"]  # exact, as written to performance.json
        assert evaluate_run(loaded) == metrics
        assert loaded.label == recorded["task"]


def test_phase_one_has_only_the_first_head(finished):
    loaded = lhl.load_run(finished, phase=1)
    order = loaded.config.tasks
    assert list(loaded.model.heads) == [order[0]] == list(loaded.tasks)
    last = lhl.load_run(finished)
    assert list(last.model.heads) == order == list(last.tasks)
    assert loaded.config.method["name"] == "had" and loaded.path == finished


def test_readme_example(finished):
    """The README's "Using lhl from Python" example, with images from the run's test split."""
    run = lhl.build_run(lhl.load_config(preset="smoke", method="had"))
    model, _ = run.build_model(run.order)
    assert list(model.heads) == run.order
    loaded = lhl.load_run(str(finished))
    benchmark = loaded.run.benchmark
    images = torch.stack([benchmark.dataset("test", [i], [])[0]["image"] for i in range(2)])
    with torch.no_grad():
        outputs = loaded.model(images)
    assert set(outputs) == {"segmentation", "depth", "normal"}
    depth = loaded.tasks["depth"].postprocess(outputs["depth"])
    assert depth.shape == (2, 1, 16, 16)
    segmentation = loaded.tasks["segmentation"].postprocess(outputs["segmentation"])
    assert segmentation.shape == (2, 16, 16) and segmentation.dtype == torch.int64
    normal = loaded.tasks["normal"].postprocess(outputs["normal"])
    assert torch.allclose(normal.norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)


def test_not_a_run(tmp_path, finished):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        lhl.load_run(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        lhl.load_run(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirectoryError, match="no config.yaml") as caught:
        lhl.load_run(tmp_path / "empty")
    assert "--resume" not in str(caught.value)
    with pytest.raises(RunDirectoryError, match=r"phase 4 .* completed phases: 1..3"):
        lhl.load_run(finished, phase=4)
    with pytest.raises(RunDirectoryError, match="phase 0"):
        lhl.load_run(finished, phase=0)


def test_unfinished_and_damaged_runs(tmp_path, finished):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    checkpoint = copy / "checkpoints" / "phase-3.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="phase-3.pt"):
        lhl.load_run(copy)
    assert lhl.load_run(copy, phase=2).phase == 2  # the other phases are intact
    (copy / "performance.json").write_text(json.dumps({**_performance(finished), "phases": []}))
    with pytest.raises(RunDirectoryError, match="no completed phase"):
        lhl.load_run(copy)


def test_phase_whose_checkpoint_was_not_kept(run_smoke):
    _, out = run_smoke("train.keep_checkpoints=1")
    assert lhl.load_run(out).phase == 3
    with pytest.raises(RunDirectoryError, match=r"phase 1 .*keep_checkpoints: 1.*checkpoint: 3$"):
        lhl.load_run(out, phase=1)


def test_device_and_logging_overrides(tmp_path, finished, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    tree = yaml.safe_load((copy / "config.yaml").read_text())
    tree["logging"] = {"tensorboard": True}
    (copy / "config.yaml").write_text(yaml.safe_dump(tree))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    loaded = lhl.load_run(copy, device="cpu")  # logging.* does not matter for loading, nor tensorboard's absence
    assert loaded.run.device == torch.device("cpu")
    with pytest.raises(ConfigError, match="device"):
        lhl.load_run(copy, device="tpu")
    tree["device"] = "cuda:99"  # a device this machine does not have
    (copy / "config.yaml").write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match=r"trained on device 'cuda:99'.*--device cpu"):
        lhl.load_run(copy)
    assert lhl.load_run(copy, device="cpu").phase == 3


def test_real_benchmark_run_without_its_data_or_weight_file(tmp_path):
    """A run on an on-disk dataset loads for prediction where neither the data nor the initial
    weight file exists (the checkpoint holds every weight); evaluation needs the data."""
    root = write_mtan(tmp_path / "nyuv2", "nyuv2", n_train=6, n_test=2, size=(16, 24))
    weights = tmp_path / "tiny.pt"
    run = lhl.build_run(smoke_config(f"data.root={root}", "benchmark=nyuv2", "tasks=null"))
    model, _ = run.build_model()
    torch.save(model.encoder.state_dict(), weights)
    config = smoke_config(f"data.root={root}", "benchmark=nyuv2", "tasks=null", f"model.weights={weights}")
    out = tmp_path / "run"
    Trainer(config, out, quiet=True).run()
    recorded = _performance(out)["phases"][-1]["metrics"]
    shutil.rmtree(root)
    weights.unlink()
    loaded = lhl.load_run(out, check_data=False)
    assert list(loaded.model.heads) == ["segmentation", "depth", "normal"]
    assert loaded.config.model.weights == str(weights)  # as recorded
    with pytest.raises(DataError, match="nyuv2"):
        lhl.load_run(out)
    moved = write_mtan(tmp_path / "moved", "nyuv2", n_train=6, n_test=2, size=(16, 24))
    assert evaluate_run(lhl.load_run(out, data_root=str(moved))) == recorded
