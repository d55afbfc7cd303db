"""Phase t never opens another task's label files (HAD paper, Sec. 3.2: the LHL4DP protocol), shown by spying on file opens."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from lhl.config.schema import DataConfig
from lhl.data.splits import phase_chunks
from lhl.engine.trainer import Trainer
from lhl.registry import BENCHMARKS, load_builtins

load_builtins()


@pytest.fixture
def opened(monkeypatch):
    """Every path passed to numpy.load or PIL.Image.open, in order."""
    paths: list[Path] = []
    real_load, real_open = np.load, PIL.Image.open

    def load(file, *args, **kwargs):
        paths.append(Path(file))
        return real_load(file, *args, **kwargs)

    def open_(fp, *args, **kwargs):
        paths.append(Path(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(np, "load", load)
    monkeypatch.setattr(PIL.Image, "open", open_)
    return paths


@pytest.mark.parametrize("name, task, folders", [
    ("nyuv2", "depth", {"image", "depth"}),
    ("nyuv2", "normal", {"image", "normal"}),
    ("cityscapes", "segmentation", {"image", "label_7"}),
    ("taskonomy", "segmentation", {"rgb", "segment_semantic"}),
    ("taskonomy", "keypoints3d", {"rgb", "keypoints3d"}),
])
def test_dataset_opens_only_its_tasks_files(name, task, folders, request, opened):
    root = request.getfixturevalue(f"{name}_root")
    bench = BENCHMARKS.get(name)(DataConfig(root=str(root), resolution=[16, 16]), 0)
    dataset = bench.dataset("train", [0, 3], [task])
    opened.clear()
    for item in dataset:
        assert set(item) == {"image", "index", task}
    depth = 1 if name == "taskonomy" else 2  # root/<domain>/... or root/<split>/<folder>/...
    assert {p.relative_to(root).parts[depth - 1] for p in opened} == folders
    assert len(opened) == 4


def _phase_segments(paths, root, test_folder):
    """Split the opens into training phases: each phase's evaluation opens test files."""
    segments, current, evaluating = [], [], False
    for path in paths:
        is_test = path.relative_to(root).parts[0] == test_folder
        if not is_test and evaluating:
            segments.append(current)
            current, evaluating = [], False
        if is_test:
            evaluating = True
        elif not evaluating:
            current.append(path)
    if current:
        segments.append(current)
    return segments


def test_two_phase_run_reads_only_the_phase_tasks_labels(nyuv2_root, smoke_config, tmp_path, opened):
    config = smoke_config("benchmark=nyuv2", f"data.root={nyuv2_root}", "data.resolution=[16,24]",
                          "tasks=[segmentation,depth]", "data.train_size=null", "data.test_size=null")
    Trainer(config, tmp_path / "run", quiet=True).run()
    training = _phase_segments(opened, nyuv2_root, "val")
    assert len(training) == 2
    chunks = phase_chunks(8, 2, config.seed, config.data.chunking)
    for paths, label_folder, chunk in zip(training, ("label", "depth"), chunks):
        folders = {p.relative_to(nyuv2_root).parts[1] for p in paths}
        assert folders == {"image", label_folder}
        assert {int(p.stem) for p in paths} == set(chunk)
    evaluation = [p for p in opened if p.relative_to(nyuv2_root).parts[0] == "val"]
    assert {p.relative_to(nyuv2_root).parts[1] for p in evaluation} == {"image", "label", "depth"}


def test_two_phase_taskonomy_run_reads_only_the_phase_tasks_labels(taskonomy_root, smoke_config, tmp_path,
                                                                   opened):
    config = smoke_config("benchmark=taskonomy", f"data.root={taskonomy_root}", "data.resolution=[16,16]",
                          "tasks=[normal,edge_texture]", "data.train_size=null", "data.test_size=null")
    Trainer(config, tmp_path / "run", quiet=True).run()
    test_files = {p for p in opened if "_view_3_" in p.name}
    training = [p for p in opened if p not in test_files]
    first_eval = opened.index(next(p for p in opened if p in test_files))
    phase1 = {p.relative_to(taskonomy_root).parts[0] for p in training if opened.index(p) < first_eval}
    phase2 = {p.relative_to(taskonomy_root).parts[0] for p in training if opened.index(p) > first_eval}
    assert phase1 == {"rgb", "normal"} and phase2 == {"rgb", "edge_texture"}
