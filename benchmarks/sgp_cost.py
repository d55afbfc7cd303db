"""SGP's end-of-phase cost relative to one training epoch, and the memory of its stored bases.

For each resolution (default: the synthetic presets' 64×64 and NYUv2's 288×384), in one process:

* ``epoch``  — the median time of one training step (forward of the encoder and one paper head,
  loss, backward, Adam step) on a batch of ``--batch-size`` images, times the number of steps of
  one epoch over ``--epoch-images`` images (default 265 = NYUv2's 795 training images / 3 phases);
* ``gram``   — the time to accumulate every encoder conv's Gram matrix over ``--images`` images,
  **extrapolated linearly to ``--samples`` (default 125, SGP's sample)**: the accumulation is one
  encoder pass plus one d×d product per image and conv, so it scales with the image count;
* ``bases``  — the eigen-decompositions and basis updates of every conv, after the first phase
  (one decomposition per layer) and after a later phase (one more, of the residual Gram); this
  part does not depend on the image count;
* ``projection`` — the extra time per training step in a later phase: projecting every conv's
  update on its bases (``U − U B diag(λ) Bᵀ``), median of ``--steps`` repetitions, with the ranks
  measured here (a lower bound) and with full bases r = d (the upper bound). It does not depend on
  the resolution, so it weighs most at small images;
* ``memory`` — bytes of the stored bases and importances (float32) after the first and the later
  update, and the worst case (full bases, Σ d² floats). Ranks measured on a few images are
  smaller than on 125, so the measured memory is a lower bound; the worst case is an upper bound.

Prints the end-of-phase cost as a multiple of one epoch. Images come from the synthetic-nyu
renderer (random initial weights, as the synthetic presets).

    python benchmarks/sgp_cost.py [--encoder resnet18] [--resolutions 64x64 288x384] [--images 4]
                                  [--samples 125] [--batch-size 8] [--epoch-images 265] [--steps 3]
                                  [--threads 1] [--device cpu]

A quick check of the script itself: ``--encoder tiny --images 2 --resolutions 32x32``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch.utils.data import default_collate

from lhl.config import load_config
from lhl.methods.sgp import encoder_convs, encoder_grams
from lhl.methods.sgp_math import project_out, update_bases
from lhl.models import MultiTaskNet
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _images(resolution: tuple[int, int], count: int) -> dict[str, torch.Tensor]:
    config = load_config(preset="smoke", overrides=[f"data.resolution=[{resolution[0]},{resolution[1]}]",
                                                    f"data.train_size={max(count, 1)}"])
    benchmark = BENCHMARKS.get("synthetic-nyu")(config.data, config.seed)
    data = benchmark.dataset("train", range(count), ["segmentation"])
    return default_collate([data[i] for i in range(len(data))]), benchmark.make_task("segmentation")


def measure(resolution: tuple[int, int], args) -> dict[str, float]:
    device = torch.device(args.device)
    count = max(args.images, args.batch_size)
    batch, task = _images(resolution, count)
    batch = {k: v.to(device) for k, v in batch.items()}
    torch.manual_seed(0)
    model = MultiTaskNet(ENCODERS.get(args.encoder)()).to(device)  # paper head: 256 channels, rates 12/24/36
    model.add_task("segmentation", task.out_channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    model.train()
    images, labels = batch["image"][:args.batch_size], batch["segmentation"][:args.batch_size]
    steps = []
    for step in range(1 + args.steps):
        _sync(device)
        start = time.perf_counter()
        loss = task.loss(model(images, ["segmentation"])["segmentation"].float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if step:  # the first step is warm-up
            steps.append(time.perf_counter() - start)
    epoch = statistics.median(steps) * math.ceil(args.epoch_images / args.batch_size)

    loader = [{"image": batch["image"][:args.images]}]
    _sync(device)
    start = time.perf_counter()
    grams = encoder_grams(model, loader, device, args.images)
    _sync(device)
    gram = (time.perf_counter() - start) * args.samples / args.images

    def update(previous):
        _sync(device)
        start = time.perf_counter()
        result = {name: update_bases(g, 0.97, 0.1, *previous.get(name, (None, None)))[:2] for name, g in grams.items()}
        _sync(device)
        return result, time.perf_counter() - start

    def memory(state):
        return sum(4 * (b.numel() + lam.numel()) for b, lam in state.values())

    first, first_time = update({})
    # a later phase, simulated with the same Gram matrices (the cost is the same: one eigh per layer)
    later, later_time = update(first)

    def projection(state):
        weights = {name: conv.weight.detach() for name, conv in encoder_convs(model).items()}
        state = {name: (b.float().to(device), lam.float().to(device)) for name, (b, lam) in state.items()}
        times = []
        for _ in range(1 + args.steps):
            _sync(device)
            start = time.perf_counter()
            for name, (bases, lam) in state.items():
                project_out(weights[name], bases, lam)
            _sync(device)
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    full = {name: (torch.eye(g.shape[0], device=device), torch.ones(g.shape[0], device=device))
            for name, g in grams.items()}
    worst = sum(4 * (g.shape[0] ** 2 + g.shape[0]) for g in grams.values())
    return {"epoch": epoch, "step": epoch / math.ceil(args.epoch_images / args.batch_size),
            "projection": projection(later), "projection_full": projection(full),
            "gram": gram, "first": first_time, "later": later_time,
            "memory_first": memory(first), "memory_later": memory(later), "memory_worst": worst,
            "largest_d": max(g.shape[0] for g in grams.values()), "convs": len(grams)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--resolutions", nargs="+", default=["64x64", "288x384"], help="HxW")
    parser.add_argument("--images", type=int, default=4, help="images actually measured for the Gram matrices")
    parser.add_argument("--samples", type=int, default=125, help="images the Gram time is extrapolated to")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epoch-images", type=int, default=265, help="images per training epoch (one phase's chunk)")
    parser.add_argument("--steps", type=int, default=3, help="measured training steps (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on the CPU")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_builtins()
    print(f"SGP end-of-phase cost / one training epoch ({args.epoch_images} images, batch {args.batch_size}); "
          f"encoder {args.encoder}, device {args.device}; Gram time measured on {args.images} images and "
          f"extrapolated linearly to {args.samples}")
    for text in args.resolutions:
        height, width = (int(v) for v in text.lower().split("x"))
        r = measure((height, width), args)
        mib = 2 ** 20
        print(f"{height}x{width}: {r['convs']} convs (largest d = {r['largest_d']}); "
              f"after the first phase {(r['gram'] + r['first']) / r['epoch']:.2f} epochs "
              f"(Gram {r['gram'] / r['epoch']:.2f}, bases {r['first'] / r['epoch']:.2f}); "
              f"after a later phase {(r['gram'] + r['later']) / r['epoch']:.2f} epochs; "
              f"stored bases {r['memory_first'] / mib:.2f} MiB after one phase, {r['memory_later'] / mib:.2f} MiB "
              f"after two (ranks from {args.images} images: a lower bound), at most {r['memory_worst'] / mib:.2f} MiB; "
              f"projection per later-phase step {r['projection'] / r['step']:.2f}× a training step "
              f"({r['projection_full'] / r['step']:.2f}× with full bases)")


if __name__ == "__main__":
    main()
