"""The paper configurations (src/lhl/config/paper/<benchmark>-<encoder>-<sequence>.yaml) load
and carry the HAD hyperparameters, batch sizes and schedule of the paper's App. C.4."""

from importlib import resources

import pytest

from lhl.config import load_config, resolve_method
from lhl.registry import BENCHMARKS, METHODS, load_builtins

load_builtins()
FOLDER = resources.files("lhl.config") / "paper"
FILES = sorted(p.name for p in FOLDER.iterdir() if p.name.endswith(".yaml"))
HAD = {("nyuv2", "resnet18"): (3, 0.5, 0.9), ("nyuv2", "resnet50"): (20, 0.6, 0.6),
       ("cityscapes", "resnet18"): (100, 0.6, 0.6), ("cityscapes", "resnet50"): (1, 0.8, 0.5),
       ("taskonomy", "resnet18"): (1, 0.5, 0.9)}
BATCH = {"nyuv2": 48, "cityscapes": 64, "taskonomy": 16}
SEQUENCES = {"seg": "segmentation", "depth": "depth", "normal": "normal"}


def test_every_paper_setting_has_a_file():
    expected = {f"nyuv2-{e}-{s}.yaml" for e in ("r18", "r50")
                for s in ("seg-depth-normal", "normal-depth-seg", "depth-seg-normal")}
    expected |= {f"cityscapes-{e}-{s}.yaml" for e in ("r18", "r50") for s in ("seg-depth", "depth-seg")}
    expected |= {"taskonomy-r18-paper-order.yaml"}
    assert expected <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_paper_config(name):
    with resources.as_file(FOLDER / name) as path:
        config = load_config(path, overrides=["data.root=/data"])
    bench_name, encoder, *sequence = name[:-5].split("-")
    assert config.benchmark == bench_name and config.model.encoder == {"r18": "resnet18", "r50": "resnet50"}[encoder]
    bench = BENCHMARKS.get(config.benchmark)(config.data, config.seed)
    assert set(config.tasks) <= set(bench.task_specs()) and len(config.tasks) == len(set(config.tasks))
    if bench_name == "taskonomy":
        assert tuple(config.tasks) == bench.default_tasks
        assert config.data.train_size == 1390 and bench.task_specs()["segmentation"].channels == 8
    else:
        assert config.tasks == [SEQUENCES[s] for s in sequence]
    assert config.train.batch_size == BATCH[bench_name] and config.train.epochs == 20
    assert (config.train.lr, config.train.weight_decay, config.train.warmup) == (1e-4, 1e-5, 0.5)
    assert config.model.weights == "imagenet" and config.data.augment is False
    alpha, group, edge = HAD[(bench_name, config.model.encoder)]
    assert config.method == {"name": "had", "alpha": alpha, "group_threshold": group, "edge_threshold": edge}
    if "had" in METHODS:
        _, options = resolve_method(config)
        assert options.variant == "paper" and options.use_db and options.use_sg
    assert (config.model.head_rates, config.model.head_channels) == ([12, 24, 36], 256)
