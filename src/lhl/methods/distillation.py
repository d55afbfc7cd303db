"""Shared machinery of the teacher-based methods (HAD, DIS, LwF, POD).

:class:`DistillationMethod` keeps one frozen teacher — a copy of the whole model at the end of
phase t−1 — and gives a method, for one batch, the student's and the teacher's outputs of every
old task, with the teacher's encoder run **once** for all old heads (the authors' code
recomputes the whole teacher once per old task; docs/deviations.md, "One teacher pass").

**Teacher cache** (:mod:`lhl.engine.teacher`, docs/design.md "Teacher cache"). A method declares
in :attr:`DistillationMethod.teacher_cache_kind` what it reads from the teacher per old task —
``"pseudo_label"`` (HAD, DIS), ``"raw"`` (LwF's soft targets) or ``None`` (POD: encoder
features, not cached) — and, when the run allows it (``data.augment`` off, ``train.teacher_cache``
auto), :meth:`DistillationMethod.before_phase` computes that once for the phase's whole chunk and
frees the teacher model; :meth:`DistillationMethod.old_tasks` then serves each batch from the cache
by ``batch["index"]``, and the losses are computed exactly as from a teacher pass.

The teacher is not part of a method's state: it is rebuilt from the model at
:meth:`~lhl.engine.hooks.Method.before_phase`, and on resume the loop reloads phase t−1's
checkpoint before calling it (docs/design.md, "Invariants"), so the rebuilt teacher (and cache) is
the one an uninterrupted run would have had.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from torch import Tensor

from lhl.engine.hooks import Batch, Method, RunContext, StepOutput
from lhl.engine.teacher import CacheKind, Teacher, TeacherCache, open_teacher_cache
from lhl.tasks import Task


class OldTask(NamedTuple):
    """One old task j on one batch: the student's S_j and what the teacher gives for it.

    On a teacher pass ``teacher`` is the raw T_j (float32) and ``stored`` is ``None``; served from
    the teacher cache, ``stored`` is the cached pseudo-label (``"pseudo_label"`` caches; ``teacher``
    is then ``None``) or ``teacher`` is the cached raw output (``"raw"`` caches)."""

    name: str
    task: Task
    student: Tensor  # [B,C,H,W] raw student head output (with gradient)
    teacher: Tensor | None  # [B,C,H,W] raw teacher head output (no gradient)
    stored: Tensor | None = None  # the cached pseudo-label

    @property
    def pseudo_label(self) -> Tensor:
        """T_j post-processed into a target (argmax / L2-normalised / raw;
        :meth:`lhl.tasks.Task.pseudo_label`)."""
        return self.stored if self.stored is not None else self.task.pseudo_label(self.teacher)

    @property
    def had_grouping(self):
        """What DB-HAD groups the pixels by (:meth:`lhl.tasks.Task.had_grouping`), from the raw output
        or, served from the cache, from the pseudo-label (:meth:`~lhl.tasks.Task.had_grouping_of_pseudo_label`)."""
        if self.teacher is not None:
            return self.task.had_grouping(self.teacher)
        return self.task.had_grouping_of_pseudo_label(self.stored)


class DistillationMethod(Method):
    """Base class: a frozen teacher per phase t ≥ 2, and a student forward over every seen head
    (one student encoder pass; the old heads keep training through distillation, like the
    decoders φ_j^t of HAD paper Sec. 4.1)."""

    #: what :meth:`loss_terms` reads from the teacher for each old task, i.e. what the teacher cache
    #: stores: ``"pseudo_label"`` (:attr:`OldTask.pseudo_label` and :attr:`OldTask.had_grouping`),
    #: ``"raw"`` (:attr:`OldTask.teacher`), or ``None`` (something else: no cache, the teacher runs
    #: on every step)
    teacher_cache_kind: ClassVar[CacheKind | None] = None

    teacher: Teacher | None = None
    teacher_cache: TeacherCache | None = None

    def teacher_cache_blocker(self, ctx: RunContext) -> str | None:
        """Why this method cannot be served from the teacher cache in this phase (``None``: it can)."""
        if self.teacher_cache_kind is None:
            return f"method {self.name!r} reads more of the teacher than its head outputs"
        return None

    def before_phase(self, ctx: RunContext, loader) -> None:
        # The new head was already added by the loop; the teacher never runs it.
        self._close_cache()
        self.teacher = Teacher(ctx.model) if ctx.old_tasks else None
        if self.teacher is None:
            return
        blocker = self.teacher_cache_blocker(ctx)
        kinds = None if blocker else {name: self.teacher_cache_kind for name in ctx.old_tasks}
        self.teacher_cache = open_teacher_cache(ctx, self.teacher, loader, kinds, blocker)
        if self.teacher_cache is not None:
            self.teacher = None  # every target is cached: free the model copy for the phase

    def after_phase(self, ctx: RunContext, loader) -> None:
        self.teacher = None  # free the copy before evaluation
        self._close_cache()

    def _close_cache(self) -> None:
        if self.teacher_cache is not None:
            self.teacher_cache.close()
            self.teacher_cache = None

    def forward_tasks(self, ctx: RunContext) -> list[str]:
        return ctx.seen_tasks

    def teacher_outputs(self, ctx: RunContext, images: Tensor) -> dict[str, Tensor]:
        """Raw teacher outputs ``{old task: [B,C,H,W]}`` from one teacher encoder pass."""
        return self.teacher.outputs(images, ctx.old_tasks)

    def old_tasks(self, ctx: RunContext, batch: Batch, out: StepOutput) -> list[OldTask]:
        """Student and teacher outputs of every old task on this batch ([] in phase 1)."""
        if not ctx.old_tasks:
            return []
        if self.teacher_cache is not None:
            cached = self.teacher_cache.lookup(batch["index"], out.outputs[ctx.old_tasks[0]].device)
            if self.teacher_cache_kind == "pseudo_label":
                return [OldTask(name, ctx.tasks[name], out.outputs[name].float(), None, cached[name])
                        for name in ctx.old_tasks]
            return [OldTask(name, ctx.tasks[name], out.outputs[name].float(), cached[name])
                    for name in ctx.old_tasks]
        if self.teacher is None:
            return []
        teacher = self.teacher_outputs(ctx, batch["image"])
        return [OldTask(name, ctx.tasks[name], out.outputs[name].float(), teacher[name].float())
                for name in ctx.old_tasks]
