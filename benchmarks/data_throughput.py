"""Can synthetic data keep up with training? Renderer vs pre-rendered loader vs a training step.

    python benchmarks/data_throughput.py [--images 32] [--batch 8] [--steps 2] [--threads 1]
                                         [--resolution 288 384] [--device cpu]

At ``--resolution`` (default 288×384, the NYUv2 size), measures images/s of

- the renderer as a phase reads it: ``synthetic-nyu``'s dataset (image + segmentation) through a
  ``DataLoader`` (batch ``--batch``) with 0 workers (this process, ``--threads`` threads) and with
  2 workers (one thread each; worker start-up excluded: each loader rate is its second pass);
- ``lhl data render`` of ``--images`` training images into a temporary directory (renderer with
  segmentation, depth and normal, plus the ``.npy`` writes; 0 workers);
- the ``nyuv2`` loader reading that directory (image + segmentation, as phase 1 reads it), 0 and 2
  workers (the first pass warms the page cache);
- a vanilla training step (dilated ResNet-18 + one ASPP head, forward, backward, Adam), batch
  ``--batch``, on ``--device`` with ``--threads`` threads;

and prints each rate as a multiple of the training step's (> 1: the data keeps up with training).
Absolute numbers depend on the machine and its load; the ratios are measured in one process.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from lhl.config.schema import DataConfig
from lhl.data.synthetic.export import render_to_disk
from lhl.models import MultiTaskNet
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins


def loader_rate(dataset, batch: int, workers: int) -> float:
    """Images/s of the second pass over ``dataset`` (the first starts the workers, warms the page cache)."""
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    for _ in loader:
        pass
    start = time.perf_counter()
    count = sum(len(b["image"]) for b in loader)
    return count / (time.perf_counter() - start)


def train_rate(bench, batch: dict, steps: int, device: torch.device) -> float:
    task = bench.make_task("segmentation")
    torch.manual_seed(0)
    model = MultiTaskNet(ENCODERS.get("resnet18")(), [12, 24, 36], 256, 0.5).to(device)
    model.add_task("segmentation", task.out_channels)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    batch = {k: v.to(device) for k, v in batch.items()}

    def step() -> None:
        loss = task.loss(model(batch["image"], ["segmentation"])["segmentation"], batch["segmentation"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(batch["image"]) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="images rendered / loaded per measurement")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="timed training steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process (0: torch's choice)")
    parser.add_argument("--resolution", type=int, nargs=2, default=[288, 384], metavar=("H", "W"))
    parser.add_argument("--device", default="cpu", help="device of the training step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_builtins()
    size, n, batch = list(args.resolution), args.images, args.batch
    rates: dict[str, float] = {}

    synthetic = BENCHMARKS.get("synthetic-nyu")(DataConfig(resolution=size, train_size=n, test_size=1), 0)
    rendered = synthetic.dataset("train", range(n), ["segmentation"])
    for workers in (0, 2):
        rates[f"renderer (synthetic-nyu dataset), {workers} workers"] = loader_rate(rendered, batch, workers)

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "synthetic")
        start = time.perf_counter()
        render_to_disk(root, "synthetic-nyu", DataConfig(resolution=size, train_size=n, test_size=1), batch=batch)
        rates["lhl data render (3 labels + .npy writes), 0 workers"] = (n + 1) / (time.perf_counter() - start)
        disk = BENCHMARKS.get("nyuv2")(DataConfig(root=root, resolution=size), 0)
        dataset = disk.dataset("train", range(n), ["segmentation"])
        for workers in (0, 2):
            rates[f"nyuv2 loader on the rendered directory, {workers} workers"] = loader_rate(dataset, batch, workers)
        first = next(iter(DataLoader(dataset, batch_size=batch)))

    device = torch.device(args.device)
    training = train_rate(disk, first, args.steps, device)
    load = os.getloadavg()
    print(f"data throughput vs training, {size[0]}x{size[1]}, batch {batch}, {n} images, training on {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads in this process, "
          f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, rate in rates.items():
        print(f"  {name:58s} {rate:8.1f} images/s  ({rate / training:6.2f}x training)")
    print(f"  {'training step (vanilla, dilated ResNet-18 + ASPP head)':58s} {training:8.2f} images/s")


if __name__ == "__main__":
    main()
