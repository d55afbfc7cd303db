"""mIoU and pixel accuracy of always predicting the most frequent class of the training set,
on a synthetic preset's test set — the floor a segmentation result must beat.

    python benchmarks/majority_baseline.py [--preset synthetic-nyu-demo] [--seeds 0 1]
"""

from __future__ import annotations

import argparse

import torch

from lhl.config import load_config
from lhl.metrics import SegmentationMetrics
from lhl.registry import BENCHMARKS, load_builtins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synthetic-nyu-demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    load_builtins()
    for seed in args.seeds:
        config = load_config(preset=args.preset, overrides=[f"seed={seed}"])
        benchmark = BENCHMARKS.get(config.benchmark)(config.data, seed)
        task = benchmark.make_task("segmentation")
        train = benchmark.dataset("train", range(benchmark.num_images("train")), ["segmentation"])
        labels = torch.stack([item["segmentation"] for item in train.__getitems__(list(range(len(train))))])
        counts = torch.bincount(labels[labels >= 0].flatten(), minlength=task.out_channels)
        majority = int(counts.argmax())
        test = benchmark.dataset("test", range(benchmark.num_images("test")), ["segmentation"])
        target = torch.stack([item["segmentation"] for item in test.__getitems__(list(range(len(test))))])
        metrics = SegmentationMetrics(task.out_channels, task.ignore_index)
        metrics.update(torch.full_like(target, majority), target)
        result = metrics.compute()
        print(f"seed {seed}: majority class {majority} ({100 * counts[majority] / counts.sum():.1f}% of training pixels): "
              f"miou {result['miou']:.2f}, pixel_acc {result['pixel_acc']:.2f}")


if __name__ == "__main__":
    main()
