"""DER: dark experience replay (Buzzega et al., NeurIPS 2020), dense (HAD paper, App. C.3, Table 6;
docs/deviations.md, "DER (dense)").

A reservoir-sampled buffer of ``buffer_size`` (image, task id, that head's raw output at
insertion) is offered every training image of every phase, current task included; each step adds
α · MSE(student head output, stored output) on a replay mini-batch of ``replay_batch`` images,
each sample through its own head: L = L_new + α · mean_i mean_{c,h,w} (h_{task_i}(x_i) − z_i)².

Dense adaptation: the stored "logits" are whole output maps (fp16, CPU); a replayed image and its
map are flipped together, the map as its task flips raw outputs (normals' x negated;
:meth:`~lhl.tasks.Task.flip_output`), and the squared error is averaged
per sample over its own channels and pixels, then over samples (heads differ in channels).
Images are stored as the loader gives them (after the data layer's augmentation, as Mammoth
stores its non-normalised inputs), outputs from the same forward pass as the training step.

Term ``der``, already weighted. State: the buffer (items, reservoir counter, generator). Under DDP
the buffer is replicated and offered the global batch in one process's order
(:meth:`~lhl.methods.buffer.ReplayMethod.offer`).
"""

from __future__ import annotations

from dataclasses import dataclass

from lhl.methods.buffer import ReplayMethod, ReplayOptions
from lhl.registry import METHODS


def squared_error(task: str, student, stored):
    """Per-sample MSE over channels and pixels: ``[k,C,H,W]`` → ``[k]``."""
    return (student - stored).pow(2).flatten(1).mean(dim=1)


@METHODS.register("der")
class DER(ReplayMethod):
    name = "der"

    @dataclass
    class Options(ReplayOptions):
        """``weight`` is α (Table 6 "DER", NYUv2-R18: 0.01)."""

    def loss_terms(self, ctx, batch, out):
        terms = self.replay_term(ctx, squared_error)
        task = ctx.phase_tasks[0]
        self.offer(batch["image"], task, out.outputs[task])
        return terms
