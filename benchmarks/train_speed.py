"""Training throughput and peak memory of a preset (default: synthetic-nyu-demo), next to the
synthetic renderer's throughput, measured in one process.

    python benchmarks/train_speed.py [--preset synthetic-nyu-demo] [--steps 10] [--set key=value ...]

Prints images/s for a vanilla training step (phase 1: encoder + one head) and for an evaluation
pass over all the preset's heads, the renderer's images/s through the phase dataset (one label,
as phase 1 reads it), their ratio (> 1: data loading cannot starve training), and the process's
peak resident memory (CPU) or peak allocated memory (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from lhl.config import load_config
from lhl.engine.build import build_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synthetic-nyu-demo")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (after 2 warm-up steps)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="config override key=value")
    args = parser.parse_args()

    run = build_run(load_config(preset=args.preset, overrides=args.overrides))
    config, device, benchmark, order, tasks = run.config, run.device, run.benchmark, run.order, run.tasks
    batch_size = config.train.batch_size

    # Renderer / loader throughput: the phase-1 dataset (image + first task's label).
    dataset = benchmark.dataset("train", list(range(4 * batch_size)), [order[0]])
    start = time.perf_counter()
    items = [dataset[i] for i in range(len(dataset))]
    load_rate = len(items) / (time.perf_counter() - start)
    batch = {k: torch.stack([item[k] for item in items[:batch_size]]).to(device) for k in items[0]}

    model, _ = run.build_model(order)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    first = order[0]

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = tasks[first].loss(model(batch["image"], [first])[first], batch[first])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    model.train()
    for _ in range(2):
        step()
    times = [step() for _ in range(args.steps)]
    train_rate = batch_size / statistics.median(times)

    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(3):
            model(batch["image"], order)
        eval_rate = 3 * batch_size / (time.perf_counter() - t0)

    if device.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated (CUDA)"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB resident (process peak)"
    h, w = config.data.resolution
    print(f"preset {args.preset}: {config.model.encoder}, {h}x{w}, batch {batch_size}, device {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"training step (1 head):     {train_rate:8.1f} images/s")
    print(f"evaluation ({len(order)} heads):      {eval_rate:8.1f} images/s")
    print(f"renderer via phase dataset: {load_rate:8.1f} images/s  (ratio to training: {load_rate / train_rate:.1f}x)")
    print(f"peak memory: {peak}")


if __name__ == "__main__":
    main()
