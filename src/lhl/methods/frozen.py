"""Frozen encoder: the baseline where the shared encoder stops learning after the first phase — or
never learns, when it starts pretrained — and each phase trains only its new head (a "fixed
feature extractor", a baseline of the side-tuning paper, Zhang et al., ECCV 2020; recent work finds
pretrained backbones barely forget, so this row measures how much of a method's gain comes free).

``first_phase`` decides phase 1: ``train`` trains the encoder with the first head, ``freeze``
freezes it from the start, ``auto`` (default) trains it only when ``model.weights`` is unset (a
randomly initialised encoder). Whenever the encoder is frozen its parameters get
``requires_grad = False`` before the phase's optimiser is built (no loss, no Adam step, no
weight-decay drift) and it is put in eval mode after every ``model.train()`` (BatchNorm running
statistics frozen): parameters and buffers stay bit-identical, so old tasks never forget. Old heads
are frozen the same way. The flags are restored at the end of each phase. No state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lhl.engine.hooks import Method
from lhl.methods.options import check_choices
from lhl.registry import METHODS


@METHODS.register("frozen")
class Frozen(Method):
    name = "frozen"

    @dataclass
    class Options:
        first_phase: Literal["auto", "train", "freeze"] = "auto"  # does phase 1 train the encoder?

        def __post_init__(self) -> None:
            check_choices(self)

    def setup(self, ctx) -> None:
        self._frozen, self._encoder_frozen = [], False

    def encoder_frozen(self, ctx) -> bool:
        """Whether the encoder is frozen in ``ctx.phase`` (always from phase 2 on)."""
        first = self.options.first_phase
        if first == "auto":
            first = "freeze" if ctx.config.model.weights else "train"
        return ctx.phase >= 2 or first == "freeze"

    def frozen_modules(self, ctx) -> list:
        """Modules whose parameters do not train in this phase: old heads, and the encoder when frozen."""
        modules = [ctx.model.heads[t] for t in ctx.old_tasks]
        return modules + [ctx.model.encoder] if self._encoder_frozen else modules

    def before_phase(self, ctx, loader) -> None:
        self._encoder_frozen = self.encoder_frozen(ctx)
        self._frozen = [p for m in self.frozen_modules(ctx) for p in m.parameters() if p.requires_grad]
        for p in self._frozen:
            p.requires_grad_(False)
        ctx.log("frozen", phase=ctx.phase, encoder_frozen=self._encoder_frozen,
                trainable=sum(p.numel() for p in ctx.model.parameters() if p.requires_grad))

    def on_train_mode(self, ctx) -> None:
        for module in self.frozen_modules(ctx):
            module.eval()  # BatchNorm statistics (and dropout) as at the freeze

    def after_phase(self, ctx, loader) -> None:
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen, self._encoder_frozen = [], False
