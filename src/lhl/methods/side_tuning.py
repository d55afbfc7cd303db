"""Side-tuning (Zhang, Sax, Zamir, Guibas, Malik, "Side-Tuning: A Baseline for Network Adaptation
via Additive Side Networks", ECCV 2020), as in its lifelong (iTaskonomy) setting: a frozen base
B (the shared encoder) plus one small side network S_t per task; task t's head reads

    r_t(x) = α_t·B(x) + (1 − α_t)·S_t(x)        (the paper's additive fusion; α_t weighs the base)

S_t (:class:`lhl.models.adapters.SideAdapter`, five convolutions like the paper's FCN5, output
stride 8, ``width`` channels) is a feature adapter of the model, created when task t's phase
starts (seeded with the phase), trained only in that phase and frozen afterwards with its head,
so no task ever forgets. ``learn_alpha`` (default, the authors' ``Alpha`` merge operator):
α_t = sigmoid(a_t), a learnt scalar per task starting at logit(``alpha``) (½ by default);
otherwise α_t = ``alpha`` fixed. The base follows :class:`~lhl.methods.frozen.Frozen`'s rule
(``first_phase``): frozen from the start when pretrained, trained in phase 1 — together with S_1
— when it starts random. Deviations (random side initialisation where the paper distils the
side from the base, no pre-head normalisation): docs/deviations.md, "Baselines".

State: none beyond the model (adapters and their specs are part of every checkpoint). Each
phase's α_t is logged (``side_tuning_alpha``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lhl.config.checks import check_fraction, check_positive_int
from lhl.methods.frozen import Frozen
from lhl.registry import METHODS


@METHODS.register("side-tuning")
class SideTuning(Frozen):
    name = "side-tuning"

    @dataclass
    class Options(Frozen.Options):
        alpha: float = 0.5  # α, the base's weight (initial value when learnt)
        learn_alpha: bool = True  # α = sigmoid(a), a learnt per task (the authors' lifelong configs)
        width: int = 64  # channels inside the side network

        def __post_init__(self) -> None:
            """α ∈ [0, 1] (0: side only, 1: base only, i.e. ``frozen``); a learnt α starts in (0, 1)."""
            super().__post_init__()
            learnt = self.learn_alpha
            check_fraction(self.alpha, "method.alpha", low_open=learnt, high_open=learnt)
            check_positive_int(self.width, "method.width")

    def frozen_modules(self, ctx) -> list:
        return super().frozen_modules(ctx) + [ctx.model.adapters[t] for t in ctx.old_tasks if t in ctx.model.adapters]

    def before_phase(self, ctx, loader) -> None:
        for task in ctx.phase_tasks:
            if task not in ctx.model.adapters:
                ctx.model.add_adapter(task, "side", width=self.options.width, alpha=self.options.alpha,
                                      learn_alpha=self.options.learn_alpha)
        super().before_phase(ctx, loader)

    def after_phase(self, ctx, loader) -> None:
        super().after_phase(ctx, loader)
        for task in ctx.phase_tasks:
            ctx.log("side_tuning_alpha", phase=ctx.phase, task=task, alpha=ctx.model.adapters[task].alpha.item())
