"""The frozen-teacher cache (lhl.engine.teacher, docs/design.md "Teacher cache") against teacher
passes, through the trainer: same pseudo-labels bit for bit, same first-step losses and final
metrics, off (and why) when augmentation is on or the method needs features."""

from __future__ import annotations

import pytest
import torch

from lhl.data.testing import write_mtan
from lhl.engine.events import read_events
from lhl.engine.teacher import CACHE_DIRECTORY, Teacher
from lhl.engine.trainer import Trainer

# Tiny but learning (about 14 % mIoU after phase 3): 32×32, 16 images a phase, 2 epochs, 3 phases
# (segmentation, depth, normal).
SMALL = ("data.resolution=[32,32]", "data.train_size=48", "data.test_size=8", "train.epochs=2",
         "train.lr=0.01", "model.head_rates=[1]", "model.head_channels=16")


def _trainer(smoke_config, tmp_path, name, method, *overrides):
    return Trainer(smoke_config(*SMALL, *overrides, method=method), tmp_path / name, quiet=True)


def _watch(trainer, compare_with_teacher=False):
    """Record the first step's loss terms of each phase, and (``compare_with_teacher``) check every
    cached target against a teacher pass on the same batch, under the step's autocast."""
    method, record = trainer.method, {"first": {}, "pairs": [], "files": []}
    before, loss_terms = method.before_phase, method.loss_terms

    def before_phase(ctx, loader):
        before(ctx, loader)
        record["probe"] = Teacher(ctx.model) if ctx.old_tasks else None  # the teacher before_phase froze

    def watched(ctx, batch, out):
        terms = loss_terms(ctx, batch, out)
        if ctx.step == 0:
            record["first"][ctx.phase] = {k: float(v.detach()) for k, v in terms.items()}
        if ctx.old_tasks:  # with the cache, the teacher model is freed for the phase
            record.setdefault("teacher_model", set()).add(method.teacher is not None)
        if ctx.scratch_dir is not None and (ctx.scratch_dir / CACHE_DIRECTORY).exists():
            record["files"].append(sorted(p.name for p in (ctx.scratch_dir / CACHE_DIRECTORY).iterdir()))
        if compare_with_teacher and method.teacher_cache is not None:
            cached = method.teacher_cache.lookup(batch["index"], ctx.device)
            raw = record["probe"].outputs(batch["image"], ctx.old_tasks)
            for name in ctx.old_tasks:
                task = ctx.tasks[name]
                fly = raw[name].float()
                if method.teacher_cache_kind == "pseudo_label":
                    fly = task.pseudo_label(fly)
                record["pairs"].append((name, cached[name], fly))
        return terms

    method.before_phase, method.loss_terms = before_phase, watched
    return record


def _cache_events(run_dir):
    return [e for e in read_events(run_dir / "events.jsonl") if e["event"] == "teacher_cache"]


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


# HAD with fp16 regression targets: no final-metric check. Its geometric mean weights a pixel by
# 1/(ℓ + ε), so in these tiny, barely trained runs any perturbation of the depth target moves the
# final metrics by several per cent — scaling the fp32 targets by (1 + 1e-6) did (3.7 % mIoU, 5 %
# depth abs_err) — far below fp16's rounding; fp32 storage gives the teacher-pass run bit for bit.
@pytest.mark.parametrize("method, precision, final_rel", [
    ("had", "fp16", None), ("had", "fp32", 0.0), ("dis", "fp16", 0.02), ("lwf", "fp16", 0.02)])
