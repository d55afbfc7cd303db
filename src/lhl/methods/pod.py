"""POD: PLOP's pooled-outputs distillation of the encoder (Douillard et al., CVPR 2021; HAD paper
App. E, Table 10).

At phase t ≥ 2 the frozen model of phase t−1 runs on the phase-t images and its four encoder
stage outputs (layer1–layer4) are distilled into the student's:
L = L_new + λ · 1/4 Σ_l mean_b d(POD(h_l^S), POD(h_l^T)), with POD the Local (scales 1, 2, 4) or
Global (scale 1) pooled embedding of the squared map and d the per-image distance (``frobenius``:
unsquared L2 norm, PLOP's; ``l1``: mean absolute; ``l2``: mean squared — docs/deviations.md's
reading of the paper's "L2" as MSE). The mathematics is in :mod:`lhl.losses.pod`. The paper's Table 10
variants: local × {frobenius, l1, l2}, global × {frobenius, l1}. Heads are not distilled, so
the student runs only the new head (old heads get no loss).

Term ``pod``, already weighted. State: only the teacher, rebuilt at every ``before_phase``. No
teacher cache (:meth:`POD.teacher_cache_blocker` says why): the teacher runs on every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lhl.losses.pod import pod_loss
from lhl.config.checks import check_nonnegative
from lhl.methods.distillation import DistillationMethod
from lhl.methods.options import check_choices
from lhl.registry import METHODS


@METHODS.register("pod")
class POD(DistillationMethod):
    name = "pod"

    @dataclass
    class Options:
        weight: float = 0.01  # λ (PLOP's pod factor)
        mode: Literal["local", "global"] = "local"
        distance: Literal["frobenius", "l1", "l2"] = "frobenius"

        def __post_init__(self) -> None:
            """λ finite ≥ 0 (0: no distillation); ``mode`` and ``distance`` one of their values."""
            check_choices(self)
            check_nonnegative(self.weight, "method.weight")

    def teacher_cache_blocker(self, ctx):
        """POD reads the teacher's four encoder stage maps, not its heads: caching them would take
        2.0·10⁶ values per image for ResNet-18 at 288×384 (1.0 GB in fp16 for a 265-image NYUv2 chunk;
        4.0 GB for ResNet-50) against 84–224 MB for HAD's pseudo-labels of the last phase
        (``benchmarks/teacher_cache_memory.py``), to save one forward pass of the teacher encoder."""
        return ("method 'pod' distils the teacher's encoder stage features, which cost more memory than "
                "recomputing them (benchmarks/teacher_cache_memory.py)")

    def forward_tasks(self, ctx):
        return list(ctx.phase_tasks)

    def loss_terms(self, ctx, batch, out):
        if self.teacher is None:
            return {}
        _, teacher = self.teacher.outputs(batch["image"], [], return_features=True)
        return {"pod": self.options.weight * pod_loss(out.features, teacher, self.options.mode, self.options.distance)}
