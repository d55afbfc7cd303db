"""HAD's step cost at the last phase against vanilla, a student-only floor and the authors' scheme.

For synthetic-nyu (3 tasks) and synthetic-taskonomy (10 tasks), at the LAST phase (every head
present, t−1 old tasks), for the demo's 128-channel heads and the paper's 256-channel heads, times
one training step (forward, losses, backward, Adam step; what the phase loop does) of

* ``vanilla``      — new-task loss only (student forward on the new head);
* ``had``          — lhl's HAD (HAD paper Sec. 4): one student pass over all heads, one teacher
                     encoder pass for all old heads (docs/deviations.md, "One teacher pass");
* ``had-cached``   — the same served from the teacher cache (``train.teacher_cache``, filled at
                     ``before_phase``, outside the timed region): only the student runs;
* ``student-only`` — the floor of any all-heads distillation: student forward on all heads, the
                     new-task loss plus, per old task, the mean of the task's per-pixel
                     distillation loss ℓ_j against constant targets (the teacher's pseudo-labels,
                     computed once), backward, Adam step;
* ``authors``      — HAD as the authors' code runs it: the whole teacher (encoder + head)
                     recomputed once per old task;

and prints

* (a) HAD / vanilla, with and without the cache;
* (b) cached HAD / student-only (target ≤ 1.05): what HAD's own work (pseudo-labels, group masks,
  DB-HAD and SG-HAD) adds to the floor;
* (c) authors / cached HAD beside its limit authors / student-only; their quotient, taken within
  each round (= student-only / cached HAD, so 1 / (b)), should be ≥ 95 %;
* (d) the share of the HAD step spent in the HAD loss functions (``lhl.losses.had``: group masks,
  Sobel, the geometric means and masked means, forward **and** backward; not ℓ_j itself), timed
  inside the ``had`` arm's steps (target ≤ 3 %).

All arms share one model (all heads), one rendered batch and one Adam optimiser, run in one
process, interleaved round by round with a rotating order so that load drift on a shared machine
affects them alike; warm-up rounds are discarded; a ratio is the median over the measured rounds
of the ratio of the two arms' steps within a round.

    python benchmarks/step_ratios.py [--benchmarks synthetic-nyu synthetic-taskonomy]
                                     [--head-channels 128 256] [--steps 5] [--warmup 1]
                                     [--encoder resnet18] [--resolution 64 64] [--batch-size 8]
                                     [--threads 1] [--device cpu] [--clock wall|cpu]

``--clock cpu`` times with the calling thread's CPU time instead of the wall clock: with one
intra-op thread every operation, the backward pass included, runs on that thread, so the ratios
stay meaningful on a CPU shared with other processes (cache and memory-bandwidth contention
remain).

The cached arm is lhl's HAD given the training loader at ``before_phase``: it fills the teacher
cache (pseudo-labels, fp32, in memory) for the phase's images and serves every step from it by
``batch["index"]`` (docs/design.md, "Teacher cache").
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import lhl.methods.had as had_method
from torch.utils.data import DataLoader, default_collate

from lhl.config import load_config
from lhl.engine.build import build_run
from lhl.engine.hooks import RunContext, StepOutput
from lhl.methods.distillation import DistillationMethod
from lhl.methods.had import HAD
from lhl.methods.vanilla import Vanilla

ARMS = ("vanilla", "had", "had-cached", "student-only", "authors")
#: ``--clock``: wall time, or the CPU time of the calling thread (with one intra-op thread every
#: operation, the backward pass included, runs on it; robust against other processes' load).
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
now = time.perf_counter


class NaiveHAD(HAD):
    """HAD as the authors' code runs it: the whole teacher (encoder + head) once per old task."""

    def teacher_outputs(self, ctx, images):
        return {task: self.teacher.outputs(images, [task])[task] for task in ctx.old_tasks}


def train_step(ctx, method, batch, optimizer) -> float:
    """One step as the phase loop runs it; returns its time in seconds (``now``)."""
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    start = now()
    outputs, features = ctx.model(batch["image"], method.forward_tasks(ctx), return_features=True)
    task = ctx.phase_tasks[0]
    terms = {"new": ctx.tasks[task].loss(outputs[task].float(), batch[task])}
    terms.update(method.loss_terms(ctx, batch, StepOutput(outputs, features)))
    optimizer.zero_grad(set_to_none=True)
    sum(terms.values()).backward()
    optimizer.step()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize()
    return now() - start


