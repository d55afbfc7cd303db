"""Can data loading starve training? NYUv2-format loader vs a ResNet-18 training step, one process.

    python benchmarks/loader_speed.py [--images 40] [--batch 4] [--steps 3] [--augment] [--threads N]

Writes a temporary NYUv2 fixture in MTAN's exact ``.npy`` layout at 288×384 (``--images``
training images), then measures images/s of

- the phase loader (image + segmentation, as phase 1 of NYUv2 reads it) through a
  ``DataLoader`` with 0 and with 2 workers, batch ``--batch``;
- a vanilla training step (dilated ResNet-18 + one ASPP head, forward, backward, Adam) at
  288×384 with batch ``--batch`` on the configured device (CPU by default);

and prints the ratios loader / training step (> 1: loading keeps up with training).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from lhl.config.schema import DataConfig
from lhl.data.testing import write_mtan
from lhl.models import MultiTaskNet
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins


def loader_rate(dataset, batch: int, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=False, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    count = sum(len(b["image"]) for b in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up step)")
    parser.add_argument("--augment", action="store_true", help="include RandomScaleCrop + flip in loading")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_builtins()
    size = (288, 384)
    with tempfile.TemporaryDirectory() as root:
        write_mtan(root, "nyuv2", n_train=args.images, n_test=1, size=size, block=16)
        data = DataConfig(root=root, resolution=list(size), augment=args.augment)
        bench = BENCHMARKS.get("nyuv2")(data, 0)
        dataset = bench.dataset("train", list(range(args.images)), ["segmentation"])
        loader_rate(dataset, args.batch, 0)  # warm the page cache
        rates = {workers: loader_rate(dataset, args.batch, workers) for workers in (0, 2)}
        batch = next(iter(DataLoader(dataset, batch_size=args.batch)))

    device = torch.device(args.device)
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

    step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    train_rate = args.steps * args.batch / (time.perf_counter() - start)

    print(f"NYUv2 loader vs ResNet-18 training step, 288x384, batch {args.batch}, device {device}, "
          f"torch threads {torch.get_num_threads()}, augment {args.augment}")
    for workers, rate in rates.items():
        print(f"  loader, {workers} workers: {rate:8.1f} images/s  ({rate / train_rate:6.1f}x the training step)")
    print(f"  training step:       {train_rate:8.2f} images/s")


if __name__ == "__main__":
    main()
