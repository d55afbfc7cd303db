"""EWC: elastic weight consolidation (Kirkpatrick et al., PNAS 2017; online: Schwarz et al., 2018).

After phase t the diagonal Fisher of the **shared encoder** is estimated from task t's own loss on
its training data, F_t = mean over the phase's mini-batches of (∂L_t/∂θ)² (``fisher: minibatch``,
the training batch size; ``per_sample``: mean over images of the squared per-image gradient), with
the model in eval mode (BatchNorm running statistics, which the estimate must not change). Later
phases add the term ``ewc_penalty`` = λ Σ_k F_k (θ_k − θ*_k)² over encoder parameters only — heads
are never penalised —, either one term per past task with its own anchor (``offline``) or one
running Fisher F ← γF + F_t with the latest anchor (``online``).

State: the Fisher diagonals and anchors (``{name: tensor}`` per past task, or one pair online).
The authors' Fisher estimator is unreleased (docs/deviations.md); ours is the empirical mini-batch
Fisher above, so Table 6's λ (1e3–1e10; NYUv2-R18: 1e9) transfers only approximately. The penalty's
magnitude is logged as a loss term every epoch, and each Fisher's sum and max as ``ewc_fisher``.

Under DDP each process's mini-batch gradient is averaged over processes before it is squared (the
global mini-batch's gradient); per-image squares are summed over processes: every process holds
the Fisher one process with the global batch would estimate (:func:`~lhl.methods.encoder_params.
squared_gradients`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lhl.engine.hooks import Method
from lhl.config.checks import check_fraction, check_nonnegative
from lhl.methods.encoder_params import quadratic_penalty, snapshot, squared_gradients, task_losses, to_device
from lhl.methods.options import check_choices
from lhl.registry import METHODS


@METHODS.register("ewc")
class EWC(Method):
    name = "ewc"

    @dataclass
    class Options:
        lam: float = 1e9  # λ (Table 6, NYUv2-R18; see the caveat above)
        mode: Literal["offline", "online"] = "offline"
        gamma: float = 1.0  # online decay γ ∈ [0, 1] of the running Fisher (1: plain sum)
        fisher: Literal["minibatch", "per_sample"] = "minibatch"

        def __post_init__(self) -> None:
            """λ finite ≥ 0 (0: no penalty). γ is a decay (online EWC, Schwarz et al. 2018): in
            [0, 1], 0 keeping only the newest Fisher and 1 summing them all; above 1 the old
            Fishers would grow geometrically. Checked in offline mode too, where it is unused, so
            a bad value fails when it is written rather than when the mode is switched."""
            check_choices(self)
            check_nonnegative(self.lam, "method.lam")
            check_fraction(self.gamma, "method.gamma")

    def setup(self, ctx) -> None:
        self.fishers, self.anchors = [], []  # one entry per past task (offline) or one (online)

    def loss_terms(self, ctx, batch, out):
        if not self.fishers:
            return {}
        penalty = sum(quadratic_penalty(ctx.model, f, a) for f, a in zip(self.fishers, self.anchors))
        return {"ewc_penalty": self.options.lam * penalty}

    def after_phase(self, ctx, loader) -> None:
        task, training = ctx.tasks[ctx.phase_tasks[0]], ctx.model.training
        ctx.model.eval()
        per_sample = self.options.fisher == "per_sample"
        fisher = squared_gradients(ctx.model, task_losses(ctx.model, task, loader, ctx.device, per_sample),
                                   shares=not per_sample)
        ctx.model.train(training)
        ctx.log("ewc_fisher", phase=ctx.phase, sum=float(sum(f.sum() for f in fisher.values())),
                max=float(max(f.max() for f in fisher.values())))
        if self.options.mode == "online" and self.fishers:
            fisher = {k: self.options.gamma * self.fishers[0][k] + v for k, v in fisher.items()}
            self.fishers, self.anchors = [], []
        self.fishers.append(fisher)
        self.anchors.append(snapshot(ctx.model))

    def state_dict(self):
        return {"fishers": [to_device(f, "cpu") for f in self.fishers],
                "anchors": [to_device(a, "cpu") for a in self.anchors]}

    def load_state_dict(self, state, ctx) -> None:
        self.fishers = [to_device(f, ctx.device) for f in state["fishers"]]
        self.anchors = [to_device(a, ctx.device) for a in state["anchors"]]
