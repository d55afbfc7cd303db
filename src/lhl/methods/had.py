"""HAD: heterogeneity-aware distillation (HAD paper, CVPR 2026, Sec. 4, eqs. 4–10).

At phase t ≥ 2 the frozen model of phase t−1 labels the phase-t images for every old task j and
the student minimises eq. 4, L = L_new + α/(2(t−1)) Σ_{j<t} (L_db,j + L_sg,j): DB-HAD (eq. 6)
averages the geometric means of the per-pixel distillation loss ℓ_j over the teacher's
pseudo-label groups, SG-HAD (eqs. 7–10) averages ℓ_j over the Sobel edges of the detached ℓ_j;
both are batch means of per-image values (eq. 5). The mathematics is in :mod:`lhl.losses.had`.
What DB-HAD groups each task's pixels by is the task's own declaration
(:meth:`~lhl.tasks.Task.had_grouping`: the argmax class of the raw teacher logits for
segmentation, value groups of the pseudo-label otherwise).
``variant: reference`` computes the terms as the authors' code does (:mod:`lhl.losses.had_reference`,
its items 1–8 and docs/deviations.md, "HAD": no 1/(t−1), batch-pooled groups and masks, student
log-softmax / unit normals, zero-padded Sobel), with the authors' segmentation, normal or
regression rule as each task declares (:attr:`~lhl.tasks.Task.had_reference_rule`); it follows
that code literally, so the paper-only options
(``eps``, ``group_mean``, ``regression_groups``, ``normalize_sobel``, ``sobel_padding``) must keep
their defaults there, while ``use_db``/``use_sg`` apply to both variants.

Teacher cache (:mod:`lhl.engine.teacher`): everything both variants read is a function of the
pseudo-label (for segmentation the groups are the argmax classes, which the pseudo-label is), so
HAD caches pseudo-labels: uint8 class maps, fp16/fp32 regression values.

Terms ``db/<task>``, ``sg/<task>``, already weighted. State: only the teacher, rebuilt at every
``before_phase`` (the loop reloads phase t−1's checkpoint first on resume): ``state_dict`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F

from lhl.errors import ConfigError
from lhl.losses.had import group_masks_batched, had_terms_batched
from lhl.losses.had_reference import reference_normal_terms, reference_regression_terms, reference_segmentation_terms
from lhl.config.checks import check_fraction, check_nonnegative, check_positive
from lhl.methods.distillation import DistillationMethod, OldTask
from lhl.methods.options import check_choices, check_int_at_least
from lhl.registry import METHODS


@METHODS.register("had")
class HAD(DistillationMethod):
    name = "had"

    @dataclass
    class Options:
        alpha: float = 3.0  # α of eq. 4 (App. C.4: 3/20/100/1/1; NYUv2-R18 = 3)
        group_threshold: float = 0.5  # τ of Sec. 4 ("k" in App. C.4/F): regression group split
        edge_threshold: float = 0.9  # k of eq. 9 ("τ" in App. C.4/F): Sobel edge threshold
        eps: float = 1e-8  # ε > 0 in the geometric mean exp(mean log(ℓ + ε)) (eq. 6)
        use_db: bool = True  # False: Table 4 "w/o DB"
        use_sg: bool = True  # False: Table 4 "w/o SG"
        group_mean: Literal["geometric", "arithmetic"] = "geometric"  # Table 4 ablation
        regression_groups: int = 2  # Ĉ, equal-width bins when > 2 (Table 4, §5.3: 5, 10, 15)
        normalize_sobel: bool = True  # per-image min-max of the Sobel map before thresholding
        sobel_padding: Literal["replicate", "zeros"] = "replicate"  # zeros lights up borders
        variant: Literal["paper", "reference"] = "paper"  # reference: the authors' code

        def __post_init__(self) -> None:
            """Ranges. α finite ≥ 0 (0: no distillation). ``group_threshold`` τ splits the per-image
            min-max normalised pseudo-label v ∈ [0, 1] into {v < τ} and {v ≥ τ} (Sec. 4.2), so it is
            a number in [0, 1]. ``edge_threshold`` k is compared with the Sobel map (eq. 9), which
            is min-max normalised to [0, 1] by default (the paper tunes k in 0.5–0.9; the reference
            variant normalises too): k ∈ [0, 1]; with ``normalize_sobel: false`` the raw magnitude
            is compared and any finite k ≥ 0 is allowed. ε must be > 0: with ε = 0 a pixel whose
            loss is exactly 0 (a teacher matched exactly) makes log(ℓ) = −∞, the group's geometric
            mean 0 and its gradient NaN. Ĉ = ``regression_groups`` is an integer ≥ 2."""
            check_choices(self)
            check_nonnegative(self.alpha, "method.alpha")
            check_fraction(self.group_threshold, "method.group_threshold")
            if self.normalize_sobel:
                check_fraction(self.edge_threshold, "method.edge_threshold")
            else:
                check_nonnegative(self.edge_threshold, "method.edge_threshold")
            check_positive(self.eps, "method.eps")
            check_int_at_least(self.regression_groups, "method.regression_groups", 2)
            for key in ("eps", "group_mean", "regression_groups", "normalize_sobel", "sobel_padding"):
                if self.variant == "reference" and getattr(self, key) != getattr(HAD.Options, key):
                    raise ConfigError(f"method.{key}: {getattr(self, key)!r} applies only to variant 'paper'; "
                                      "the reference variant follows the authors' code")

    teacher_cache_kind = "pseudo_label"  # ℓ_j and the groups need only the pseudo-label

    def teacher_cache_blocker(self, ctx):
        """DB-HAD (paper variant) groups by :meth:`~lhl.tasks.Task.had_grouping`; a task whose rule needs
        the raw output (it does not declare ``had_grouping_of_pseudo_label``) keeps the teacher."""
        if self.options.variant == "paper" and self.options.use_db:
            raw_only = [t for t in ctx.old_tasks if not ctx.tasks[t].grouping_from_pseudo_label()]
            if raw_only:
                return (f"task {raw_only[0]!r} declares had_grouping on the raw teacher output without "
                        "had_grouping_of_pseudo_label")
        return super().teacher_cache_blocker(ctx)

    def loss_terms(self, ctx, batch, out):
        o, pairs = self.options, self.old_tasks(ctx, batch, out)
        if not pairs:
            return {}
        weight = o.alpha / 2 if o.variant == "reference" else o.alpha / (2 * len(pairs))
        if o.variant == "reference":
            values = [self._reference(old) for old in pairs]
        else:
            db, sg = self._paper(pairs)
            values = list(zip(db, sg))
        terms = {}
        for old, (db, sg) in zip(pairs, values):
            if o.use_db:
                terms[f"db/{old.name}"] = weight * db
            if o.use_sg:
                terms[f"sg/{old.name}"] = weight * sg
        return terms

    def _paper(self, pairs: list[OldTask]):
        """(L_db, L_sg) of every old task, each a (J,) tensor: one batched call for all old tasks
        (:func:`~lhl.losses.had.had_terms_batched`, equal to :func:`~lhl.losses.had.had_terms`
        task by task)."""
        o = self.options
        loss_maps = [old.task.distill_map(old.student, old.pseudo_label) for old in pairs]  # ℓ_j, [B,H,W]
        groups = None
        if o.use_db:
            grouping = [old.had_grouping for old in pairs]  # raw output, or the cached pseudo-label
            groups = group_masks_batched([g for g, _ in grouping], [k for _, k in grouping],
                                         o.group_threshold, o.regression_groups)
        return had_terms_batched(loss_maps, groups, o.edge_threshold, use_db=o.use_db, use_sg=o.use_sg,
                                 mean=o.group_mean, eps=o.eps, normalize=o.normalize_sobel,
                                 padding=o.sobel_padding)

    def _reference(self, old: OldTask):
        o, pseudo, rule = self.options, old.pseudo_label, old.task.had_reference_rule
        if rule == "segmentation":  # the student enters as log-probabilities
            return reference_segmentation_terms(F.log_softmax(old.student, dim=1), pseudo, o.edge_threshold)
        if rule == "normal":  # ... as unit vectors
            return reference_normal_terms(old.task.postprocess(old.student), pseudo, o.group_threshold,
                                          o.edge_threshold)
        if rule == "regression":  # ... raw
            return reference_regression_terms(old.student, pseudo, o.group_threshold, o.edge_threshold)
        raise ValueError(f"task {old.name!r} declares had_reference_rule {rule!r}; "
                         "expected 'segmentation', 'normal' or 'regression'")