class LossClock:
    """Wall time spent in the HAD loss functions, forward and backward, per arm.

    Wraps ``group_masks_batched`` and ``had_terms_batched`` as the HAD method imported them; the
    terms run inside an autograd Function whose backward is timed too (it differentiates the inner
    graph with :func:`torch.autograd.grad`, the same gradient)."""

    def __init__(self) -> None:
        self.arm = None
        self.seconds: dict[str, float] = {}
        self._masks, self._terms = had_method.group_masks_batched, had_method.had_terms_batched
        clock = self

        class Terms(torch.autograd.Function):
            @staticmethod
            def forward(ctx, kwargs, groups, edge_threshold, *maps):
                with torch.enable_grad():
                    leaves = [m.detach().requires_grad_(m.requires_grad) for m in maps]
                    start = now()
                    db, sg = clock._terms(leaves, groups, edge_threshold, **kwargs)
                    clock.add(now() - start)
                ctx.leaves, ctx.outs = leaves, (db, sg)
                return db.detach(), sg.detach()

            @staticmethod
            def backward(ctx, grad_db, grad_sg):
                start = now()
                pairs = [(o, g) for o, g in zip(ctx.outs, (grad_db, grad_sg)) if o.requires_grad]
                wanted = [leaf for leaf in ctx.leaves if leaf.requires_grad]
                grads = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                                 allow_unused=True) if pairs and wanted else [])
                out = [next(grads) if leaf.requires_grad else None for leaf in ctx.leaves]
                clock.add(now() - start)
                return (None, None, None, *out)

        def masks(*args, **kwargs):
            start = now()
            out = clock._masks(*args, **kwargs)
            clock.add(now() - start)
            return out

        def terms(loss_maps, groups, edge_threshold, **kwargs):
            return Terms.apply(kwargs, groups, edge_threshold, *loss_maps)

        had_method.group_masks_batched, had_method.had_terms_batched = masks, terms

    def add(self, seconds: float) -> None:
        if self.arm is not None:
            self.seconds[self.arm] = self.seconds.get(self.arm, 0.0) + seconds


class StudentOnly(DistillationMethod):
    """Student on all heads; per old task the mean of ℓ_j against constant targets (the floor)."""

    name = "student-only"
    targets: dict[str, torch.Tensor] = {}

    def loss_terms(self, ctx, batch, out):
        return {f"distill/{name}": ctx.tasks[name].distill_map(out.outputs[name].float(), self.targets[name]).mean()
                for name in ctx.old_tasks}


def last_phase(benchmark_name: str, args):
    """Context at the last phase of ``benchmark_name`` (model with all heads), one batch (the
    whole dataset) and the dataset (its items carry ``index``, which the teacher cache serves)."""
    config = load_config(preset="synthetic-nyu-demo", overrides=[
        f"benchmark={benchmark_name}", f"model.encoder={args.encoder}", f"device={args.device}",
        f"data.resolution=[{args.resolution[0]},{args.resolution[1]}]", f"train.batch_size={args.batch_size}",
        f"model.head_channels={args.head_channels}", "train.teacher_cache=auto", "train.teacher_cache_storage=memory"])
    run = build_run(config)
    order = run.order
    model, _ = run.build_model(order)
    ctx = RunContext(run.config, model, run.tasks, order, run.device, lambda *a, **k: None,
                     phase=len(order), phase_tasks=[order[-1]])
    dataset = run.benchmark.dataset("train", range(args.batch_size), [order[-1]])
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    return ctx, {k: v.to(run.device) for k, v in batch.items()}, dataset


