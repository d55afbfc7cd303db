"""The LHL4DP phase loop (HAD paper, Sec. 3.2): one task per phase, evaluation of all seen tasks after
each phase, a checkpoint per phase, resumable — alone or as one of several data-parallel processes.

The trainer ties three parts together: run-directory I/O (:mod:`lhl.engine.run_record`: the
configuration check, provenance, checkpoints, performance — written by the main process only),
phase fitting (:mod:`lhl.engine.fitting`: the step, precision, memory format, DDP, the optimiser a
method may supply) and evaluation (:mod:`lhl.engine.evaluation`: accumulators merged across
processes). It knows nothing about specific methods: it calls the hooks of
:class:`lhl.engine.hooks.Method`. Everything is validated by :func:`lhl.engine.build.build_run`
before the run directory is touched.

Under ``torchrun`` (``lhl run --nproc N``) each process trains on its share of every batch
(:class:`lhl.engine.distributed.ShardedSampler`) and evaluates its share of the test set; process 0
holds the lock and writes the run directory, every process reads the checkpoint it resumes from.

Safety: a non-finite loss term or gradient stops the run (phase, epoch, step named) and the
parameters are checked before a phase is saved, so a NaN never becomes a completed phase; SIGINT
and SIGTERM stop the run between two steps with a line saying how to resume.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from lhl.config.schema import RunConfig
from lhl.engine import distributed
from lhl.engine.build import Run, build_run
from lhl.engine.distributed import ShardedSampler
from lhl.engine.evaluation import evaluate
from lhl.engine.events import EventLog
from lhl.engine.fitting import (FULL_GRADIENT_CHECK_EVERY, PhaseFitter, encoder_grad_norms, epoch_line,
                                gradient_sentinels, linear_warmup_decay)
from lhl.engine.hooks import RunContext
from lhl.engine.rundir import RunDirectory
from lhl.engine.run_record import RunRecord
from lhl.engine.seeding import derive_seed, seed_everything, worker_init_fn
from lhl.engine.tensorboard_log import ScalarLog, scalar_log
from lhl.errors import Interrupted, LhlError, NonFiniteError, RunDirectoryError
from lhl.report.tables import format_phase_metrics

# Kept for code that imported these names from here.
NonFiniteLossError = NonFiniteError
__all__ = ["Trainer", "NonFiniteError", "NonFiniteLossError", "RunDirectoryError", "linear_warmup_decay",
           "encoder_grad_norms", "epoch_line", "gradient_sentinels", "FULL_GRADIENT_CHECK_EVERY"]

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Trainer:
    """Runs one configuration into one run directory."""

    def __init__(self, config: RunConfig, run_dir: str | Path, quiet: bool = False, resume: bool = False,
                 echo=print) -> None:
        self.spec: Run = build_run(config)
        self.config = self.spec.config  # resolved: every method option and the task order filled in
        self.method = self.spec.make_method()
        self.method_cls = self.spec.method_cls
        self.benchmark, self.order, self.tasks = self.spec.benchmark, self.spec.order, self.spec.tasks
        device = distributed.init_from_environment(self.spec.device.type)  # None unless under torchrun
        if device is not None:
            self.spec.device = device
        self.device = self.spec.device
        self.main = distributed.is_main()
        self.run_dir = Path(run_dir)
        self.directory = RunDirectory(self.run_dir)
        self.directory.check_usable()
        self.record = RunRecord(self.config, self.directory, self.benchmark, self.order, self.device)
        self.quiet, self.resume = quiet, resume
        self.echo = (lambda *a, **k: None) if quiet or not self.main else echo
        self._stop_signal: int | None = None
        # Progress: tqdm bars on a terminal; otherwise (a log file, a pipe) one line per epoch, no '\r'.
        self.bars = not quiet and self.main and sys.stderr.isatty()
        # TensorBoard copy of the losses and metrics (logging.tensorboard), or nothing; creates no file yet.
        self.scalars = scalar_log(self.config.logging, self.run_dir) if self.main else ScalarLog()
        self.fitter = PhaseFitter(self.config, self.method, self.device, self.scalars, self.echo, self.bars,
                                  lambda: self._stop_signal is not None, self._check_interrupt)

    def _loader(self, split: str, indices: list[int], tasks: list[str], train: bool, seed: int) -> DataLoader:
        """A training loader (this process's share of each shuffled global batch) or an evaluation
        loader (over ``indices``, in order)."""
        train_cfg = self.config.train
        if train:
            batch_size = distributed.per_process_batch(train_cfg.batch_size)
        else:
            batch_size = train_cfg.eval_batch_size or 2 * train_cfg.batch_size
        generator = torch.Generator().manual_seed(seed)
        # One process draws exactly what a shuffling DataLoader draws; under DDP each process takes
        # its share of that permutation (lhl.engine.distributed.ShardedSampler).
        sampler = ShardedSampler(len(indices), generator) if train else None
        return DataLoader(
            self.benchmark.dataset(split, indices, tasks), batch_size=batch_size, sampler=sampler,
            num_workers=self.config.data.num_workers, generator=generator, worker_init_fn=worker_init_fn,
            pin_memory=self.device.type == "cuda", drop_last=False)

    def _eval_loader(self, split: str, tasks: list[str]) -> DataLoader:
        """This process's contiguous part of the whole ``split`` (all of it in one process)."""
        start, stop = distributed.shard_bounds(self.benchmark.num_images(split))
        return self._loader(split, list(range(start, stop)), tasks, False, 0)

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict[str, Any]:
        with self._signals_handled():
            if self.main:
                self.directory.acquire()
            events = None
            try:
                model, weights_hash = self.spec.build_model()
                done, attempt, record = self._start(weights_hash)
                self.record.write_provenance(record)
                if self.main:
                    events = EventLog(self.run_dir / "events.jsonl", attempt)
                log = events if events is not None else (lambda *a, **k: None)
                ctx = RunContext(self.config, model, self.tasks, self.order, self.device, log,
                                 scratch_dir=self.run_dir)
                return self._run_phases(ctx, done)
            except BaseException:
                if self.main and events is None:
                    self.directory.discard_if_new()
                raise
            finally:
                self.scalars.close()
                if events is not None:
                    events.close()
                if self.main:
                    self.directory.release()

    def _start(self, weights_hash: str | None) -> tuple[int, int, dict[str, Any]]:
        """Check (or create) the run directory on the main process and tell the others the outcome:
        (last completed phase, attempt, provenance), or the same error on every process."""
        if not distributed.is_distributed():
            return self.record.prepare(weights_hash, self.resume)
        if self.main:
            try:
                done, attempt, record = self.record.prepare(weights_hash, self.resume)
            except LhlError as exc:
                distributed.broadcast_object(("error", str(exc), exc.exit_code))
                raise
            except BaseException:
                distributed.broadcast_object(("error", "process 0 could not open the run directory", 1))
                raise
            distributed.broadcast_object(("ok", done, attempt, record))
            return done, attempt, record
        outcome = distributed.broadcast_object(None)
        if outcome[0] == "error":
            raise _FollowerError(outcome[1], outcome[2])
        return outcome[1], outcome[2], outcome[3]

    def _run_phases(self, ctx: RunContext, done: int) -> dict[str, Any]:
        plan = self.spec.plan()
        performance = {"benchmark": self.config.benchmark, "method": self.config.method["name"],
                       "tasks": list(self.order),
                       "directions": {t: dict(self.tasks[t].higher_is_better) for t in self.order},
                       "phases": []}
        self.method.setup(ctx)
        validation = None
        if done:
            self.record.restore(ctx, self.method, done, {t: self.tasks[t].out_channels for t in self.order})
            saved = self.record.read_performance()
            performance["phases"] = saved["phases"][:done]
            if done == len(plan):
                validation = saved.get("validation")  # a finished run keeps its validation result
            ctx.log("resume", phase=done, completed_phases=done)
            self.echo(f"resuming {self.run_dir} after phase {done}")
        else:
            ctx.log("run_start", method=self.config.method["name"], tasks=self.order, completed_phases=0,
                    processes=distributed.world_size())
        for phase, (phase_tasks, indices) in enumerate(plan, start=1):
            if phase <= done:
                continue
            seed_everything(derive_seed(self.config.seed, phase))
            ctx.phase, ctx.phase_tasks, ctx.epoch = phase, phase_tasks, 0
            for task in phase_tasks:
                ctx.model.add_task(task, self.tasks[task].out_channels)
            self.fitter.prepare_model(ctx)
            label = "joint" if self.method_cls.joint else phase_tasks[0]
            ctx.log("phase_start", phase=phase, task=label, images=len(indices))
            self.echo(f"phase {phase}/{len(plan)}: {label} ({len(indices)} images)")
            loader = self._loader("train", indices, phase_tasks, True, derive_seed(self.config.seed, phase, 1))
            self.method.before_phase(ctx, loader)
            self.fitter.prepare_model(ctx)  # again (idempotent), for modules before_phase added (adapters)
            self.fitter.fit(ctx, loader, len(plan))
            self.method.after_phase(ctx, loader)
            self._check_interrupt(ctx)
            metrics = self._evaluate(ctx, "test", f"eval phase {phase}")
            self._check_parameters(ctx)
            ctx.log("evaluation", phase=phase, metrics=metrics)
            for task, values in metrics.items():
                self.scalars.scalars(f"eval/{task}", values, self.fitter.phase_end_step)
            performance["phases"].append({"phase": phase, "task": label, "metrics": metrics})
            self.record.save_phase(ctx, self.method, phase)
            self.record.write_performance(performance)
            self.echo(format_phase_metrics(phase, label, metrics))
        if self.config.data.val_size > 0:
            if validation is None:
                validation = self._evaluate(ctx, "val", "eval validation")
                ctx.log("validation", metrics=validation)
                self.echo("validation: " + "; ".join(
                    f"{task} " + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
                    for task, values in validation.items()))
            performance["validation"] = validation
            self.record.write_performance(performance)
        self.record.write_summary(performance)
        ctx.log("run_end")
        distributed.barrier()  # no process leaves before process 0 has written everything
        return performance

    def _evaluate(self, ctx: RunContext, split: str, desc: str) -> dict[str, dict[str, float]]:
        """Every seen task on the whole ``split`` (``"val"``: the validation split of
        ``data.val_size`` images, read only by selection, ``lhl sweep``), each process on its part,
        accumulators merged across processes."""
        seen = [self.tasks[t] for t in ctx.model.tasks]
        loader = self._eval_loader(split, ctx.model.tasks)
        # Under DDP a process must not leave the evaluation alone: the stop is checked after it.
        should_stop = None if distributed.is_distributed() else (lambda: self._stop_signal is not None)
        metrics = evaluate(ctx.model, seen, loader, self.device, not self.bars, desc=desc, should_stop=should_stop,
                           exact_quantiles=self.config.train.eval_normal_median == "exact")
        self._check_interrupt(ctx, collective=True)
        return metrics

    def _check_parameters(self, ctx: RunContext) -> None:
        """A phase whose weights hold NaN/inf is never saved as completed."""
        for name, tensor in list(ctx.model.named_parameters()) + list(ctx.model.named_buffers()):
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                ctx.log("non_finite_parameters", phase=ctx.phase, tensor=name)
                raise NonFiniteError(f"model tensor {name!r} is not finite after phase {ctx.phase}; the phase was "
                                     "not saved, checkpoints of completed phases are intact")

    # ------------------------------------------------------------------ interruption
    @contextmanager
    def _signals_handled(self) -> Iterator[None]:
        """SIGINT/SIGTERM set a flag the loop checks between steps (a second signal stops at once)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signum

        previous = {s: signal.signal(s, handler) for s in SIGNAL_EXIT}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)

    def _check_interrupt(self, ctx: RunContext, collective: bool = False) -> None:
        """Raise :class:`Interrupted` if a stop signal arrived (``collective``: on any process — every
        process must call it at the same point)."""
        signum = self._stop_signal
        if collective and distributed.is_distributed():
            signum = int(distributed.all_reduce_max(torch.tensor([signum or 0]))[0]) or None
        if signum is None:
            return
        name = signal.Signals(signum).name
        ctx.log("interrupted", phase=ctx.phase, epoch=ctx.epoch, step=ctx.step, signal=name)
        raise Interrupted(f"{name} received during phase {ctx.phase}; stopped before saving it (completed phases "
                          f"are saved). Resume with: {resume_command(self.run_dir)}", SIGNAL_EXIT[signum])


class _FollowerError(LhlError):
    """Process 0's error, raised on the other processes of a DDP run (process 0 prints it)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resume_command(run_dir: Path) -> str:
    """The command line that continues this run: the one that started it, with --resume and --out."""
    argv = list(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name in ("lhl", "__main__.py") else []
    if not argv or argv[0] != "run":
        return f"lhl run --resume --out {shlex.quote(str(run_dir))} (with the same --config/--preset/--set options)"
    if "--out" not in argv:
        argv += ["--out", str(run_dir)]
    if "--resume" not in argv:
        argv.append("--resume")
    if distributed.world_size() > 1 and "--nproc" not in argv:
        argv += ["--nproc", str(distributed.world_size())]
    return shlex.join(["lhl", *argv])