def test_cache_on_matches_teacher_passes(method, precision, final_rel, smoke_config, tmp_path):
    """Cache on vs off: bit-identical segmentation pseudo-labels (regression targets within the
    storage precision), first-step losses within 1e-3 relative, final metrics within 2% relative
    (fp32: identical)."""
    on = _trainer(smoke_config, tmp_path, "on", method, f"train.teacher_cache_precision={precision}")
    seen = _watch(on, compare_with_teacher=True)
    performance_on = on.run()
    off = _trainer(smoke_config, tmp_path, "off", method, "train.teacher_cache=off")
    seen_off = _watch(off)
    performance_off = off.run()

    assert seen["pairs"], "the cache served no batch"
    assert seen["teacher_model"] == {False} and seen_off["teacher_model"] == {True}
    for name, cached, fly in seen["pairs"]:
        assert cached.shape == fly.shape and cached.dtype == fly.dtype
        if (name == "segmentation" and method != "lwf") or precision == "fp32":
            assert torch.equal(cached, fly)  # class labels (int64) and fp32 values: bit-exact
        else:  # real values: equal up to fp16 storage
            assert torch.allclose(cached, fly, rtol=1e-3, atol=1e-3 * float(fly.abs().max()))

    events = _cache_events(tmp_path / "on")
    assert [(e["phase"], e["enabled"]) for e in events] == [(2, True), (3, True)]
    last = events[-1]
    assert last["entries"] == 16 and last["bytes"] == sum(t["bytes"] for t in last["tasks"].values()) > 0
    assert last["storage"] == "memory" and last["seconds"] >= 0 and last["precision"] == precision
    if method != "lwf":
        assert last["tasks"]["segmentation"]["dtype"] == "uint8"
        assert last["tasks"]["segmentation"]["bytes"] == 16 * 32 * 32
    assert last["tasks"]["depth"]["dtype"] == {"fp16": "float16", "fp32": "float32"}[precision]
    assert all(e["reason"] == "train.teacher_cache is off" for e in _cache_events(tmp_path / "off"))

    assert seen["first"].keys() == seen_off["first"].keys() == {1, 2, 3}
    for phase, terms in seen["first"].items():
        assert terms.keys() == seen_off["first"][phase].keys()
        for key, value in terms.items():
            assert _close(value, seen_off["first"][phase][key], 1e-3), (phase, key, value, seen_off["first"][phase][key])
    if final_rel == 0.0:
        assert performance_on["phases"] == performance_off["phases"]
    elif final_rel is not None:
        final_on, final_off = performance_on["phases"][-1]["metrics"], performance_off["phases"][-1]["metrics"]
        for task in ("segmentation", "depth"):
            for key, value in final_on[task].items():
                assert _close(value, final_off[task][key], final_rel), (task, key, value, final_off[task][key])
        assert _close(final_on["normal"]["mean"], final_off["normal"]["mean"], final_rel)


def test_disk_storage_is_a_memmap_in_the_run_directory_removed_at_phase_end(smoke_config, tmp_path):
    disk = _trainer(smoke_config, tmp_path, "disk", "had", "train.teacher_cache_storage=disk")
    seen = _watch(disk)
    performance_disk = disk.run()
    performance_memory = _trainer(smoke_config, tmp_path, "memory", "had").run()
    # phase 2 steps see segmentation's file, phase 3 steps segmentation's and depth's
    assert {tuple(files) for files in seen["files"]} == {("segmentation.bin",), ("depth.bin", "segmentation.bin")}
    assert not (tmp_path / "disk" / CACHE_DIRECTORY).exists()  # deleted at each phase's end
    event = _cache_events(tmp_path / "disk")[-1]
    assert event["storage"] == "disk" and event["path"] == str(tmp_path / "disk" / CACHE_DIRECTORY)
    assert event["bytes"] == 16 * 32 * 32 * (1 + 2)  # uint8 classes + fp16 depth
    assert performance_disk["phases"] == performance_memory["phases"]  # same values, other storage


def test_switches_off_when_augmentation_is_on(smoke_config, tmp_path):
    root = write_mtan(tmp_path / "nyuv2", "nyuv2", n_train=8, n_test=4, size=(16, 24))
    trainer = Trainer(smoke_config("benchmark=nyuv2", f"data.root={root}", "data.resolution=[16,24]",
                                   "tasks=[segmentation,depth]", "data.train_size=null", "data.test_size=null",
                                   "data.augment=true", method="had"), tmp_path / "run", quiet=True)
    teachers = []
    original = trainer.method.loss_terms

    def loss_terms(ctx, batch, out):
        teachers.append((trainer.method.teacher_cache, trainer.method.teacher))
        return original(ctx, batch, out)

    trainer.method.loss_terms = loss_terms
    trainer.run()
    [event] = _cache_events(tmp_path / "run")
    assert event["phase"] == 2 and event["enabled"] is False and event["reason"].startswith("data.augment is on")
    phase_2 = teachers[-1]
    assert phase_2[0] is None and phase_2[1] is not None  # no cache: the teacher runs every step


def test_pod_keeps_its_teacher_and_says_why(run_smoke):
    _, run_dir = run_smoke(method="pod")
    events = _cache_events(run_dir)
    assert [e["phase"] for e in events] == [2, 3]
    assert all(not e["enabled"] and "stage features" in e["reason"] for e in events)
