"""A task type no built-in code knows, defined outside the package, runs through every method.

The plugin (:data:`FLOW_PLUGIN`, written to a temporary folder and imported as a user's module
would be) declares a two-channel, flow-like vector regression whose x component changes sign
under a horizontal flip, its own metric accumulator — end-point error (lower is better) and the
percentage of pixels whose error is below a threshold (higher is better) — and a benchmark: the
synthetic scenes plus a flow label computed from the image (its intensity gradient; the first row
has no label, NaN). Nothing in ``src/lhl`` names it: methods, the replay buffer, the transforms,
evaluation and reports learn everything from the task's declarations.

Each built-in method (read from the registry, so a new one is covered) runs the smoke preset with
the flow task first (an old task that is distilled, replayed or protected) and in the middle of
the order; HAD also with ``variant: reference``, iCaRL and DER with replay augmentation.
"""

from __future__ import annotations

import importlib
import json
import math
import sys

import pytest
import torch

from lhl.config import load_config
from lhl.data.transforms import scale_crop_flip
from lhl.engine.trainer import Trainer
from lhl.methods.buffer import ReplayBuffer
from lhl.registry import METHODS, load_builtins
from lhl.report.compare import comparison_table, load_runs

FLOW_PLUGIN = '''
"""A user's flow-like task, its metrics and a benchmark that provides it."""

import torch
from torch.utils.data import Dataset

from lhl.data.base import TaskSpec
from lhl.data.synthetic_benchmark import SyntheticBenchmark
from lhl.metrics import MetricAccumulator
from lhl.registry import BENCHMARKS, TASKS
from lhl.tasks import RegressionTask


class FlowMetrics(MetricAccumulator):
    """Mean end-point error ``epe`` and ``inliers``, the % of valid pixels with EPE < threshold."""

    STATE_REDUCTION = {"epe_sum": "sum", "inliers": "sum", "count": "sum"}

    def __init__(self, threshold):
        self.threshold = threshold
        super().__init__()

    def reset(self):
        self.epe_sum = torch.zeros((), dtype=torch.float64)
        self.inliers = torch.zeros((), dtype=torch.int64)
        self.count = torch.zeros((), dtype=torch.int64)

    def update(self, pred, target):
        valid = torch.isfinite(target).all(dim=1)
        epe = (pred - torch.nan_to_num(target)).norm(dim=1)[valid].double()
        self.epe_sum += epe.sum().cpu()
        self.inliers += (epe < self.threshold).sum().cpu()
        self.count += int(valid.sum())

    def compute(self):
        if int(self.count) == 0:
            raise ValueError("FlowMetrics: no valid pixel")
        return {"epe": float(self.epe_sum / self.count), "inliers": 100.0 * float(self.inliers) / int(self.count)}

    def state_dict(self):
        return {"epe_sum": self.epe_sum.clone(), "inliers": self.inliers.clone(), "count": self.count.clone()}

    def load_state_dict(self, state):
        self.epe_sum, self.inliers, self.count = state["epe_sum"], state["inliers"], state["count"]


@TASKS.register("flow-plugin")
class FlowTask(RegressionTask):
    """(u, v) per pixel; L1 loss and ℓ from RegressionTask; u changes sign in a mirrored image."""

    higher_is_better = {"epe": False, "inliers": True}
    mirror_channels = (0,)

    def __init__(self, name, out_channels=2, threshold=0.1):
        super().__init__(name, out_channels)
        self.threshold = threshold

    def metrics(self):
        return FlowMetrics(self.threshold)


def image_flow(image):
    """``[3,H,W]`` → ``[2,H,W]``: central differences of the grey image in x and y; row 0 unlabelled."""
    grey = torch.nn.functional.pad(image.mean(0)[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    flow = torch.stack([grey[1:-1, 2:] - grey[1:-1, :-2], grey[2:, 1:-1] - grey[:-2, 1:-1]]) / 2
    flow[:, 0] = float("nan")
    return flow


class FlowDataset(Dataset):
    def __init__(self, inner, with_flow):
        self.inner, self.with_flow = inner, with_flow

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        item = self.inner[i]
        if self.with_flow:
            item["flow"] = image_flow(item["image"])
        return item


@BENCHMARKS.register("flow-bench")
class FlowBenchmark(SyntheticBenchmark):
    name = "flow-bench"
    default_tasks = ("flow", "segmentation")

    def task_specs(self):
        specs = super().task_specs()
        specs["flow"] = TaskSpec("flow-plugin", 2, {"threshold": 0.05})
        return specs

    def dataset(self, split, indices, tasks):
        inner = super().dataset(split, indices, [t for t in tasks if t != "flow"])
        return FlowDataset(inner, "flow" in tasks)
'''

