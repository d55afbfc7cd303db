"""What the per-step non-finite gradient check costs, as a fraction of a training step.

    python benchmarks/nonfinite_check_cost.py [--preset synthetic-nyu-demo] [--steps 30] [--set key=value ...]

After every backward pass the trainer checks the sentinel gradients (the input-side parameters of
the encoder and of each head, where every backward path ends), and all gradients every
``FULL_GRADIENT_CHECK_EVERY`` steps and on each epoch's last step (``PhaseFitter._check_gradients``);
every parameter and buffer once before a phase is saved. This script times training steps of
the preset's model (phase 1: encoder and first head) with and without the check, interleaved so
machine load affects both alike, and prints the medians, each check's own time, the amortised
per-step share, and the end-of-phase parameter check in steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lhl.config import load_config
from lhl.engine.build import build_run
from lhl.engine.hooks import RunContext
from lhl.engine.fitting import FULL_GRADIENT_CHECK_EVERY, PhaseFitter, gradient_sentinels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synthetic-nyu-demo")
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each kind (after 3 warm-up steps)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="config override key=value")
    args = parser.parse_args()

    run = build_run(load_config(preset=args.preset, overrides=args.overrides))
    first = run.order[0]
    model, _ = run.build_model([first])
    task = run.tasks[first]
    dataset = run.benchmark.dataset("train", list(range(run.config.train.batch_size)), [first])
    items = [dataset[i] for i in range(len(dataset))]
    batch = {k: torch.stack([item[k] for item in items]).to(run.device) for k in items[0]}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=run.config.train.lr)
    ctx = RunContext(run.config, model, run.tasks, run.order, run.device, lambda *a, **k: None, phase=1)
    model.train()

    sentinels = gradient_sentinels(model)

    def step(check: bool, full: bool = False) -> tuple[float, float]:
        t0 = time.perf_counter()
        loss = task.loss(model(batch["image"], [first])[first], batch[first])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t1 = time.perf_counter()
        if check:
            PhaseFitter._check_gradients(ctx, params if full else sentinels, 1)
        t2 = time.perf_counter()
        optimizer.step()
        return time.perf_counter() - t0, t2 - t1

    for _ in range(3):
        step(True)
    plain, checked, check_only, full_only = [], [], [], []
    for _ in range(args.steps):
        plain.append(step(False)[0])
        total, own = step(True)
        checked.append(total)
        check_only.append(own)
        full_only.append(step(True, full=True)[1])
    t0 = time.perf_counter()
    for _ in range(5):
        all(torch.isfinite(t).all() for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point())
    parameter_check = (time.perf_counter() - t0) / 5
    step_time = statistics.median(plain)
    print(f"preset {args.preset}: {run.config.model.encoder}, {run.config.data.resolution}, batch "
          f"{run.config.train.batch_size}, {sum(p.numel() for p in params):,} parameters, {torch.get_num_threads()} threads")
    print(f"training step without check: {step_time * 1e3:8.2f} ms (median of {args.steps})")
    print(f"training step with check:    {statistics.median(checked) * 1e3:8.2f} ms")
    sentinel, full = statistics.median(check_only), statistics.median(full_only)
    amortised = sentinel + (full - sentinel) / FULL_GRADIENT_CHECK_EVERY
    print(f"sentinel check ({sum(p.numel() for p in sentinels):,} values): {sentinel * 1e3:8.3f} ms = "
          f"{100 * sentinel / step_time:.3f} % of a step")
    print(f"full check (all gradients):  {full * 1e3:8.3f} ms = {100 * full / step_time:.2f} % of a step")
    print(f"per step, amortised (sentinels every step, all every {FULL_GRADIENT_CHECK_EVERY}): "
          f"{100 * amortised / step_time:.3f} % of a step")
    print(f"end-of-phase parameter check: {parameter_check * 1e3:.3f} ms = {parameter_check / step_time:.3f} steps, "
          "once per phase")


if __name__ == "__main__":
    main()
