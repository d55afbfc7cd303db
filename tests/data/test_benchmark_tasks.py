"""``lhl.data.benchmark_tasks``: which tasks each benchmark offers, without any data root; and
the synthetic benchmarks' handling of ``data.normalize``."""

from __future__ import annotations

import pytest
import torch

from lhl.config.schema import DataConfig
from lhl.data import benchmark_tasks
from lhl.data.disk import FileBenchmark
from lhl.data.taskonomy import TASK_ORDER
from lhl.data.transforms import normalize_image
from lhl.registry import BENCHMARKS, load_builtins

load_builtins()


def test_every_benchmark_lists_its_default_sequence_first(monkeypatch):
    def no_disk(self):
        raise AssertionError(f"{self.name}: task_specs touched data.root")

    monkeypatch.setattr(FileBenchmark, "root", property(no_disk))
    offered = benchmark_tasks()
    assert list(offered) == BENCHMARKS.names()
    for name, tasks in offered.items():
        bench = BENCHMARKS.get(name)(DataConfig(), 0)
        assert tasks[:len(bench.default_tasks)] == list(bench.default_tasks)
        assert sorted(tasks) == sorted(bench.task_specs()) and len(set(tasks)) == len(tasks)
    assert offered["nyuv2"] == ["segmentation", "depth", "normal"]
    assert offered["cityscapes"] == ["segmentation", "depth"]
    assert offered["taskonomy"] == list(TASK_ORDER)
    assert offered["synthetic-city"][:2] == ["segmentation", "depth"] and len(offered["synthetic-city"]) == 10


@pytest.mark.parametrize("name", ["synthetic-nyu", "synthetic-taskonomy"])
def test_synthetic_normalize_imagenet_standardises_images(name):
    plain = BENCHMARKS.get(name)(DataConfig(resolution=[16, 16]), 0).dataset("train", [0, 1], ["depth"])
    normed = BENCHMARKS.get(name)(DataConfig(resolution=[16, 16], normalize="imagenet"), 0).dataset(
        "train", [0, 1], ["depth"])
    for single, batch in ((normed[1], normed.__getitems__([0, 1])[1]),):
        assert torch.allclose(single["image"], normalize_image(plain[1]["image"]))
        assert torch.allclose(batch["image"], single["image"])
        assert torch.equal(single["depth"], plain[1]["depth"])
