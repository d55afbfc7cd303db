"""Rendering speed of the synthetic renderer (images/s) and the cost ratios between modes.

Usage: ``python benchmarks/render_speed.py [--count 192] [--threads N]``. Renders one batch per
mode (after a warm-up batch): image only, image + segmentation, image + all ten labels at 64x64,
image + all labels at 64x64 one image per call, and image + all labels at 288x384. Absolute
numbers depend on the machine; the ratios printed last are measured in the same run.
The default is one torch thread, as in DataLoader workers: the renderer issues many small
elementwise ops, and on a machine whose cores are shared with other work, intra-op threading can
make it several times slower rather than faster.
"""

from __future__ import annotations

import argparse
import time

import torch

from lhl.data.synthetic import SYNTHETIC_TASKS, render


def _rate(count: int, resolution: tuple[int, int], tasks: tuple[str, ...], per_call: int) -> float:
    render(0, "train", range(min(per_call, 8)), resolution, tasks)  # warm-up
    start = time.perf_counter()
    for first in range(0, count, per_call):
        render(0, "train", range(first, min(count, first + per_call)), resolution, tasks)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=192, help="images per 64x64 mode")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as in DataLoader workers; 0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    count = args.count
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {count} images per mode")
    rates = {}
    modes = [("64x64 image only", (64, 64), (), count, count),
             ("64x64 image + segmentation", (64, 64), ("segmentation",), count, count),
             ("64x64 image + all 10 labels", (64, 64), SYNTHETIC_TASKS, count, count),
             ("64x64 image + all 10 labels, 1 per call", (64, 64), SYNTHETIC_TASKS,
              max(8, count // 8), 1),
             ("288x384 image + all 10 labels", (288, 384), SYNTHETIC_TASKS, max(2, count // 48),
              max(2, count // 48))]
    for name, res, tasks, n, per_call in modes:
        rates[name] = _rate(n, res, tasks, per_call)
        print(f"{name:42s} {rates[name]:9.1f} images/s")
    base = rates["64x64 image only"]
    print("ratios (time per image relative to 64x64 image only, same run):")
    for name, rate in rates.items():
        print(f"  {name:40s} x{base / rate:6.2f}")


if __name__ == "__main__":
    main()
