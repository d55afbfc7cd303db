"""Phase fitting: the training step of one phase — precision, memory format, compilation, data
parallelism, the optimiser (a method may supply its own) and the loop's safety checks.

The loop knows nothing about specific methods: it calls the hooks of
:class:`lhl.engine.hooks.Method`, sums the named loss terms they return with the new-task loss
and steps the optimiser. A non-finite loss term or gradient stops the run naming phase, epoch and
step; a stop request (SIGINT/SIGTERM) is honoured between two steps.

Under DDP (:mod:`lhl.engine.distributed`) the whole forward of a step — the student and every loss
term, a method's replay passes included — runs inside ``DistributedDataParallel``'s forward, so
every parameter a step uses is seen by DDP and its gradient averaged over processes during
backward; a method's ``after_backward`` therefore edits averaged gradients. Each step the
processes agree (one small all-reduce) on whether any of them saw a non-finite loss or a stop
request, so they all stop at the same step.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from lhl.config.schema import RunConfig
from lhl.engine import distributed
from lhl.engine.hooks import Method, RunContext, StepOutput, encoder_lr, train_lr
from lhl.engine.tensorboard_log import ScalarLog
from lhl.engine.teacher import autocast_for
from lhl.errors import ConfigError, NonFiniteError

#: All gradients are checked every this many steps (and on each epoch's last step); the sentinels every step.
FULL_GRADIENT_CHECK_EVERY = 32


def gradient_sentinels(model: torch.nn.Module) -> list[torch.Tensor]:
    """The input-side trainable parameters of each top-level part (the encoder, every head and
    feature adapter): the first module, in registration order, that has trainable parameters.
    Backpropagation ends there, so a NaN/inf that enters any gradient flowing through that part reaches them; reading them costs
    a few thousand elements instead of the whole model (``benchmarks/nonfinite_check_cost.py``)."""
    parts = ([model.encoder, *model.heads.values(), *getattr(model, "adapters", {}).values()]
             if hasattr(model, "heads") else [model])
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
    Under DDP these are this process's terms on its share of the batch.
    """
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    norms = {}
    for name, term in terms.items():
        if not term.requires_grad or not params:  # e.g. a frozen encoder
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        squares = [g.float().pow(2).sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


class _StepForward(nn.Module):
    """One step's forward as a module — the student plus every loss term — so that under DDP all
    parameter use of a step happens inside DDP's forward. ``compute`` is a plain callable."""

    def __init__(self, model: nn.Module, compute: Callable[[dict[str, Tensor]], dict[str, Tensor]]) -> None:
        super().__init__()
        self.model = model
        self._compute = compute

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self._compute(batch)


class PhaseFitter:
    """Trains the model of ``ctx`` on one phase's loader (``fit``); one per run.

    ``stop_requested`` says whether a stop signal arrived (checked between steps);
    ``on_stop(ctx)`` raises the interruption (the trainer's, which logs it and names the resume
    command). Progress goes to ``echo`` (one line per epoch) or tqdm bars (``bars``), on the main
    process only; ``scalars`` is the TensorBoard copy (or a no-op).
    """

    def __init__(self, config: RunConfig, method: Method, device: torch.device, scalars: ScalarLog,
                 echo: Callable[..., None], bars: bool, stop_requested: Callable[[], bool],
                 on_stop: Callable[[RunContext], None]) -> None:
        self.config, self.method, self.device = config, method, device
        self.scalars, self.echo, self.bars = scalars, echo, bars
        self.stop_requested, self.on_stop = stop_requested, on_stop
        self.phase_end_step = 0

    # ------------------------------------------------------------------ set-up of a phase
    def prepare_model(self, ctx: RunContext) -> None:
        """Memory format and synchronised BatchNorm for the model as it is now (call after the
        phase's head was added)."""
        train = self.config.train
        if train.sync_batchnorm and distributed.is_distributed():
            distributed.convert_sync_batchnorm(ctx.model, self.device)
        if train.channels_last:
            ctx.model.to(memory_format=torch.channels_last)

    def _forward_model(self, ctx: RunContext):
        if not self.config.train.compile:
            return ctx.model
        return torch.compile(ctx.model)

    def _wrap(self, step: nn.Module) -> nn.Module:
        if not distributed.is_distributed():
            return step
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Parameters a step does not reach (e.g. old heads for vanilla) keep no gradient, as in one process.
        return nn.parallel.DistributedDataParallel(step, device_ids=device_ids, find_unused_parameters=True)

    def mixed_precision(self):
        amp = self.config.train.amp
        scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        return (lambda: autocast_for(amp, self.device)), scaler

    # ------------------------------------------------------------------ the phase
    def fit(self, ctx: RunContext, loader: DataLoader, phases: int) -> None:
        train_cfg = self.config.train
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        optimizer = self.method.make_optimizer(ctx, params)
        total_steps = train_cfg.epochs * len(loader)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(total_steps, train_cfg.warmup))
        ctx.step = 0
        step_offset = (ctx.phase - 1) * total_steps  # TensorBoard's global step (equal phases)
        self.phase_end_step = ctx.phase * total_steps
        sentinels = gradient_sentinels(ctx.model)
        autocast, scaler = self.mixed_precision()
        forward_model = self._forward_model(ctx)
        channels_last = train_cfg.channels_last

        def compute(batch):
            with autocast():
                images = batch["image"]
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                outputs, features = forward_model(images, self.method.forward_tasks(ctx), return_features=True)
                terms = self._new_task_terms(ctx, batch, outputs)
                terms.update(self.method.loss_terms(ctx, batch, StepOutput(outputs, features)))
            return terms

        step_module = self._wrap(_StepForward(ctx.model, compute))
        main = distributed.is_main()
        for epoch in range(1, train_cfg.epochs + 1):
            ctx.epoch = epoch
            ctx.model.train()
            self.method.on_train_mode(ctx)
            sums: dict[str, float] = defaultdict(float)
            steps = 0
            started = time.perf_counter()
            batches = tqdm(loader, desc=f"phase {ctx.phase} epoch {epoch}", disable=not (self.bars and main),
                           leave=False)
            for batch in batches:
                self._agree_to_continue(ctx, None)
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                terms = self._first_call(step_module, batch) if steps == 0 and epoch == 1 else step_module(batch)
                values = {name: float(value.detach()) for name, value in terms.items()}
                self._agree_to_continue(ctx, values, epoch)
                for name, number in values.items():
                    sums[name] += number
                self.scalars.scalars("train", values, step_offset + ctx.step)
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
                self.scalars.scalar("train/lr", train_lr(scheduler), step_offset + ctx.step)
                scheduler.step()
                self.method.after_step(ctx)
                ctx.step += 1
                steps += 1
            losses = self._epoch_means(sums, steps)
            ctx.log("epoch_end", phase=ctx.phase, epoch=epoch, steps=steps, losses=losses,
                    lr=train_lr(scheduler), **encoder_lr(scheduler))
            self.scalars.scalars("epoch", losses, step_offset + ctx.step - 1)
            if not self.bars:
                self.echo(epoch_line(ctx.phase, phases, epoch, train_cfg.epochs, steps,
                                     time.perf_counter() - started, losses))
        distributed.broadcast_module_state(ctx.model)  # one model everywhere (BatchNorm statistics: process 0's)

    def _first_call(self, step_module: nn.Module, batch):
        """The phase's first forward; with ``train.compile`` a compiler failure becomes one line."""
        if not self.config.train.compile:
            return step_module(batch)
        try:
            return step_module(batch)
        except Exception as exc:  # torch._dynamo / inductor raise many types
            if isinstance(exc, (NonFiniteError, KeyboardInterrupt)):
                raise
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"train.compile: torch.compile failed on this machine ({type(exc).__name__}: "
                              f"{reason[:200]}); set train.compile: false") from None

    def _agree_to_continue(self, ctx: RunContext, values: dict[str, float] | None, epoch: int = 0) -> None:
        """Stop (every process at the same step) on a stop request or a non-finite loss term."""
        bad = next((name for name, v in (values or {}).items() if not math.isfinite(v)), None)
        stop = self.stop_requested()
        if distributed.is_distributed() and values is not None:
            flags = distributed.all_reduce_max(torch.tensor([float(stop), float(bad is not None)]))
            stop, any_bad = bool(flags[0]), bool(flags[1])
            if any_bad and bad is None:
                bad = "(on another process)"
        if bad is not None:
            number = (values or {}).get(bad, float("nan"))
            ctx.log("non_finite_loss", phase=ctx.phase, epoch=epoch, step=ctx.step, term=bad)
            raise NonFiniteError(
                f"non-finite loss term {bad!r} ({number}) at phase {ctx.phase}, epoch {epoch}, "
                f"step {ctx.step}; the run stopped, checkpoints of completed phases are intact")
        if stop and (values is not None or not distributed.is_distributed()):
            self.on_stop(ctx)

    @staticmethod
    def _epoch_means(sums: dict[str, float], steps: int) -> dict[str, float]:
        """Mean of each term over the epoch's steps (under DDP, also over processes)."""
        names = list(sums)
        if distributed.is_distributed() and names:
            means = distributed.all_reduce_mean(torch.tensor([sums[n] for n in names], dtype=torch.float64))
            return {name: float(v) / max(steps, 1) for name, v in zip(names, means)}
        return {name: total / max(steps, 1) for name, total in sums.items()}

    @staticmethod
    def _check_gradients(ctx: RunContext, params: list[torch.Tensor], epoch: int) -> None:
        """Stop on a NaN/inf gradient (a finite loss can have one).

        ``params`` is what to read: every step, the sentinel parameters of :func:`gradient_sentinels`
        (where every backward path ends, so a non-finite value anywhere upstream reaches them); on
        the last step of each epoch and every :data:`FULL_GRADIENT_CHECK_EVERY` steps, all of them.
        One fused kernel over the tensors (the one torch's GradScaler uses, with scale 1). Under
        DDP the gradients are already averaged, so every process decides alike.
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

    @staticmethod
    def _new_task_terms(ctx: RunContext, batch, outputs) -> dict[str, torch.Tensor]:
        if len(ctx.phase_tasks) == 1:
            task = ctx.phase_tasks[0]
            return {"new": ctx.tasks[task].loss(outputs[task].float(), batch[task])}
        return {f"new/{t}": ctx.tasks[t].loss(outputs[t].float(), batch[t]) for t in ctx.phase_tasks}
