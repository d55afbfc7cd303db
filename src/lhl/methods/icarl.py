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
flips outputs (normals' x negated). Under DDP the buffer is replicated: features and the chosen
images' maps are computed in shards and gathered, herding is global (lhl.methods.buffer).

Term ``icarl``, already weighted. State: the buffer (items, generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from lhl.engine.distributed import all_gather_cat, shard_bounds
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
        task, dataset, batch = ctx.tasks[name], loader.dataset, loader.batch_size
        model.eval()
        # Under DDP each process works on a contiguous shard and the results are gathered, so every
        # process herds on the whole dataset's features and stores the same items. An empty shard
        # (fewer items than processes) runs one stand-in item, cut off, for the gather's shapes.

        def features(indices):
            parts = [model.encoder(b["image"].to(ctx.device))[-1].float().mean(dim=(2, 3))
                     for b in DataLoader(Subset(dataset, indices or [0]), batch_size=batch, shuffle=False)]
            return torch.cat(parts)[:len(indices)]

        def stored(indices):  # images and stored maps, fp16 as the buffer keeps them
            images = torch.stack([dataset[i]["image"] for i in indices or chosen[:1]]).to(ctx.device)
            maps = torch.cat([task.replay_target(model(images[s:s + batch], [name])[name].float())
                              for s in range(0, len(images), batch)])
            return images[:len(indices)].half(), maps[:len(indices)].half()

        pooled = all_gather_cat(features(list(range(*shard_bounds(len(dataset)))))).cpu()
        chosen = self.buffer.select(ctx.seen_tasks, F.normalize(pooled, dim=1), self.options.selection)
        if chosen:
            images, maps = stored(chosen[slice(*shard_bounds(len(chosen)))])
            self.buffer.add(all_gather_cat(images), name, all_gather_cat(maps))
        model.train(training)
