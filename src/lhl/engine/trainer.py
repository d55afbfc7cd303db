"""The LHL4DP phase loop (HAD paper, Sec. 3.2): one task per phase, evaluation of all seen tasks after
each phase, a checkpoint per phase, resumable.

The loop knows nothing about specific methods: it calls the hooks of
:class:`lhl.engine.hooks.Method`, sums the named loss terms they return with the new-task loss,
and checkpoints their state dicts. Everything is validated by :func:`lhl.engine.build.build_run`
before the run directory is touched.

Safety: a non-finite loss term or gradient stops the run (phase, epoch, step named) and the
parameters are checked before a phase is saved, so a NaN never becomes a completed phase; SIGINT
and SIGTERM stop the run between two steps with a line saying how to resume.
"""

from __future__ import annotations

import datetime
import shlex
import signal
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from lhl.config import config_differences
from lhl.config.schema import RunConfig
from lhl.engine.build import Run, build_run
from lhl.engine.checkpoint import write_json, write_text
from lhl.engine.hooks import RunContext, StepOutput
from lhl.engine.evaluation import evaluate
from lhl.engine.distributed import ShardedSampler
from lhl.engine.events import EventLog
from lhl.engine.provenance import provenance
from lhl.engine.rundir import RunDirectory
from lhl.engine.seeding import derive_seed, seed_everything, worker_init_fn
from lhl.engine.tensorboard_log import scalar_log
from lhl.errors import Interrupted, NonFiniteError, RunDirectoryError
from lhl.report.tables import format_phase_metrics, summary_markdown