def measure(benchmark_name: str, head_channels: int, args, clock: LossClock) -> dict[str, float]:
    ctx, batch, dataset = last_phase(benchmark_name, argparse.Namespace(**{**vars(args), "head_channels": head_channels}))
    methods = {"vanilla": Vanilla(Vanilla.Options()), "had": HAD(HAD.Options()),
               "had-cached": HAD(HAD.Options()), "student-only": StudentOnly(StudentOnly.Options()),
               "authors": NaiveHAD(HAD.Options())}
    for name, method in methods.items():
        # the distillation arms freeze a teacher of the current model; given the loader, the
        # cached arm fills the teacher cache (train.teacher_cache) instead, outside the timed region
        method.before_phase(ctx, DataLoader(dataset, batch_size=args.batch_size) if name == "had-cached" else None)
    assert methods["had-cached"].teacher_cache is not None and methods["had"].teacher_cache is None
    teacher = methods["had"].teacher.outputs(batch["image"], ctx.old_tasks)
    methods["student-only"].targets = {name: ctx.tasks[name].pseudo_label(teacher[name].float())
                                       for name in ctx.old_tasks}
    ctx.model.train()
    optimizer = torch.optim.Adam(ctx.model.parameters(), lr=ctx.config.train.lr)
    times: dict[str, list[float]] = {name: [] for name in methods}
    shares: dict[str, list[float]] = {"had": [], "had-cached": []}
    for round_ in range(args.warmup + args.steps):
        k = round_ % len(ARMS)
        for name in ARMS[k:] + ARMS[:k]:
            clock.arm, clock.seconds = name, {}
            elapsed = train_step(ctx, methods[name], batch, optimizer)
            clock.arm = None
            if round_ >= args.warmup:
                times[name].append(elapsed)
                if name in shares:
                    shares[name].append(clock.seconds.get(name, 0.0) / elapsed)
    def ratio(num: str, den: str) -> float:
        """Median over the rounds of the ratio within a round (adjacent steps: load drift cancels)."""
        return statistics.median(a / b for a, b in zip(times[num], times[den]))

    return {"tasks": len(ctx.task_order), "vanilla_ms": 1e3 * statistics.median(times["vanilla"]),
            "had": ratio("had", "vanilla"), "cached": ratio("had-cached", "vanilla"),
            "b": ratio("had-cached", "student-only"),
            "authors_cached": ratio("authors", "had-cached"), "authors_floor": ratio("authors", "student-only"),
            "d": statistics.median(shares["had"]), "d_cached": statistics.median(shares["had-cached"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", nargs="+", default=["synthetic-nyu", "synthetic-taskonomy"])
    parser.add_argument("--head-channels", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=5, help="measured rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--resolution", type=int, nargs=2, default=[64, 64], metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on the CPU")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or the calling thread's CPU time (with --threads 1 on a loaded CPU)")
    args = parser.parse_args()
    global now
    now = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    clock = LossClock()
    print(f"last phase; encoder {args.encoder} (dilated), {args.resolution[0]}x{args.resolution[1]}, "
          f"batch {args.batch_size}, device {args.device}, {args.threads} thread(s), {args.clock} clock, "
          f"median of {args.steps} rounds after {args.warmup} warm-up; load average before "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("(a) HAD / vanilla (on-the-fly teacher, cached teacher outputs)   (b) cached HAD / student-only, "
          "target <= 1.05\n(c) authors / cached HAD beside authors / student-only, quotient target >= 95%   "
          "(d) HAD loss functions' share of the HAD step (fwd+bwd), target <= 3%")
    header = (f"{'benchmark':<21}{'tasks':>6}{'heads':>6}{'vanilla ms':>11}{'(a) HAD':>9}{'cached':>8}"
              f"{'(b)':>7}{'(c) auth/HAD':>13}{'auth/floor':>11}{'quot.':>7}{'(d)':>7}{'cached':>8}")
    print(header)
    for name in args.benchmarks:
        for channels in args.head_channels:
            r = measure(name, channels, args, clock)
            quotient = 1 / r["b"]  # (authors / cached HAD) / (authors / student-only), round by round
            print(f"{name:<21}{r['tasks']:>6}{channels:>6}{r['vanilla_ms']:>11.0f}{r['had']:>9.2f}{r['cached']:>8.2f}"
                  f"{r['b']:>7.3f}{r['authors_cached']:>13.2f}{r['authors_floor']:>11.2f}{quotient:>7.1%}"
                  f"{r['d']:>7.1%}{r['d_cached']:>8.1%}", flush=True)
    print(f"load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
