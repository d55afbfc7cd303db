"""LwF: learning without forgetting (Li & Hoiem, TPAMI 2017), dense (HAD paper, App. C.3, Table 6;
docs/deviations.md, "Baselines").

At phase t ≥ 2 the frozen model of phase t−1 runs on the phase-t images and every old head j is
distilled into the student on every pixel, by the task's own soft distillation map
(:meth:`~lhl.tasks.Task.soft_distill_map`), averaged over pixels:

- segmentation: T² · KL(softmax(T_j/T) ‖ softmax(S_j/T)), summed over classes (Hinton's soft
  targets; T² keeps gradients comparable across T; :func:`soft_target_kl`);
- every other task (the default): its own ℓ_j(S_j, pseudo-label) (|S−T| averaged over channels;
  1 − cos of unit normals).

L = L_new + λ Σ_{j<t} L_lwf,j — a sum over old tasks, as LwF's λ_o Σ_old (DIS and HAD average
instead). Teacher cache (:mod:`lhl.engine.teacher`): the raw outputs in the cache's precision
(fp16 by default; the soft targets then match a teacher pass up to fp16 rounding). Terms ``lwf/<task>``, already weighted. State: only the teacher, rebuilt at every
``before_phase`` (``state_dict`` is empty).
"""

from __future__ import annotations

from dataclasses import dataclass

from lhl.config.checks import check_nonnegative, check_positive
from lhl.methods.distillation import DistillationMethod
from lhl.methods.options import check_choices
from lhl.registry import METHODS
from lhl.tasks.dense import soft_target_kl

__all__ = ["LwF", "soft_target_kl"]


@METHODS.register("lwf")
class LwF(DistillationMethod):
    name = "lwf"

    @dataclass
    class Options:
        weight: float = 5.0  # λ (Table 6 "LWF", NYUv2-R18)
        temperature: float = 2.0  # T of the soft targets (tasks with class distributions: segmentation)

        def __post_init__(self) -> None:
            """λ finite ≥ 0 (0: no distillation); T finite > 0 (logits are divided by T)."""
            check_choices(self)
            check_nonnegative(self.weight, "method.weight")
            check_positive(self.temperature, "method.temperature")

    teacher_cache_kind = "raw"  # soft targets: the raw logits (and raw regression outputs)

    def loss_terms(self, ctx, batch, out):
        terms = {}
        for old in self.old_tasks(ctx, batch, out):
            loss = old.task.soft_distill_map(old.student, old.teacher, self.options.temperature)
            terms[f"lwf/{old.name}"] = self.options.weight * loss.mean()
        return terms
