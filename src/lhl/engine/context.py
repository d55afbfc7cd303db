"""What the phase loop shares with methods: the run context and one step's outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from lhl.config.schema import RunConfig
from lhl.models import MultiTaskNet
from lhl.tasks import Task

Batch = dict[str, Tensor]


@dataclass
class StepOutput:
    """The student's outputs on a batch: raw head outputs and the encoder's stage features."""

    outputs: dict[str, Tensor]
    features: list[Tensor]


@dataclass
class RunContext:
    """State of a run that methods may read (and, for the model, modify through hooks).

    ``phase`` is 1-based; ``phase_tasks`` are the tasks whose labels this phase sees (one
    task, or all of them for joint training); ``seen_tasks`` are the tasks with a head.
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
    optimizer: torch.optim.Optimizer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seen_tasks(self) -> list[str]:
        return self.model.tasks

    @property
    def old_tasks(self) -> list[str]:
        """Tasks learnt in earlier phases (have a head, not trained with labels now)."""
        return [t for t in self.model.tasks if t not in self.phase_tasks]