PLUGIN = "lhl_test_flow_plugin"
ORDERS = {"first": ("flow", "segmentation"), "middle": ("depth", "flow", "normal")}
DIRECTIONS = {"epe": False, "inliers": True}

load_builtins()
BUILTIN_METHODS = [name for name in METHODS.names() if METHODS.get(name).__module__.startswith("lhl.")]
VARIANTS = {"had-reference": ("had", ["method.variant=reference"]),
            "icarl": ("icarl", ["method.augment=true"]), "der": ("der", ["method.augment=true"])}
CASES = {name: VARIANTS.get(name, (name, [])) for name in BUILTIN_METHODS}
CASES.update(VARIANTS)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plugin module, importable by name (as ``plugins: [...]`` in a config imports it)."""
    folder = tmp_path_factory.mktemp("plugin")
    (folder / f"{PLUGIN}.py").write_text(FLOW_PLUGIN)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield importlib.import_module(PLUGIN)
    sys.modules.pop(PLUGIN, None)


@pytest.fixture(scope="module")
def run_case(plugin, tmp_path_factory):
    """``run_case(case, order)`` → (performance, run directory); each run once per module."""
    root, done = tmp_path_factory.mktemp("runs"), {}

    def run(case, order):
        if (case, order) not in done:
            method, overrides = CASES[case]
            config = load_config(preset="smoke", method=method, overrides=[
                f"plugins=[{PLUGIN}]", "benchmark=flow-bench", f"tasks=[{','.join(ORDERS[order])}]", *overrides])
            out = root / order / case
            done[case, order] = Trainer(config, out, quiet=True).run(), out
        return done[case, order]

    return run


def test_every_builtin_method_is_covered():
    assert {"vanilla", "joint", "dis", "had", "ewc", "lwf", "icarl", "der", "pod", "spg", "sgp"} <= set(CASES)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("case", CASES)
def test_plugin_task_runs_through_every_method(run_case, case, order):
    performance, out = run_case(case, order)
    on_disk = json.loads((out / "performance.json").read_text())
    assert on_disk["directions"]["flow"] == DIRECTIONS
    assert performance["directions"]["flow"] == DIRECTIONS
    assert on_disk["tasks"] == list(ORDERS[order])
    for phase in on_disk["phases"]:
        if "flow" in phase["metrics"]:
            assert set(phase["metrics"]["flow"]) == set(DIRECTIONS)
        assert all(math.isfinite(v) for metrics in phase["metrics"].values() for v in metrics.values())
    assert set(on_disk["phases"][-1]["metrics"]) == set(ORDERS[order])


@pytest.mark.parametrize("order", ORDERS)
def test_compare_shows_the_plugin_directions(run_case, order):
    runs = load_runs([run_case(case, order)[1] for case in CASES])
    assert all(run.directions["flow"] == DIRECTIONS for run in runs)
    table = comparison_table(runs)
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert "flow/epe ↓" in header and "flow/inliers ↑" in header


def test_replay_buffer_flip_negates_the_flow_x(plugin):
    flow = plugin.FlowTask("flow")
    buffer = ReplayBuffer(4, seed=0, known_tasks={"flow": flow})
    image = torch.tensor([[1.0, 2.0]]).expand(3, 1, 2)  # [3,1,2]: left 1, right 2
    target = torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])  # [2,1,2]: u, v
    buffer.add(image[None], "flow", target[None])
    flipped = unflipped = 0
    for _ in range(40):
        replay = buffer.sample(8)
        maps = replay.groups["flow"][1]
        if torch.equal(replay.images[0], image):
            unflipped += 1
            assert torch.equal(maps[0], target)
        else:
            flipped += 1
            assert torch.equal(replay.images[0], image.flip(-1))
            assert torch.equal(maps[0], torch.tensor([[[-3.0, -1.0]], [[7.0, 5.0]]]))
    assert flipped > 5 and unflipped > 5


def test_augmentation_flip_negates_the_flow_x_label(plugin):
    image = torch.rand(3, 6, 8)
    sample = {"image": image, "flow": plugin.image_flow(image)}
    out = scale_crop_flip(sample, {"flow": plugin.FlowTask("flow")}, 1.0, 0, 0, True)
    assert torch.equal(out["image"], image.flip(-1))
    # the flow of the mirrored image is the mirrored flow with u negated (up to rounding)
    torch.testing.assert_close(out["flow"], plugin.image_flow(out["image"]), equal_nan=True)
    torch.testing.assert_close(out["flow"][0], -sample["flow"][0].flip(-1), equal_nan=True)
