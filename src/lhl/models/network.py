"""Shared encoder + one head per task, added phase by phase."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lhl.models.heads import ASPPHead


class MultiTaskNet(nn.Module):
    """Shared encoder and a ``ModuleDict`` of task heads addressed by task name.

    ``forward(x, tasks)`` runs the encoder once and the named heads on its last stage; outputs
    are upsampled bilinearly to the input size.
    """

    def __init__(self, encoder: nn.Module, head_rates: Sequence[int] = (12, 24, 36),
                 head_channels: int = 256, head_dropout: float = 0.5) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict()
        self.head_rates = tuple(int(r) for r in head_rates)
        self.head_channels = head_channels
        self.head_dropout = head_dropout

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def add_task(self, name: str, out_channels: int) -> nn.Module:
        if name in self.heads:
            raise ValueError(f"task {name!r} already has a head")
        head = ASPPHead(self.encoder.out_channels, out_channels, self.head_rates,
                        self.head_channels, self.head_dropout)
        device = next(self.encoder.parameters()).device
        self.heads[name] = head.to(device)
        return self.heads[name]

    def decode(self, features: list[Tensor], tasks: Sequence[str], size: tuple[int, int]) -> dict[str, Tensor]:
        """Run the named heads on encoder ``features``; outputs ``[B, C_task, *size]``."""
        out = {}
        for task in tasks:
            if task not in self.heads:
                raise KeyError(f"no head for task {task!r}; heads: {self.tasks}")
            y = self.heads[task](features[-1])
            out[task] = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return out

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None,
                return_features: bool = False):
        """``x``: ``[B, 3, H, W]``. Returns ``{task: [B, C_task, H, W]}`` (and the encoder's stage
        features when ``return_features``)."""
        features = self.encoder(x)
        out = self.decode(features, self.tasks if tasks is None else tasks, tuple(x.shape[-2:]))
        return (out, features) if return_features else out
