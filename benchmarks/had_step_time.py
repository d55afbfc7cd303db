"""HAD's training-step cost relative to vanilla at the last phase (docs/design.md: one teacher pass).

For synthetic-nyu (3 tasks) and synthetic-taskonomy (10 tasks), at the LAST phase (every head
present, t−1 old tasks), prints the median time of one training step of

* ``had``   — lhl's HAD: one student encoder pass, one teacher encoder pass for all old heads;
* ``naive`` — HAD recomputing the whole teacher network once per old task (the authors' code);

divided by the median step time of ``vanilla`` (new-task loss only). A step is what the phase
loop does: forward, losses, backward, Adam step. All variants share one model (all heads) and
one rendered batch, run in one process, interleaved round by round (rotating the order) so that
load drift on a shared machine affects them alike; warm-up steps are discarded.

    python benchmarks/had_step_time.py [--encoder resnet18] [--resolution 64 64] [--batch-size 8]
                                       [--steps 3] [--warmup 1] [--head-channels 128]
                                       [--threads 1] [--device cpu]

Heads use the synthetic demo preset's settings (128 channels, rates 2/4/6); ``--head-channels
256`` gives the paper's heads, whose cost relative to the encoder is about twice as large. ``--threads``
defaults to 1: on a small shared CPU, several intra-op threads oversubscribe and make timings
erratic; use more on a dedicated machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import default_collate

from lhl.config import load_config
from lhl.engine.build import build_run
from lhl.engine.hooks import RunContext, StepOutput
from lhl.methods.had import HAD
from lhl.methods.vanilla import Vanilla


class NaiveHAD(HAD):
    """HAD as the authors' code runs it: the whole teacher (encoder + head) once per old task."""

    def teacher_outputs(self, ctx, images):
        return {task: self.teacher.outputs(images, [task])[task] for task in ctx.old_tasks}


def last_phase(benchmark_name: str, args) -> tuple[RunContext, dict[str, torch.Tensor]]:
    """Context at the last phase of ``benchmark_name`` (model with all heads) and one batch."""
    config = load_config(preset="synthetic-nyu-demo", overrides=[
        f"benchmark={benchmark_name}", f"model.encoder={args.encoder}", f"device={args.device}",
        f"data.resolution=[{args.resolution[0]},{args.resolution[1]}]", f"train.batch_size={args.batch_size}",
        f"model.head_channels={args.head_channels}"])
    run = build_run(config)
    order = run.order
    model, _ = run.build_model(order)
    ctx = RunContext(run.config, model, run.tasks, order, run.device, lambda *a, **k: None,
                     phase=len(order), phase_tasks=[order[-1]])
    data = run.benchmark.dataset("train", range(args.batch_size), [order[-1]])
    batch = default_collate([data[i] for i in range(len(data))])
    return ctx, {k: v.to(run.device) for k, v in batch.items()}


def train_step(ctx: RunContext, method, batch, optimizer) -> float:
    """One step as the phase loop runs it; returns its wall time in seconds."""
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    outputs, features = ctx.model(batch["image"], method.forward_tasks(ctx), return_features=True)
    task = ctx.phase_tasks[0]
    terms = {"new": ctx.tasks[task].loss(outputs[task].float(), batch[task])}
    terms.update(method.loss_terms(ctx, batch, StepOutput(outputs, features)))
    optimizer.zero_grad(set_to_none=True)
    sum(terms.values()).backward()
    optimizer.step()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(benchmark_name: str, args) -> dict[str, float]:
    ctx, batch = last_phase(benchmark_name, args)
    methods = {"vanilla": Vanilla(Vanilla.Options()), "had": HAD(HAD.Options()), "naive": NaiveHAD(HAD.Options())}
    for method in methods.values():
        method.before_phase(ctx, None)  # HAD variants: freeze a teacher of the current model
    ctx.model.train()
    optimizer = torch.optim.Adam(ctx.model.parameters(), lr=ctx.config.train.lr)
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for round_ in range(args.warmup + args.steps):
        for name in names[round_ % 3:] + names[:round_ % 3]:
            elapsed = train_step(ctx, methods[name], batch, optimizer)
            if round_ >= args.warmup:
                times[name].append(elapsed)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {"tasks": len(ctx.task_order), "had": median["had"] / median["vanilla"],
            "naive": median["naive"] / median["vanilla"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--resolution", type=int, nargs=2, default=[64, 64], metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="measured steps per variant (median)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded steps per variant")
    parser.add_argument("--head-channels", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on the CPU")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"step time / vanilla step time at the last phase; encoder {args.encoder}, "
          f"{args.resolution[0]}x{args.resolution[1]}, batch {args.batch_size}, head channels {args.head_channels}, "
          f"device {args.device}, {args.threads} thread(s), "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'benchmark':<22}{'tasks':>6}{'HAD (lhl)':>12}{'HAD naive':>12}")
    for name in ("synthetic-nyu", "synthetic-taskonomy"):
        r = measure(name, args)
        print(f"{name:<22}{r['tasks']:>6}{r['had']:>12.2f}{r['naive']:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
