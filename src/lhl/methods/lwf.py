"""LwF: learning without forgetting (Li & Hoiem, TPAMI 2017), dense (SPEC §4).

At phase t ≥ 2 the frozen model of phase t−1 runs on the phase-t images and every old head j is
distilled into the student on every pixel:

- segmentation (classification): T² · KL(softmax(T_j/T) ‖ softmax(S_j/T)), summed over classes,
  averaged over pixels (Hinton's soft targets; T² keeps gradients comparable across T);
- regression: the task's own ℓ_j(S_j, pseudo-label) (|S−T| averaged over channels; 1 − cos of
  unit normals), averaged over pixels.

L = L_new + λ Σ_{j<t} L_lwf,j — a sum over old tasks, as LwF's λ_o Σ_old (DIS and HAD average
instead). Terms ``lwf/<task>``, already weighted. State: only the teacher, rebuilt at every
``before_phase`` (``state_dict`` is empty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from lhl.config.checks import check_nonnegative, check_positive
from lhl.methods.distillation import DistillationMethod
from lhl.methods.options import check_choices
from lhl.registry import METHODS


def soft_target_kl(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Per-pixel T²·KL(softmax(teacher/T) ‖ softmax(student/T)) over dim 1: ``[B,C,H,W]`` → ``[B,H,W]``."""
    log_p = F.log_softmax(teacher / temperature, dim=1)
    log_q = F.log_softmax(student / temperature, dim=1)
    return temperature ** 2 * (log_p.exp() * (log_p - log_q)).sum(dim=1)


@METHODS.register("lwf")
class LwF(DistillationMethod):
    name = "lwf"

    @dataclass
    class Options:
        weight: float = 5.0  # λ (Table 6 "LWF", NYUv2-R18)
        temperature: float = 2.0  # T of the soft targets (segmentation heads)

        def __post_init__(self) -> None:
            """λ finite ≥ 0 (0: no distillation); T finite > 0 (logits are divided by T)."""
            check_choices(self)
            check_nonnegative(self.weight, "method.weight")
            check_positive(self.temperature, "method.temperature")

    def loss_terms(self, ctx, batch, out):
        terms = {}
        for old in self.old_tasks(ctx, batch, out):
            if old.task.kind == "classification":
                loss = soft_target_kl(old.student, old.teacher, self.options.temperature)
            else:
                loss = old.task.distill_map(old.student, old.pseudo_label)
            terms[f"lwf/{old.name}"] = self.options.weight * loss.mean()
        return terms
