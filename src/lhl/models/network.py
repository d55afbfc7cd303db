"""Shared encoder + one head per task, added phase by phase, and optional per-task feature adapters."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lhl.models.heads import ASPPHead
from lhl.registry import ADAPTERS


class MultiTaskNet(nn.Module):
    """Shared encoder and a ``ModuleDict`` of task heads addressed by task name.

    ``forward(x, tasks)`` runs the encoder once and the named heads on its last stage; outputs
    are upsampled bilinearly to the input size.

    **Feature adapters** (``adapters``, empty by default): a task may have one module that replaces
    the map its head reads, ``head(adapter(images, features))`` instead of ``head(features[-1])``
    — e.g. side-tuning's blend α·B(x) + (1−α)·S_t(x) (:mod:`lhl.models.adapters`). Adapters are
    built by name from the ``ADAPTERS`` registry (:meth:`add_adapter`); ``adapter_specs`` records
    how, so a checkpoint (which stores it next to the state dict) rebuilds them before loading the
    weights (:meth:`add_adapters`). A checkpoint without specs has no adapters.
    """

    def __init__(self, encoder: nn.Module, head_rates: Sequence[int] = (12, 24, 36),
                 head_channels: int = 256, head_dropout: float = 0.5) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict()
        self.adapters = nn.ModuleDict()
        self.adapter_specs: dict[str, dict[str, Any]] = {}
        self.head_rates = tuple(int(r) for r in head_rates)
        self.head_channels = head_channels
        self.head_dropout = head_dropout

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def _device(self):
        return next(self.encoder.parameters()).device

    def add_task(self, name: str, out_channels: int) -> nn.Module:
        if name in self.heads:
            raise ValueError(f"task {name!r} already has a head")
        head = ASPPHead(self.encoder.out_channels, out_channels, self.head_rates,
                        self.head_channels, self.head_dropout)
        self.heads[name] = head.to(self._device())
        return self.heads[name]

    def add_adapter(self, task: str, kind: str, **options: Any) -> nn.Module:
        """Give ``task`` the adapter ``ADAPTERS[kind](channels, **options)`` (``channels``: the
        encoder's output channels, which the adapter must return). ``options`` must be plain
        values (numbers, strings, bools, lists): they are stored in checkpoints."""
        if task in self.adapters:
            raise ValueError(f"task {task!r} already has an adapter")
        adapter = ADAPTERS.get(kind)(self.encoder.out_channels, **options)
        self.adapters[task] = adapter.to(self._device())
        self.adapter_specs[task] = {"kind": kind, **options}
        return self.adapters[task]

    def add_adapters(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        """Rebuild the adapters ``adapter_specs`` described (from a checkpoint), in its order."""
        for task, spec in specs.items():
            options = dict(spec)
            self.add_adapter(task, options.pop("kind"), **options)

    def decode(self, features: list[Tensor], tasks: Sequence[str], size: tuple[int, int],
               images: Tensor | None = None) -> dict[str, Tensor]:
        """Run the named heads on encoder ``features``; outputs ``[B, C_task, *size]``. A task
        with an adapter needs the ``images`` the features came from."""
        out = {}
        for task in tasks:
            if task not in self.heads:
                raise KeyError(f"no head for task {task!r}; heads: {self.tasks}")
            x = features[-1]
            if task in self.adapters:
                if images is None:
                    raise ValueError(f"task {task!r} has an adapter: decode needs the images")
                x = self.adapters[task](images, features)
            y = self.heads[task](x)
            out[task] = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return out

    def forward(self, x: Tensor, tasks: Sequence[str] | None = None,
                return_features: bool = False):
        """``x``: ``[B, 3, H, W]``. Returns ``{task: [B, C_task, H, W]}`` (and the encoder's stage
        features when ``return_features``)."""
        features = self.encoder(x)
        out = self.decode(features, self.tasks if tasks is None else tasks, tuple(x.shape[-2:]), x)
        return (out, features) if return_features else out
