"""Shared machinery of the teacher-based methods (HAD, DIS, and later LwF, POD …).

:class:`DistillationMethod` keeps one frozen teacher — a copy of the whole model at the end of
phase t−1 — and gives a method, for one batch, the student's and the teacher's raw outputs of
every old task, with the teacher's encoder run **once** for all old heads (the authors' code
recomputes the whole teacher once per old task; docs/deviations.md, "One teacher pass").

The teacher is not part of a method's state: it is rebuilt from the model at
:meth:`~lhl.engine.hooks.Method.before_phase`, and on resume the loop reloads phase t−1's
checkpoint before calling it (docs/design.md, "Invariants"), so the rebuilt teacher is the one
an uninterrupted run would have had.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from lhl.engine.hooks import Batch, Method, RunContext, StepOutput
from lhl.engine.teacher import Teacher
from lhl.tasks import Task


class OldTask(NamedTuple):
    """One old task j on one batch: the student's S_j and the teacher's raw T_j (float32)."""

    name: str
    task: Task
    student: Tensor  # [B,C,H,W] raw student head output (with gradient)
    teacher: Tensor  # [B,C,H,W] raw teacher head output (no gradient)

    @property
    def pseudo_label(self) -> Tensor:
        """T_j post-processed into a target (argmax / L2-normalised / raw;
        :meth:`lhl.tasks.Task.pseudo_label`)."""
        return self.task.pseudo_label(self.teacher)


class DistillationMethod(Method):
    """Base class: a frozen teacher per phase t ≥ 2, and a student forward over every seen head
    (one student encoder pass; the old heads keep training through distillation, like the
    decoders φ_j^t of HAD paper Sec. 4.1)."""

    teacher: Teacher | None = None

    def before_phase(self, ctx: RunContext, loader) -> None:
        # The new head was already added by the loop; the teacher never runs it.
        self.teacher = Teacher(ctx.model) if ctx.old_tasks else None

    def after_phase(self, ctx: RunContext, loader) -> None:
        self.teacher = None  # free the copy before evaluation

    def forward_tasks(self, ctx: RunContext) -> list[str]:
        return ctx.seen_tasks

    def teacher_outputs(self, ctx: RunContext, images: Tensor) -> dict[str, Tensor]:
        """Raw teacher outputs ``{old task: [B,C,H,W]}`` from one teacher encoder pass."""
        return self.teacher.outputs(images, ctx.old_tasks)

    def old_tasks(self, ctx: RunContext, batch: Batch, out: StepOutput) -> list[OldTask]:
        """Student and teacher outputs of every old task on this batch ([] in phase 1)."""
        if self.teacher is None or not ctx.old_tasks:
            return []
        teacher = self.teacher_outputs(ctx, batch["image"])
        return [OldTask(name, ctx.tasks[name], out.outputs[name].float(), teacher[name].float())
                for name in ctx.old_tasks]

