"""The LHL4DP phase loop (SPEC §1): one task per phase, evaluation of all seen tasks after
each phase, a checkpoint per phase, resumable.

The loop knows nothing about specific methods: it calls the hooks of
:class:`lhl.methods.base.Method`, sums the named loss terms they return with the new-task
loss, and checkpoints their state dicts.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from lhl.config import ConfigError, config_differences, resolve_method
from lhl.config.schema import RunConfig
from lhl.data.base import Benchmark
from lhl.data.splits import phase_chunks
from lhl.engine.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint, write_json, write_text
from lhl.engine.context import RunContext, StepOutput
from lhl.engine.evaluation import evaluate
from lhl.engine.events import EventLog
from lhl.engine.provenance import provenance
from lhl.engine.seeding import derive_seed, seed_everything, worker_init_fn
from lhl.methods.base import Method
from lhl.models import MultiTaskNet, load_encoder_weights
from lhl.models.pretrained import resolve_weights
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins, load_plugins
from lhl.report.tables import format_phase_metrics, summary_markdown


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the run stops, earlier checkpoints stay intact."""


class RunDirectoryError(RuntimeError):
    """The output directory cannot be used (holds another run, or differs on resume)."""


def linear_warmup_decay(total_steps: int, warmup: float):
    """LR factor: linear 0→1 over ``warmup·total`` steps, then linear 1→0 (SPEC §8)."""
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
        load_builtins()
        load_plugins(config.plugins)
        self.config = config
        self.method_cls, options = resolve_method(config)
        self.method: Method = self.method_cls(options)
        self.run_dir = Path(run_dir)
        self.quiet, self.resume = quiet, resume
        self.echo = (lambda *a, **k: None) if quiet else echo
        self.benchmark: Benchmark = BENCHMARKS.get(config.benchmark)(config.data, config.seed)
        self.order = list(config.tasks or self.benchmark.default_tasks)
        if not self.order:
            raise ConfigError("tasks: the task sequence is empty")
        if len(set(self.order)) != len(self.order):
            raise ConfigError(f"tasks: a task appears twice in {self.order}")
        self.tasks = {name: self.benchmark.make_task(name) for name in self.order}
        ENCODERS.get(config.model.encoder)  # unknown encoder: error before any file is written
        self.device = _device(config.device)

    # ------------------------------------------------------------------ set-up
    def _prepare_run_dir(self) -> int:
        """Check or create the run directory; return the last completed phase (0 if none)."""
        saved_config = self.run_dir / "config.yaml"
        current = self.config.to_dict()
        if self.resume:
            if not saved_config.is_file():
                raise RunDirectoryError(f"--resume: {str(self.run_dir)!r} holds no run (no config.yaml)")
            saved = yaml.safe_load(saved_config.read_text())
            differences = config_differences(saved, current)
            if differences:
                raise RunDirectoryError(
                    f"--resume: the configuration differs from the run in {str(self.run_dir)!r}:\n  "
                    + "\n  ".join(differences))
            return self._last_completed_phase()
        if saved_config.exists() or (self.run_dir / "checkpoints").exists():
            raise RunDirectoryError(
                f"{str(self.run_dir)!r} already holds a run; pass --resume to continue it or choose another --out")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(saved_config, yaml.safe_dump(current, sort_keys=False))
        return 0

    def _last_completed_phase(self) -> int:
        performance = self._read_performance()
        done = len(performance["phases"])
        while done > 0 and not checkpoint_path(self.run_dir, done).is_file():
            done -= 1
        return done

    def _read_performance(self) -> dict[str, Any]:
        import json

        path = self.run_dir / "performance.json"
        if not path.is_file():
            return {"phases": []}
        return json.loads(path.read_text())

    def _build_model(self) -> tuple[MultiTaskNet, str | None]:
        seed_everything(derive_seed(self.config.seed, 0))
        model_cfg = self.config.model
        encoder = ENCODERS.get(model_cfg.encoder)()
        weights = resolve_weights(model_cfg.weights, model_cfg.encoder) if model_cfg.weights else None
        weights_hash = load_encoder_weights(encoder, weights) if weights else None
        model = MultiTaskNet(encoder, model_cfg.head_rates, model_cfg.head_channels, model_cfg.head_dropout)
        return model.to(self.device), weights_hash

    def _plan(self) -> list[tuple[list[str], list[int]]]:
        """(tasks whose labels the phase sees, training image indices) per phase."""
        n_train = self.benchmark.num_images("train")
        if self.method_cls.joint:
            return [(list(self.order), list(range(n_train)))]
        chunks = phase_chunks(n_train, len(self.order), self.config.seed, self.config.data.chunking)
        return [([task], chunk) for task, chunk in zip(self.order, chunks)]

    def _loader(self, split: str, indices: list[int], tasks: list[str], train: bool, seed: int) -> DataLoader:
        train_cfg = self.config.train
        batch_size = train_cfg.batch_size if train else (train_cfg.eval_batch_size or 2 * train_cfg.batch_size)
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.benchmark.dataset(split, indices, tasks), batch_size=batch_size, shuffle=train,
            num_workers=self.config.data.num_workers, generator=generator, worker_init_fn=worker_init_fn,
            pin_memory=self.device.type == "cuda", drop_last=False)

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict[str, Any]:
        done = self._prepare_run_dir()
        model, weights_hash = self._build_model()
        events = EventLog(self.run_dir / "events.jsonl")
        ctx = RunContext(self.config, model, self.tasks, self.order, self.device, events)
        try:
            return self._run_phases(ctx, done, weights_hash)
        finally:
            events.close()

    def _run_phases(self, ctx: RunContext, done: int, weights_hash: str | None) -> dict[str, Any]:
        plan = self._plan()
        performance = {"benchmark": self.config.benchmark, "method": self.config.method["name"],
                       "tasks": list(self.order), "phases": []}
        write_json(self.run_dir / "provenance.json",
                   provenance(self.config, self.device, weights_hash, self.benchmark.fingerprint()))
        self.method.setup(ctx)
        if done:
            state = load_checkpoint(checkpoint_path(self.run_dir, done))
            for task in state["tasks"]:
                ctx.model.add_task(task, self.tasks[task].out_channels)
            ctx.model.load_state_dict(state["model"])
            ctx.phase = done
            self.method.load_state_dict(state["method"], ctx)
            performance["phases"] = self._read_performance()["phases"][:done]
            ctx.log("resume", phase=done, completed_phases=done)
            self.echo(f"resuming {self.run_dir} after phase {done}")
        else:
            ctx.log("run_start", method=self.config.method["name"], tasks=self.order)
        test_size = self.benchmark.num_images("test")
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
            self.method.before_phase(ctx)
            self._train_phase(ctx, loader)
            self.method.after_phase(ctx, loader)
            seen = [self.tasks[t] for t in ctx.model.tasks]
            test_loader = self._loader("test", list(range(test_size)), ctx.model.tasks, False, 0)
            metrics = evaluate(ctx.model, seen, test_loader, self.device, self.quiet, desc=f"eval phase {phase}")
            ctx.log("evaluation", phase=phase, metrics=metrics)
            performance["phases"].append({"phase": phase, "task": label, "metrics": metrics})
            self._save_phase(ctx, phase)
            write_json(self.run_dir / "performance.json", performance)
            self.echo(format_phase_metrics(phase, label, metrics))
        write_text(self.run_dir / "summary.md", summary_markdown(performance, self.config))
        ctx.log("run_end")
        return performance

    def _save_phase(self, ctx: RunContext, phase: int) -> None:
        state = {"phase": phase, "tasks": ctx.model.tasks, "model": ctx.model.state_dict(),
                 "method": self.method.state_dict(), "rng_torch": torch.get_rng_state()}
        save_checkpoint(checkpoint_path(self.run_dir, phase), state)
        keep = self.config.train.keep_checkpoints
        if keep is not None:
            for old in range(1, phase - keep + 1):
                checkpoint_path(self.run_dir, old).unlink(missing_ok=True)

    def _train_phase(self, ctx: RunContext, loader: DataLoader) -> None:
        train_cfg = self.config.train
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        total_steps = train_cfg.epochs * len(loader)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(total_steps, train_cfg.warmup))
        ctx.optimizer, ctx.step = optimizer, 0
        autocast, scaler = self._mixed_precision()
        for epoch in range(1, train_cfg.epochs + 1):
            ctx.epoch = epoch
            ctx.model.train()
            self.method.on_train_mode(ctx)
            sums: dict[str, float] = defaultdict(float)
            steps = 0
            for batch in tqdm(loader, desc=f"phase {ctx.phase} epoch {epoch}", disable=self.quiet, leave=False):
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                with autocast():
                    outputs, features = ctx.model(batch["image"], self.method.forward_tasks(ctx), return_features=True)
                    terms = self._new_task_terms(ctx, batch, outputs)
                    terms.update(self.method.loss_terms(ctx, batch, StepOutput(outputs, features)))
                for name, value in terms.items():
                    if not torch.isfinite(value).all():
                        ctx.log("non_finite_loss", phase=ctx.phase, epoch=epoch, step=ctx.step, term=name)
                        raise NonFiniteLossError(
                            f"non-finite loss term {name!r} ({value.item()}) at phase {ctx.phase}, epoch {epoch}, "
                            f"step {ctx.step}; the run stopped, checkpoints of completed phases are intact")
                    sums[name] += float(value.detach())
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
                self.method.after_backward(ctx)
                self.method.before_step(ctx)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                self.method.after_step(ctx)
                ctx.step += 1
                steps += 1
            losses = {name: total / max(steps, 1) for name, total in sums.items()}
            ctx.log("epoch_end", phase=ctx.phase, epoch=epoch, steps=steps, losses=losses,
                    lr=scheduler.get_last_lr()[0])

    def _new_task_terms(self, ctx: RunContext, batch, outputs) -> dict[str, torch.Tensor]:
        if len(ctx.phase_tasks) == 1:
            task = ctx.phase_tasks[0]
            return {"new": self.tasks[task].loss(outputs[task].float(), batch[task])}
        return {f"new/{t}": self.tasks[t].loss(outputs[t].float(), batch[t]) for t in ctx.phase_tasks}

    def _mixed_precision(self):
        amp = self.config.train.amp
        if amp == "off":
            return nullcontext, None
        if amp == "fp16" and self.device.type != "cuda":
            raise ConfigError(f"train.amp: 'fp16' needs a CUDA device, got device {self.config.device!r}; use 'bf16'")
        dtype = torch.float16 if amp == "fp16" else torch.bfloat16
        scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        return (lambda: torch.autocast(self.device.type, dtype=dtype)), scaler


def encoder_grad_norms(model: MultiTaskNet, terms: dict[str, torch.Tensor]) -> dict[str, float]:
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


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"device: invalid value {name!r}; expected cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available; use device=cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} requested but MPS is not available; use device=cpu")
    return device
