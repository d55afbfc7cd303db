"""iCaRL-style replay (Rebuffi et al., CVPR 2017), dense adaptation (HAD paper, App. C.3, Table 6;
docs/deviations.md, "Baselines").

At the end of phase t the buffer of ``buffer_size`` images is rebalanced evenly over the tasks
seen so far (older tasks keep the head of their herding order) and task t's share is chosen from
the phase's training images by herding on globally pooled, L2-normalised last-stage encoder
features (iCaRL's φ; ``random`` as an option). Each stored image keeps its task id and what its
task stores for the output of its head at insertion (:meth:`~lhl.tasks.Task.replay_target`):
sigmoid probabilities for segmentation, the post-processed prediction (pseudo-label) otherwise.
Each later step adds, on a replay mini-batch of ``replay_batch`` images, each through its own head,
L = L_new + λ · mean_i L_i with L_i the mean of the task's replay map
(:meth:`~lhl.tasks.Task.replay_map`) over the sample's elements: mean_{c,h,w} BCE(σ(S_i), stored)
for segmentation (iCaRL's sigmoid distillation), mean_{h,w} ℓ_task(S_i, stored) otherwise. No
distillation on current images.

Dense adaptation (docs/deviations.md, "iCaRL (dense)"): "iCaRL-style" — the paper stores and
replays pixel-wise predictions; there is no nearest-mean classifier. Selection and storage run in
eval mode; images come from the phase's dataset in index order (after the data layer's
augmentation, if it is on). Replayed images and maps are flipped together, each map as its task
flips outputs (normals' x negated).

Term ``icarl``, already weighted. State: the buffer (items, generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lhl.methods.buffer import ReplayMethod, ReplayOptions
from lhl.registry import METHODS


@METHODS.register("icarl")
class ICaRL(ReplayMethod):
    name = "icarl"

    @dataclass
    class Options(ReplayOptions):
        """``weight`` is λ (Table 6 "iCaRL", NYUv2-R18: 0.01)."""

        selection: Literal["herding", "random"] = "herding"

    def loss_terms(self, ctx, batch, out):
        def per_sample(name, student, stored):
            return ctx.tasks[name].replay_map(student, stored).flatten(1).mean(1)

        return self.replay_term(ctx, per_sample)

    @torch.no_grad()
    def after_phase(self, ctx, loader) -> None:
        name, model, training = ctx.phase_tasks[0], ctx.model, ctx.model.training
        task, dataset = ctx.tasks[name], loader.dataset
        model.eval()
        ordered = DataLoader(dataset, batch_size=loader.batch_size, shuffle=False)
        features = torch.cat([model.encoder(b["image"].to(ctx.device))[-1].float().mean(dim=(2, 3)).cpu()
                              for b in ordered])
        chosen = self.buffer.select(ctx.seen_tasks, F.normalize(features, dim=1), self.options.selection)
        for start in range(0, len(chosen), loader.batch_size):
            images = torch.stack([dataset[i]["image"] for i in chosen[start:start + loader.batch_size]]).to(ctx.device)
            raw = model(images, [name])[name].float()
            self.buffer.add(images, name, task.replay_target(raw))
        model.train(training)