# Kept for code that imported these names from here.
NonFiniteLossError = NonFiniteError
__all__ = ["Trainer", "NonFiniteError", "NonFiniteLossError", "RunDirectoryError", "linear_warmup_decay",
           "encoder_grad_norms"]

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: All gradients are checked every this many steps (and on each epoch's last step); the sentinels every step.
FULL_GRADIENT_CHECK_EVERY = 32


def gradient_sentinels(model: torch.nn.Module) -> list[torch.Tensor]:
    """The input-side trainable parameters of each top-level part (the encoder, every head): the
    first module, in registration order, that has trainable parameters. Backpropagation ends there,
    so a NaN/inf that enters any gradient flowing through that part reaches them; reading them costs
    a few thousand elements instead of the whole model (``benchmarks/nonfinite_check_cost.py``)."""
    parts = [model.encoder, *model.heads.values()] if hasattr(model, "heads") else [model]
    sentinels = []
    for part in parts:
        for module in part.modules():
            own = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if own:
                sentinels += own
                break
    return sentinels


def linear_warmup_decay(total_steps: int, warmup: float):
    """LR factor: linear 0→1 over ``warmup·total`` steps, then linear 1→0 (paper App. C.4)."""
    warm = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if warm > 0 and step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


class Trainer:
    """Runs one configuration into one run directory."""

    def __init__(self, config: RunConfig, run_dir: str | Path, quiet: bool = False, resume: bool = False,
                 echo=print) -> None:
        self.spec: Run = build_run(config)
        self.config = self.spec.config  # resolved: every method option and the task order filled in
        self.method = self.spec.make_method()
        self.method_cls = self.spec.method_cls
        self.benchmark, self.order, self.tasks = self.spec.benchmark, self.spec.order, self.spec.tasks
        self.device = self.spec.device
        self.run_dir = Path(run_dir)
        self.directory = RunDirectory(self.run_dir)
        self.directory.check_usable()
        self.quiet, self.resume = quiet, resume
        self.echo = (lambda *a, **k: None) if quiet else echo
        self._stop_signal: int | None = None
        # Progress: tqdm bars on a terminal; otherwise (a log file, a pipe) one line per epoch, no '\r'.
        self.bars = not quiet and sys.stderr.isatty()
        self._phases = 0
        # TensorBoard copy of the losses and metrics (logging.tensorboard), or nothing; creates no file yet.
        self.scalars = scalar_log(self.config.logging, self.run_dir)
        self._phase_end_step = 0

    # ------------------------------------------------------------------ set-up
    def _prepare(self, weights_hash: str | None) -> tuple[int, int, dict[str, Any]]:
        """Lock and check (or create) the run directory; return (last completed phase, attempt,
        provenance). Nothing is written to an existing run before every check has passed."""
        current = self.config.to_dict()
        fingerprint = self.benchmark.fingerprint(self.order)
        record = provenance(self.config, self.device, weights_hash, fingerprint)
        if not self.resume:
            if self.directory.holds_run():
                raise RunDirectoryError(f"{str(self.run_dir)!r} already holds a run; pass --resume to continue "
                                        "it or choose another --out")
            write_text(self.run_dir / "config.yaml", yaml.safe_dump(current, sort_keys=False))
            record["resumes"] = []
            return 0, 1, record
        saved = self.directory.read_config()
        if saved.get("tasks") is None:  # runs written before config.yaml recorded the order
            saved["tasks"] = current["tasks"]
        differences = config_differences(saved, current)
        if differences:
            raise RunDirectoryError(f"--resume: the configuration differs from the run in {str(self.run_dir)!r}: "
                                    + "; ".join(differences))
        performance = self.directory.read_performance()
        old = self.directory.read_json("provenance.json", {})
        recorded = old.get("dataset_fingerprint")
        if recorded is not None and (" root=" in recorded or recorded.startswith("synthetic seed=")):
            recorded = None  # written by lhl < 0.2 (names and sizes only): not comparable, not checked
        if recorded not in (None, fingerprint):
            raise RunDirectoryError(
                f"--resume: the data differs from the run's: provenance.json records dataset fingerprint "
                f"{recorded!r}, data.root now gives {fingerprint!r}")
        if old.get("weights_sha256") != weights_hash and "weights_sha256" in old:
            raise RunDirectoryError(f"--resume: model.weights now names a file with SHA-256 {weights_hash}, the run "
                                    f"was made with {old['weights_sha256']}")
        done = self.directory.last_completed_phase(performance)
        if done:  # verify before anything is appended
            self.directory.load_checkpoint(done, self.config.method["name"])
        resumes = list(old.get("resumes", []))
        attempt = len(resumes) + 2
        resumes.append({"attempt": attempt, "time": _now(), "after_phase": done, "command": sys.argv,
                        "device": record["device"], "lhl_version": record["lhl_version"],
                        "git_commit": record["git_commit"]})
        record = {**record, **{k: v for k, v in old.items() if k not in ("resumes",)}, "resumes": resumes}
        return done, attempt, record

    def _loader(self, split: str, indices: list[int], tasks: list[str], train: bool, seed: int) -> DataLoader:
        train_cfg = self.config.train
        batch_size = train_cfg.batch_size if train else (train_cfg.eval_batch_size or 2 * train_cfg.batch_size)
        generator = torch.Generator().manual_seed(seed)
        # One process draws exactly what a shuffling DataLoader draws; under DDP each process takes
        # its share of that permutation (lhl.engine.distributed.ShardedSampler).
        sampler = ShardedSampler(len(indices), generator) if train else None
        return DataLoader(
            self.benchmark.dataset(split, indices, tasks), batch_size=batch_size, sampler=sampler,
            num_workers=self.config.data.num_workers, generator=generator, worker_init_fn=worker_init_fn,
            pin_memory=self.device.type == "cuda", drop_last=False)

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict[str, Any]:
        with self._signals_handled():
            self.directory.acquire()
            events = None
            try:
                model, weights_hash = self.spec.build_model()
                done, attempt, record = self._prepare(weights_hash)
                write_json(self.run_dir / "provenance.json", record)
                events = EventLog(self.run_dir / "events.jsonl", attempt)
                ctx = RunContext(self.config, model, self.tasks, self.order, self.device, events,
                                 scratch_dir=self.run_dir)
                return self._run_phases(ctx, done)
            except BaseException:
                if events is None:
                    self.directory.discard_if_new()
                raise
            finally:
                self.scalars.close()
                if events is not None:
                    events.close()
                self.directory.release()

    def _run_phases(self, ctx: RunContext, done: int) -> dict[str, Any]:
        plan = self.spec.plan()
        performance = {"benchmark": self.config.benchmark, "method": self.config.method["name"],
                       "tasks": list(self.order),
                       "directions": {t: dict(self.tasks[t].higher_is_better) for t in self.order},
                       "phases": []}
        self.method.setup(ctx)
        validation = None
        if done:
            self._restore(ctx, done)
            saved = self.directory.read_performance()
            performance["phases"] = saved["phases"][:done]
            if done == len(plan):
                validation = saved.get("validation")  # a finished run keeps its validation result
            ctx.log("resume", phase=done, completed_phases=done)
            self.echo(f"resuming {self.run_dir} after phase {done}")
        else:
            ctx.log("run_start", method=self.config.method["name"], tasks=self.order, completed_phases=0)
        test_size = self.benchmark.num_images("test")
        self._phases = len(plan)
        for phase, (phase_tasks, indices) in enumerate(plan, start=1):
            if phase <= done:
                continue
            seed_everything(derive_seed(self.config.seed, phase))
            ctx.phase, ctx.phase_tasks, ctx.epoch = phase, phase_tasks, 0
            for task in phase_tasks:
                ctx.model.add_task(task, self.tasks[task].out_channels)
            label = "joint" if self.method_cls.joint else phase_tasks[0]
            ctx.log("phase_start", phase=phase, task=label, images=len(indices))
            self.echo(f"phase {phase}/{len(plan)}: {label} ({len(indices)} images)")
            loader = self._loader("train", indices, phase_tasks, True, derive_seed(self.config.seed, phase, 1))
            self.method.before_phase(ctx, loader)
            self._train_phase(ctx, loader)
            self.method.after_phase(ctx, loader)
            self._check_interrupt(ctx)
            seen = [self.tasks[t] for t in ctx.model.tasks]
            test_loader = self._loader("test", list(range(test_size)), ctx.model.tasks, False, 0)
            metrics = evaluate(ctx.model, seen, test_loader, self.device, not self.bars, desc=f"eval phase {phase}",
                               should_stop=lambda: self._stop_signal is not None)
            self._check_interrupt(ctx)
            self._check_parameters(ctx)
            ctx.log("evaluation", phase=phase, metrics=metrics)
            for task, values in metrics.items():
                self.scalars.scalars(f"eval/{task}", values, self._phase_end_step)
            performance["phases"].append({"phase": phase, "task": label, "metrics": metrics})
            self._save_phase(ctx, phase)
            write_json(self.run_dir / "performance.json", performance)
            self.echo(format_phase_metrics(phase, label, metrics))
        if self.config.data.val_size > 0:
            if validation is None:
                validation = self._validate(ctx)
            performance["validation"] = validation
            write_json(self.run_dir / "performance.json", performance)
        write_text(self.run_dir / "summary.md", summary_markdown(performance, self.config))
        ctx.log("run_end")
        return performance

    def _validate(self, ctx: RunContext) -> dict[str, dict[str, float]]:
        """Every task on the validation split (``data.val_size`` images) with the final model: the
        ``"validation"`` entry of performance.json, which only selection (``lhl sweep``) reads."""
        seen = [self.tasks[t] for t in ctx.model.tasks]
        loader = self._loader("val", list(range(self.benchmark.num_images("val"))), ctx.model.tasks, False, 0)
        validation = evaluate(ctx.model, seen, loader, self.device, not self.bars, desc="eval validation",
                              should_stop=lambda: self._stop_signal is not None)
        self._check_interrupt(ctx)
        ctx.log("validation", metrics=validation)
        self.echo("validation: " + "; ".join(f"{task} " + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
                                             for task, values in validation.items()))
        return validation

    def _restore(self, ctx: RunContext, done: int) -> None:
        from lhl.errors import CheckpointError

        path = self.run_dir / "checkpoints" / f"phase-{done}.pt"
        state = self.directory.load_checkpoint(done, self.config.method["name"])
        try:
            for task in state["tasks"]:
                ctx.model.add_task(task, self.tasks[task].out_channels)
            ctx.model.load_state_dict(state["model"])
            ctx.phase = done
            self.method.load_state_dict(state["method"], ctx)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(f"checkpoint {str(path)!r} does not match this run's model or method "
                                  f"{self.config.method['name']!r}: {reason}") from None

    def _save_phase(self, ctx: RunContext, phase: int) -> None:
        state = {"phase": phase, "tasks": ctx.model.tasks, "method_name": self.config.method["name"],
                 "model": ctx.model.state_dict(), "method": self.method.state_dict()}
        self.directory.save_checkpoint(phase, state, self.config.method["name"], self.config.train.keep_checkpoints)

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

    def _check_interrupt(self, ctx: RunContext) -> None:
        if self._stop_signal is None:
            return
        name = signal.Signals(self._stop_signal).name
        ctx.log("interrupted", phase=ctx.phase, epoch=ctx.epoch, step=ctx.step, signal=name)
        raise Interrupted(f"{name} received during phase {ctx.phase}; stopped before saving it (completed phases "
                          f"are saved). Resume with: {resume_command(self.run_dir)}", SIGNAL_EXIT[self._stop_signal])

    # ------------------------------------------------------------------ one phase
    def _train_phase(self, ctx: RunContext, loader: DataLoader) -> None:
        train_cfg = self.config.train
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        total_steps = train_cfg.epochs * len(loader)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(total_steps, train_cfg.warmup))
        ctx.step = 0
        step_offset = (ctx.phase - 1) * total_steps  # TensorBoard's global step (equal phases)
        self._phase_end_step = ctx.phase * total_steps
        sentinels = gradient_sentinels(ctx.model)
        autocast, scaler = self._mixed_precision()
        for epoch in range(1, train_cfg.epochs + 1):
            ctx.epoch = epoch
            ctx.model.train()
            self.method.on_train_mode(ctx)
            sums: dict[str, float] = defaultdict(float)
            steps = 0
            started = time.perf_counter()
            for batch in tqdm(loader, desc=f"phase {ctx.phase} epoch {epoch}", disable=not self.bars, leave=False):
                self._check_interrupt(ctx)
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                with autocast():
                    outputs, features = ctx.model(batch["image"], self.method.forward_tasks(ctx), return_features=True)
                    terms = self._new_task_terms(ctx, batch, outputs)
                    terms.update(self.method.loss_terms(ctx, batch, StepOutput(outputs, features)))
                for name, value in terms.items():
                    number = float(value.detach())
                    if not torch.isfinite(torch.tensor(number)):
                        ctx.log("non_finite_loss", phase=ctx.phase, epoch=epoch, step=ctx.step, term=name)
                        raise NonFiniteError(
                            f"non-finite loss term {name!r} ({number}) at phase {ctx.phase}, epoch {epoch}, "
                            f"step {ctx.step}; the run stopped, checkpoints of completed phases are intact")
                    sums[name] += number
                self.scalars.scalars("train", {k: float(v.detach()) for k, v in terms.items()},
                                     step_offset + ctx.step)
                if steps == 0 and train_cfg.log_grad_norms:
                    ctx.log("grad_norms", phase=ctx.phase, epoch=epoch, step=ctx.step,
                            encoder=encoder_grad_norms(ctx.model, terms))
                loss = sum(terms.values())
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                    full = steps == len(loader) - 1 or ctx.step % FULL_GRADIENT_CHECK_EVERY == 0
                    self._check_gradients(ctx, params if full else sentinels, epoch)
                self.method.after_backward(ctx)
                self.method.before_step(ctx)
                if scaler is not None:
                    scaler.step(optimizer)  # skips a step with inf/NaN gradients and lowers the scale
                    scaler.update()
                else:
                    optimizer.step()
                self.scalars.scalar("train/lr", scheduler.get_last_lr()[0], step_offset + ctx.step)
                scheduler.step()
                self.method.after_step(ctx)
                ctx.step += 1
                steps += 1
            losses = {name: total / max(steps, 1) for name, total in sums.items()}
            ctx.log("epoch_end", phase=ctx.phase, epoch=epoch, steps=steps, losses=losses,
                    lr=scheduler.get_last_lr()[0])
            self.scalars.scalars("epoch", losses, step_offset + ctx.step - 1)
            if not self.bars:
                self.echo(epoch_line(ctx.phase, self._phases, epoch, train_cfg.epochs, steps,
                                     time.perf_counter() - started, losses))

    @staticmethod
    def _check_gradients(ctx: RunContext, params: list[torch.Tensor], epoch: int) -> None:
        """Stop on a NaN/inf gradient (a finite loss can have one).

        ``params`` is what to read: every step, the sentinel parameters of :func:`gradient_sentinels`
        (where every backward path ends, so a non-finite value anywhere upstream reaches them); on
        the last step of each epoch and every :data:`FULL_GRADIENT_CHECK_EVERY` steps, all of them.
        One fused kernel over the tensors (the one torch's GradScaler uses, with scale 1).
        """
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        found = torch.zeros(1, device=grads[0].device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones(1, device=found.device))
        if found.item():
            ctx.log("non_finite_gradient", phase=ctx.phase, epoch=epoch, step=ctx.step)
            raise NonFiniteError(f"non-finite gradient at phase {ctx.phase}, epoch {epoch}, step {ctx.step} (the "
                                 "loss was finite); the run stopped, checkpoints of completed phases are intact")

    def _new_task_terms(self, ctx: RunContext, batch, outputs) -> dict[str, torch.Tensor]:
        if len(ctx.phase_tasks) == 1:
            task = ctx.phase_tasks[0]
            return {"new": self.tasks[task].loss(outputs[task].float(), batch[task])}
        return {f"new/{t}": self.tasks[t].loss(outputs[t].float(), batch[t]) for t in ctx.phase_tasks}

    def _mixed_precision(self):
        amp = self.config.train.amp
        if amp == "off":
            return nullcontext, None
        dtype = torch.float16 if amp == "fp16" else torch.bfloat16
        scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        return (lambda: torch.autocast(self.device.type, dtype=dtype)), scaler


