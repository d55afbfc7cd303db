"""Units of the frozen-teacher cache: the tasks' stored forms, the grouping from pseudo-labels,
building and serving by index, disk files, the off reasons, and the DDP build (two gloo processes)."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from lhl.config import load_config
from lhl.engine.teacher import CACHE_DIRECTORY, Teacher, TeacherCache, teacher_cache_off_reason
from lhl.losses.had import group_masks
from lhl.tasks.base import Task
from lhl.tasks.dense import DepthTask, NormalTask, SegmentationTask, class_index_dtype

TASKS = {"segmentation": SegmentationTask("segmentation", 5), "depth": DepthTask("depth"),
         "normal": NormalTask("normal")}


class ToyNet(nn.Module):
    """A per-pixel network with a Teacher-compatible forward (heads by name)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Conv2d(3, 8, 3, padding=1)
        self.heads = nn.ModuleDict({name: nn.Conv2d(8, task.out_channels, 1) for name, task in TASKS.items()})

    @property
    def tasks(self):
        return list(self.heads)

    def forward(self, x, tasks, return_features=False):
        h = torch.relu(self.encoder(x))
        return {t: self.heads[t](h) for t in tasks}


class Images(torch.utils.data.Dataset):
    def __init__(self, count: int = 11) -> None:
        self.images = torch.rand(count, 3, 6, 7, generator=torch.Generator().manual_seed(1))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "index": torch.tensor(i, dtype=torch.int64)}


KINDS = {"segmentation": "pseudo_label", "depth": "pseudo_label", "normal": "raw"}


def _expected(teacher, images):
    raw = teacher.outputs(images, list(KINDS))
    return {"segmentation": raw["segmentation"].argmax(1), "depth": raw["depth"].float(),
            "normal": raw["normal"].float()}


# ------------------------------------------------------------------ what the tasks declare
def test_class_maps_take_the_smallest_integer_type():
    assert class_index_dtype(13) == class_index_dtype(256) == torch.uint8
    assert class_index_dtype(257) == torch.int16 and class_index_dtype(40000) == torch.int32
    labels = torch.tensor([[[0, 255], [17, 3]]])
    task = SegmentationTask("s", 256)
    stored = task.compress_pseudo_label(labels, torch.float16)
    assert stored.dtype == torch.uint8 and torch.equal(task.expand_pseudo_label(stored), labels)
    wide = SegmentationTask("s", 300).compress_pseudo_label(torch.tensor([299]), torch.float16)
    assert wide.dtype == torch.int16 and int(wide) == 299


def test_regression_values_take_the_cache_precision():
    depth = torch.rand(2, 1, 3, 3) * 10
    half = DepthTask("depth").compress_pseudo_label(depth, torch.float16)
    assert half.dtype == torch.float16 and DepthTask("depth").expand_pseudo_label(half).dtype == torch.float32
    assert torch.equal(DepthTask("depth").expand_pseudo_label(DepthTask("depth").compress_pseudo_label(
        depth, torch.float32)), depth)


def test_segmentation_groups_from_the_pseudo_label_are_those_of_the_logits():
    task = SegmentationTask("s", 7)
    logits = torch.randn(3, 7, 9, 10, generator=torch.Generator().manual_seed(2))
    logits[0, :, 0, 0] = 1.0  # a tie: argmax's lowest index either way
    from_raw = group_masks(*task.had_grouping(logits))
    from_label = group_masks(*task.had_grouping_of_pseudo_label(
        task.compress_pseudo_label(task.pseudo_label(logits), torch.float16)))
    assert torch.equal(from_raw, from_label)
    normals = torch.randn(2, 3, 5, 5)
    task = NormalTask("n")
    assert torch.equal(group_masks(*task.had_grouping(normals)),
                       group_masks(*task.had_grouping_of_pseudo_label(task.pseudo_label(normals))))


