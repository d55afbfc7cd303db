"""Run assembly: from a configuration to everything a run needs, validated, touching no file.

:func:`build_run` is the one place that turns a :class:`~lhl.config.RunConfig` into a benchmark,
a task order, task objects, a method and a model. It checks everything that can be checked before
a run directory exists — every config key's value and its relation to others (e.g. at least one
training image per phase), the method's options, the task names against the benchmark, the
encoder, the weight file, the data root and the device — so a mistake ends with one
:class:`~lhl.errors.LhlError` and nothing written. The trainer, the tests' helpers and the
benchmark scripts all call it.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from lhl.config import resolve_method
from lhl.config.schema import RunConfig
from lhl.data.base import Benchmark
from lhl.data.splits import phase_chunks
from lhl.engine.hooks import Method
from lhl.engine.seeding import derive_seed, seed_everything
from lhl.errors import ConfigError
from lhl.models import MultiTaskNet, load_encoder_weights
from lhl.models.pretrained import resolve_weights
from lhl.registry import BENCHMARKS, ENCODERS, load_builtins, load_plugins
from lhl.tasks import Task


@dataclass
class Run:
    """A validated run: the resolved config (every method option and the task order filled in),
    the benchmark, the task order and objects, the method class and options, and the device."""

    config: RunConfig
    benchmark: Benchmark
    order: list[str]
    tasks: dict[str, Task]
    method_cls: type[Method]
    method_options: Any
    device: torch.device

    def make_method(self) -> Method:
        return self.method_cls(copy.deepcopy(self.method_options))

    def plan(self) -> list[tuple[list[str], list[int]]]:
        """(tasks whose labels the phase sees, training image indices) per phase."""
        n_train = self.benchmark.num_images("train")
        if self.method_cls.joint:
            return [(list(self.order), list(range(n_train)))]
        chunks = phase_chunks(n_train, len(self.order), self.config.seed, self.config.data.chunking)
        return [([task], chunk) for task, chunk in zip(self.order, chunks)]

    def build_model(self, tasks: list[str] | None = None) -> tuple[MultiTaskNet, str | None]:
        """The network (seeded like the run's phase 0) with heads for ``tasks``, and the SHA-256 of
        the encoder weight file (``None`` for random initialisation)."""
        seed_everything(derive_seed(self.config.seed, 0))
        model_cfg = self.config.model
        encoder = ENCODERS.get(model_cfg.encoder)()
        weights_hash = None
        if model_cfg.weights:
            weights_hash = load_encoder_weights(encoder, resolve_weights(model_cfg.weights, model_cfg.encoder))
        model = MultiTaskNet(encoder, model_cfg.head_rates, model_cfg.head_channels, model_cfg.head_dropout)
        for task in tasks or []:
            model.add_task(task, self.tasks[task].out_channels)
        return model.to(self.device), weights_hash


def build_run(config: RunConfig) -> Run:
    """Validate ``config`` against the registries, the data and the machine; return the :class:`Run`.

    ``config`` itself is not modified. Raises :class:`~lhl.errors.LhlError` subclasses naming the
    key, value or file.
    """
    load_builtins()
    load_plugins(config.plugins)
    method_cls, options = resolve_method(config)
    resolved = copy.deepcopy(config)
    resolved.method = {"name": config.method["name"].lower(), **dataclasses.asdict(options)}
    benchmark_cls = BENCHMARKS.get(config.benchmark)
    benchmark: Benchmark = benchmark_cls(config.data, config.seed)
    specs = benchmark.task_specs()
    order = list(config.tasks) if config.tasks is not None else list(benchmark.default_tasks)
    if not order:
        raise ConfigError(f"tasks: benchmark {config.benchmark!r} has no default task order; set tasks: [...]")
    unknown = [t for t in order if t not in specs]
    if unknown:
        raise ConfigError(f"tasks: benchmark {config.benchmark!r} has no task {unknown[0]!r}; its tasks: "
                          f"{', '.join(specs)}")
    resolved.tasks = order
    tasks = {name: benchmark.make_task(name) for name in order}
    ENCODERS.get(config.model.encoder)
    if config.model.weights:
        try:
            path = resolve_weights(config.model.weights, config.model.encoder)
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        if not path.is_file():
            raise ConfigError(f"model.weights: {str(path)!r} is not a file; expected a ResNet weight file "
                              "or 'imagenet' or 'synthetic-pretrained'")
    device = resolve_device(config.device)
    if config.train.amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"train.amp: 'fp16' needs a CUDA device, got device {config.device!r}; use 'bf16'")
    benchmark.validate(order)
    phases = 1 if method_cls.joint else len(order)
    n_train = benchmark.num_images("train")
    if n_train < phases:
        raise ConfigError(f"data.train_size: {n_train} training images cannot be split into {phases} phases; "
                          "expected at least one image per phase")
    if benchmark.num_images("test") < 1:
        raise ConfigError("data.test_size: the test set is empty; expected at least one image")
    return Run(resolved, benchmark, order, tasks, method_cls, options, device)


def resolve_device(name: str) -> torch.device:
    """``device`` → :class:`torch.device`, refusing devices this machine does not have."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: invalid value {name!r}; expected cpu, cuda, cuda:N or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device: invalid value {name!r}; expected cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} requested but CUDA is not available; use device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device: {name!r} requested but this machine has {torch.cuda.device_count()} "
                              "CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} requested but MPS is not available; use device=cpu")
    return device

