"""DeepLab ASPP head (the V3 head of the authors' code; docs/deviations.md, "Model")."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = 0 if kernel == 1 else dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _ImagePooling(nn.Module):
    """Global average pool → 1×1 conv → ReLU, broadcast back.

    No BatchNorm here: on a 1×1 map with batch one it would see a single value per channel and
    fail in training mode (docs/deviations.md, "Incomplete last batch").
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.relu(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return pooled.expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPPHead(nn.Module):
    """ASPP: 1×1 conv, one 3×3 atrous conv per rate, image pooling → concat → 1×1 + dropout →
    3×3 conv → 1×1 to ``out_channels``. Input ``[B, in_channels, h, w]``, output
    ``[B, out_channels, h, w]`` (the network upsamples to the input size)."""

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int] = (12, 24, 36),
                 channels: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        branches = [_conv_bn_relu(in_channels, channels)]
        branches += [_conv_bn_relu(in_channels, channels, 3, int(r)) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool = _ImagePooling(in_channels, channels)
        self.project = nn.Sequential(
            _conv_bn_relu(channels * (len(rates) + 2), channels), nn.Dropout(dropout)
        )
        self.refine = _conv_bn_relu(channels, channels, 3)
        self.classifier = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        features = [branch(x) for branch in self.branches] + [self.pool(x)]
        return self.classifier(self.refine(self.project(torch.cat(features, dim=1))))
