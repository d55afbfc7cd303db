"""Training engine: phase loop, evaluation, checkpoints, teacher, seeding, events."""

from lhl.engine.hooks import Batch, RunContext, StepOutput
from lhl.engine.teacher import Teacher

__all__ = ["Batch", "RunContext", "StepOutput", "Teacher"]
