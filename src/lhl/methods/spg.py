"""SPG: soft-masking of parameter-level gradient flow (Konishi et al., ICML 2023), on the shared
encoder.

After phase t < T (nothing would use importances computed after the last phase), one pass over
task t's training data (model in eval mode) accumulates, for every encoder parameter, the summed
gradient of (a) task t's own loss and (b) for each old head j, the sum of its raw outputs (SPG's
label-free proxy for old tasks). Each gradient tensor is turned into an importance ``|tanh(z)|``
with z its per-tensor standardisation (:func:`lhl.methods.encoder_params.soft_importance`); the
phase's importance is the element-wise max over heads, and the method keeps the running max over
phases, γ ← max(γ, γ_t).

In later phases each encoder parameter's **update** is multiplied by (1 − γ) (shared machinery in
:mod:`lhl.methods.gradient_space`: the step Adam took, weight decay included, is masked;
``apply_to: gradient`` masks ``.grad`` instead, the paper's form). Old heads and encoder BatchNorm
affine parameters are frozen from phase 2 on, encoder BatchNorm statistics too
(docs/deviations.md, "SPG/SGP act on the optimiser's update").

Under DDP the summed gradients are summed over processes (the task loss, a batch mean, counted as
1/world of the global one; the head sums as they are), so the importances are those of one process
with the global batch and identical on every process.

State: ``importance`` ``{encoder param name: tensor}`` (the running max).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lhl.engine.distributed import world_size
from lhl.methods.gradient_space import ApplyTo, GradientSpaceMethod
from lhl.methods.encoder_params import encoder_parameters, soft_importance, summed_gradients, to_device
from lhl.methods.options import check_choices
from lhl.registry import METHODS


@METHODS.register("spg")
class SPG(GradientSpaceMethod):
    name = "spg"

    @dataclass
    class Options:
        apply_to: ApplyTo = "update"  # mask the optimiser's update (default) or the raw gradient

        def __post_init__(self) -> None:
            check_choices(self)

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.importance: dict[str, Tensor] = {}

    def protected(self, ctx):
        params = encoder_parameters(ctx.model)  # requires_grad only: frozen BN is not edited
        return {name: p for name, p in params.items() if name in self.importance}

    def edit(self, name, update):
        return update * (1 - self.importance[name]).to(update.dtype)

    def update_protection(self, ctx, loader) -> None:
        if ctx.phase >= len(ctx.task_order):
            return
        task, old, training = ctx.tasks[ctx.phase_tasks[0]], ctx.old_tasks, ctx.model.training
        ctx.model.eval()
        sums = summed_gradients(ctx.model, self._objectives(ctx, task, old, loader))
        ctx.model.train(training)
        phase_importance = {}
        for grads in sums.values():
            for name, grad in grads.items():
                value = soft_importance(grad)
                phase_importance[name] = value if name not in phase_importance else torch.maximum(
                    phase_importance[name], value)
        for name, value in phase_importance.items():
            previous = self.importance.get(name)
            self.importance[name] = value if previous is None else torch.maximum(previous, value)
        values = torch.cat([v.flatten() for v in self.importance.values()])
        ctx.log("spg_importance", phase=ctx.phase, mean=float(values.mean()), max=float(values.max()),
                above_half=float((values > 0.5).float().mean()))

    @staticmethod
    def _objectives(ctx, task, old, loader):
        """Per batch, this process's additive share of each objective (summed_gradients)."""
        share = 1 / world_size()  # the global batch's mean loss is the mean of equal local batches'
        for batch in loader:
            images = batch["image"].to(ctx.device)
            outputs = ctx.model(images, [task.name, *old])
            objectives = {task.name: share * task.loss(outputs[task.name].float(), batch[task.name].to(ctx.device))}
            objectives.update({t: outputs[t].float().sum() for t in old})
            yield objectives

    def state_dict(self):
        return {"importance": to_device(self.importance, "cpu")}

    def load_state_dict(self, state, ctx) -> None:
        self.importance = to_device(state["importance"], ctx.device)