def test_a_grouping_rule_on_raw_outputs_only_is_detected():
    class RawRule(Task):
        def had_grouping(self, teacher):
            return teacher.abs(), "regression"

    class BothRules(RawRule):
        def had_grouping_of_pseudo_label(self, pseudo):
            return pseudo.abs(), "regression"

    assert Task.grouping_from_pseudo_label() and SegmentationTask.grouping_from_pseudo_label()
    assert NormalTask.grouping_from_pseudo_label() and BothRules.grouping_from_pseudo_label()
    assert not RawRule.grouping_from_pseudo_label()


# ------------------------------------------------------------------ building and serving
@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_build_and_serve_by_index(storage, tmp_path):
    teacher, data = Teacher(ToyNet()), Images()
    cache = TeacherCache.build(teacher, TASKS, KINDS, data, 4, torch.device("cpu"), precision="fp16",
                               storage=storage, directory=tmp_path)
    assert cache.entries == 11
    assert cache.task_bytes() == {"segmentation": 11 * 42, "depth": 11 * 42 * 2, "normal": 11 * 3 * 42 * 2}
    if storage == "disk":
        assert sorted(p.name for p in (tmp_path / CACHE_DIRECTORY).iterdir()) == [
            "depth.bin", "normal.bin", "segmentation.bin"]
    index = torch.tensor([7, 0, 10, 3])
    served = cache.lookup(index, torch.device("cpu"))
    expected = _expected(teacher, data.images[index])
    assert served["segmentation"].dtype == torch.int64
    assert torch.equal(served["segmentation"], expected["segmentation"])
    for name in ("depth", "normal"):
        assert served[name].dtype == torch.float32
        assert torch.equal(served[name], expected[name].half().float())
    described = cache.describe()
    assert described["bytes"] == cache.nbytes and described["tasks"]["segmentation"]["dtype"] == "uint8"
    cache.close()
    assert not (tmp_path / CACHE_DIRECTORY).exists()


def test_items_must_carry_their_position():
    class Shifted(Images):
        def __getitem__(self, i):
            return {**super().__getitem__(i), "index": torch.tensor(i + 1)}

    with pytest.raises(ValueError, match="'index' is their position"):
        TeacherCache.build(Teacher(ToyNet()), TASKS, KINDS, Shifted(), 4, torch.device("cpu"))


def test_building_leaves_the_global_rng_alone():
    teacher, data = Teacher(ToyNet()), Images()
    torch.manual_seed(3)
    before = torch.get_rng_state()
    TeacherCache.build(teacher, TASKS, KINDS, data, 4, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)


def test_off_reasons():
    config = load_config(preset="smoke")
    assert teacher_cache_off_reason(config, None) is None
    assert teacher_cache_off_reason(config, "needs features") == "needs features"
    off = load_config(preset="smoke", overrides=["train.teacher_cache=off"])  # YAML's bare off
    assert off.train.teacher_cache == "off"
    assert teacher_cache_off_reason(off, None) == "train.teacher_cache is off"
    augmented = SimpleNamespace(train=config.train, data=SimpleNamespace(augment=True))
    assert teacher_cache_off_reason(augmented, None).startswith("data.augment is on")


# ------------------------------------------------------------------ DDP: the cache covers every index
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, directory: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out = {}
        for storage in ("memory", "disk"):
            cache = TeacherCache.build(Teacher(ToyNet()), TASKS, KINDS, Images(), 2, torch.device("cpu"),
                                       storage=storage, directory=directory)
            out[storage] = cache.lookup(torch.arange(11), torch.device("cpu"))
            cache.close()
        torch.save(out, os.path.join(directory, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes import torch: tens of seconds on a loaded machine
def test_under_ddp_every_process_holds_the_whole_chunk(tmp_path):
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    single = TeacherCache.build(Teacher(ToyNet()), TASKS, KINDS, Images(), 2, torch.device("cpu"))
    expected = single.lookup(torch.arange(11), torch.device("cpu"))
    for rank in (0, 1):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for storage in ("memory", "disk"):
            for name, value in results[storage].items():
                assert torch.equal(value, expected[name]), (rank, storage, name)
    assert not (tmp_path / CACHE_DIRECTORY).exists()
