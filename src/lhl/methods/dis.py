"""DIS: naive self-distillation (HAD paper, eq. 3) — the baseline HAD improves on.

At phase t ≥ 2 the frozen model of phase t−1 labels the phase-t images for every old task j,
and the student minimises  L = L_new + α/(t−1) · Σ_{j<t} mean_pixels(ℓ_j),  where ℓ_j is task
j's per-pixel distillation map against the teacher's pseudo-label (App. C.4; docs/deviations.md,
"Per-pixel distillation maps": CE against the argmax, |S−T| averaged over channels, 1−cos of
unit normals) — every pixel weighted equally, which is what HAD's DB and SG terms replace.

Teacher cache (:mod:`lhl.engine.teacher`): pseudo-labels (uint8 class maps, fp16/fp32 regression).

Loss terms: ``dis/<task>``, already weighted. State: only the teacher, rebuilt at every
``before_phase`` (``state_dict`` is empty).
"""

from __future__ import annotations

from dataclasses import dataclass

from lhl.config.checks import check_nonnegative
from lhl.methods.distillation import DistillationMethod
from lhl.methods.options import check_choices
from lhl.registry import METHODS


@METHODS.register("dis")
class DIS(DistillationMethod):
    name = "dis"

    @dataclass
    class Options:
        alpha: float = 3.0  # α of eq. 3 (synthetic presets: the NYUv2-R18 HAD value)

        def __post_init__(self) -> None:
            check_choices(self)
            check_nonnegative(self.alpha, "method.alpha")

    teacher_cache_kind = "pseudo_label"  # ℓ_j against the pseudo-label only

    def loss_terms(self, ctx, batch, out):
        pairs = self.old_tasks(ctx, batch, out)
        weight = self.options.alpha / max(len(pairs), 1)
        return {f"dis/{old.name}": weight * old.task.distill_map(old.student, old.pseudo_label).mean()
                for old in pairs}
