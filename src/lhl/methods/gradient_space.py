"""What SPG and SGP share: protecting the encoder by editing its *update* (docs/deviations.md,
"SPG/SGP act on the optimiser's update, with frozen BatchNorm").

Both methods shrink, per element (SPG) or per direction (SGP), how far encoder parameters move in
later phases. Adam divides each element's step by its own running gradient magnitude, so scaling
or projecting the raw gradient is largely undone (a gradient multiplied by 0.01 gives nearly the
same Adam step) and a projected gradient does not give a projected step. Here the protection acts
on the step the optimiser actually took: :meth:`before_step` snapshots the protected parameters,
:meth:`after_step` replaces the update ``U = θ_new − θ_old`` by ``edit(U)``. The coupled weight
decay of ``torch.optim.Adam`` is part of U, so it is masked/projected too. ``apply_to: gradient``
edits ``.grad`` after backward instead (the original papers' form, for plain SGD).

Under DDP nothing more is needed: DistributedDataParallel all-reduces the gradients during
``backward()``, which returns only once the averaged gradients are in ``.grad``, so
:meth:`after_backward` edits the global gradient; every process then takes the same optimiser
step and :meth:`after_step` applies the same edit (importances and bases are identical on every
process, see SPG and SGP), so the replicas stay equal.

From phase 2 on (docs/deviations.md):
- old task heads and the frozen encoder parameters (BatchNorm affine parameters, plus what the
  subclass freezes) get ``requires_grad = False`` before the phase's optimiser is built, so they
  are not in it at all: no loss, no Adam step, no weight-decay drift. The flags are restored at
  the end of the phase (importances are estimated for every encoder parameter).
- encoder BatchNorm layers are put in eval mode after every ``model.train()`` (running statistics
  frozen; the new head's BatchNorms train normally).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lhl.engine.hooks import Method

ApplyTo = Literal["update", "gradient"]


class GradientSpaceMethod(Method):
    """Base of SPG and SGP. Subclasses implement :meth:`protected` (encoder parameters to edit, by
    name), :meth:`edit` (a gradient-shaped tensor → its protected version; ``None`` = no motion
    at all) and may extend :meth:`frozen_encoder_parameter`."""

    def setup(self, ctx) -> None:
        self._frozen: list[nn.Parameter] = []
        self._before: dict[str, Tensor] = {}
        self._targets: dict[str, nn.Parameter] = {}
        self._active = False

    # -------------------------------------------------------------- subclass interface
    def protected(self, ctx) -> dict[str, nn.Parameter]:
        raise NotImplementedError

    def edit(self, name: str, update: Tensor) -> Tensor | None:
        raise NotImplementedError

    def frozen_encoder_parameter(self, module: nn.Module, name: str, param: nn.Parameter) -> bool:
        """Frozen from phase 2 on: BatchNorm affine parameters."""
        return isinstance(module, _BatchNorm)

    # -------------------------------------------------------------- hooks
    def before_phase(self, ctx, loader) -> None:
        self._frozen, self._before = [], {}
        self._active = ctx.phase >= 2
        if not self._active:
            return
        frozen = [p for t in ctx.old_tasks for p in ctx.model.heads[t].parameters()]
        for module in ctx.model.encoder.modules():
            for name, param in module.named_parameters(recurse=False):
                if self.frozen_encoder_parameter(module, name, param):
                    frozen.append(param)
        self._frozen = [p for p in frozen if p.requires_grad]
        for p in self._frozen:
            p.requires_grad_(False)
        self._targets = self.protected(ctx)

    def on_train_mode(self, ctx) -> None:
        if self._active:
            for module in ctx.model.encoder.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()

    def after_backward(self, ctx) -> None:
        if not self._active or self.options.apply_to != "gradient":
            return
        for name, param in self._targets.items():
            if param.grad is not None:
                edited = self.edit(name, param.grad)
                param.grad = torch.zeros_like(param.grad) if edited is None else edited.to(param.grad.dtype)

    @torch.no_grad()
    def before_step(self, ctx) -> None:
        if self._active and self.options.apply_to == "update":
            self._before = {name: p.detach().clone() for name, p in self._targets.items()}

    @torch.no_grad()
    def after_step(self, ctx) -> None:
        if not self._before:
            return
        for name, param in self._targets.items():
            before = self._before[name]
            edited = self.edit(name, param.detach() - before)
            param.copy_(before if edited is None else before + edited.to(param.dtype))
        self._before = {}

    def after_phase(self, ctx, loader) -> None:
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen, self._active, self._targets = [], False, {}
        self.update_protection(ctx, loader)

    def update_protection(self, ctx, loader) -> None:
        """Estimate the finished phase's importances / bases (subclasses)."""