def epoch_line(phase: int, phases: int, epoch: int, epochs: int, steps: int, seconds: float,
               losses: dict[str, float]) -> str:
    """The progress line of one epoch when no bar is drawn, e.g.
    ``phase 2/3 epoch 1/3: 96 steps, 41.2 s, loss 0.532 (new 0.5, dis/segmentation 0.032)``."""
    line = (f"phase {phase}/{phases} epoch {epoch}/{epochs}: {steps} steps, {seconds:.1f} s, "
            f"loss {sum(losses.values()):.4g}")
    if len(losses) > 1:
        line += " (" + ", ".join(f"{name} {value:.4g}" for name, value in losses.items()) + ")"
    return line


def encoder_grad_norms(model, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """L2 norm of the gradient each loss term alone sends into the shared encoder's parameters.

    Costs one extra backward pass per term, so the loop calls it on one batch per epoch. It makes
    visible, e.g., how HAD's geometric mean (derivative GM/(n(ℓ+ε))) amplifies small losses.
    """
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    norms = {}
    for name, term in terms.items():
        if not term.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        squares = [g.float().pow(2).sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


def resume_command(run_dir: Path) -> str:
    """The command line that continues this run: the one that started it, with --resume and --out."""
    argv = list(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name in ("lhl", "__main__.py", "cli.py") else []
    if not argv or argv[0] != "run":
        return f"lhl run --resume --out {shlex.quote(str(run_dir))} (with the same --config/--preset/--set options)"
    if "--out" not in argv:
        argv += ["--out", str(run_dir)]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["lhl", *argv])


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
