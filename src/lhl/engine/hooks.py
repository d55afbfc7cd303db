"""The extension interface: what a method sees and the named hook points the phase loop calls
(Avalanche-style). Methods import this module (and :mod:`lhl.engine.teacher`, and
:mod:`lhl.engine.distributed` for statistics that must agree across data-parallel processes),
nothing else of the engine; the engine finds methods through the registry and never imports one.

A method overrides only the hooks it needs. The engine sums and logs the named loss terms a
method returns, checkpoints whatever :meth:`Method.state_dict` returns, and never imports a
specific method. Hooks, in the order the loop calls them::

    setup(ctx)                          once, after the model and tasks exist
    before_phase(ctx, loader)           phase t starts (new head already added); ``loader`` is
                                        the phase's training loader (this process's share under DDP);
                                        modules it adds (``model.add_adapter``) are then converted
                                        for channels_last / synchronised BatchNorm like the rest
    make_optimizer(ctx, params) -> opt  the phase's optimiser (default: Adam, train.lr / weight_decay)
      on_train_mode(ctx)                after every model.train() (e.g. freeze BN)
      forward_tasks(ctx) -> [names]     heads the student runs on a batch
      loss_terms(ctx, batch, out) -> {name: scalar}   added to the new-task loss
      after_backward(ctx)               gradients are in .grad (edit them here)
      before_step(ctx)                  just before optimizer.step() (e.g. snapshot parameters)
      after_step(ctx)                   the optimiser has stepped (e.g. mask the update)
    after_phase(ctx, loader)            phase t's training is done (before evaluation)
    state_dict() / load_state_dict(state, ctx)

Hyperparameters are declared as fields of the nested ``Options`` dataclass; the config's
``method.<field>`` keys are validated against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from lhl.config.schema import RunConfig
from lhl.models import MultiTaskNet
from lhl.tasks import Task

Batch = dict[str, Tensor]


def encoder_param_groups(model: MultiTaskNet, params: list[torch.nn.Parameter], lr: float,
                         encoder_lr_scale: float) -> list[dict[str, Any]]:
    """Optimiser parameter groups: ``params`` as one group, or — when ``encoder_lr_scale`` is not 1 —
    the shared encoder's parameters at ``lr × encoder_lr_scale`` and the rest (heads, adapters, method
    parameters) at ``lr``. Empty groups are left out (e.g. a frozen encoder)."""
    if encoder_lr_scale == 1.0:
        return [{"params": params}]
    in_encoder = {id(p) for p in model.encoder.parameters()}
    encoder = [p for p in params if id(p) in in_encoder]
    rest = [p for p in params if id(p) not in in_encoder]
    groups = [{"params": encoder, "lr": lr * encoder_lr_scale}, {"params": rest, "lr": lr}]
    return [g for g in groups if g["params"]]


def train_lr(scheduler: torch.optim.lr_scheduler.LRScheduler) -> float:
    """The current learning rate of ``train.lr``'s schedule: the last parameter group's, because
    :func:`encoder_param_groups` puts the group at ``train.lr`` last (a lone group is the encoder's
    only when nothing else trains, and then it is the only rate there is)."""
    return scheduler.get_last_lr()[-1]


def encoder_lr(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, float]:
    """``{"encoder_lr": rate}`` when the encoder has its own group (``train.encoder_lr_scale`` ≠ 1),
    else ``{}`` — what the ``epoch_end`` event adds to ``lr``."""
    rates = scheduler.get_last_lr()
    return {"encoder_lr": rates[0]} if len(rates) > 1 else {}


@dataclass
class StepOutput:
    """The student's outputs on a batch: raw head outputs and the encoder's stage features."""

    outputs: dict[str, Tensor]
    features: list[Tensor]


@dataclass
class RunContext:
    """State of a run that methods may read (and, for the model, modify through hooks).

    ``phase`` is 1-based; ``phase_tasks`` are the tasks whose labels this phase sees (one
    task, or all of them for joint training); ``seen_tasks`` are the tasks with a head;
    ``step`` counts the optimiser steps of the phase; ``log(event, **fields)`` appends to the
    run's event log. ``scratch_dir`` is a directory a method may write temporary files to during a
    phase and must delete by the phase's end (the trainer sets it to the run directory; ``None``
    outside a run): the frozen-teacher cache's ``disk`` storage uses it (:mod:`lhl.engine.teacher`).
    """

    config: RunConfig
    model: MultiTaskNet
    tasks: dict[str, Task]
    task_order: list[str]
    device: torch.device
    log: Callable[..., None]
    phase: int = 0
    phase_tasks: list[str] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    scratch_dir: Path | None = None

    @property
    def seen_tasks(self) -> list[str]:
        return self.model.tasks

    @property
    def old_tasks(self) -> list[str]:
        """Tasks learnt in earlier phases (have a head, not trained with labels now)."""
        return [t for t in self.model.tasks if t not in self.phase_tasks]


class Method:
    """Base class: sequential fine-tuning with no extra terms (i.e. vanilla)."""

    name: ClassVar[str] = ""
    #: True for methods that train all tasks at once on the whole training set (joint).
    joint: ClassVar[bool] = False

    @dataclass
    class Options:
        pass

    def __init__(self, options: Any) -> None:
        self.options = options

    def setup(self, ctx: RunContext) -> None:
        pass

    def before_phase(self, ctx: RunContext, loader: Any) -> None:
        pass

    def make_optimizer(self, ctx: RunContext, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The optimiser of one phase over ``params`` (the trainable parameters after
        ``before_phase``); called once per phase. Default: Adam with ``train.lr`` and
        ``train.weight_decay`` (HAD paper, App. C.4); the encoder's parameters in a group of their own at
        ``train.lr × train.encoder_lr_scale`` when that scale is not 1."""
        train = ctx.config.train
        return torch.optim.Adam(encoder_param_groups(ctx.model, params, train.lr, train.encoder_lr_scale),
                                lr=train.lr, weight_decay=train.weight_decay)

    def on_train_mode(self, ctx: RunContext) -> None:
        pass

    def forward_tasks(self, ctx: RunContext) -> list[str]:
        return list(ctx.phase_tasks)

    def loss_terms(self, ctx: RunContext, batch: Batch, out: StepOutput) -> dict[str, Tensor]:
        return {}

    def after_backward(self, ctx: RunContext) -> None:
        pass

    def before_step(self, ctx: RunContext) -> None:
        pass

    def after_step(self, ctx: RunContext) -> None:
        pass

    def after_phase(self, ctx: RunContext, loader: Any) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors / numbers / strings only: it goes into a ``weights_only`` checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any], ctx: RunContext) -> None:
        pass
