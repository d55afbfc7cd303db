"""A frozen copy of the model: the teacher for distillation methods (F^{t−1} in HAD paper Sec. 4.1,
Fig. 2)."""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn

from lhl.models import MultiTaskNet


class Teacher:
    """Frozen, eval-mode copy of ``model`` taken at construction (end of the previous phase).

    :meth:`outputs` runs the encoder **once** for all requested heads, without gradients.
    """

    def __init__(self, model: MultiTaskNet) -> None:
        self.model = copy.deepcopy(model)
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks

    @torch.no_grad()
    def outputs(self, images: Tensor, tasks: Sequence[str] | None = None,
                return_features: bool = False):
        """Raw teacher outputs ``{task: [B,C,H,W]}`` (and stage features when asked)."""
        self.model.eval()
        return self.model(images, self.tasks if tasks is None else list(tasks), return_features=return_features)

    def module(self) -> nn.Module:
        return self.model
