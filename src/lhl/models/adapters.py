"""Per-task feature adapters (:meth:`lhl.models.MultiTaskNet.add_adapter`), registered by name.

An adapter is called as ``adapter(images, features)`` — the input batch ``[B, 3, H, W]`` and the
encoder's four stage maps — and returns the map the task's head reads, shaped like
``features[-1]``. Its constructor takes the encoder's output channels first, then plain options.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lhl.registry import ADAPTERS


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Alpha(nn.Module):
    """α = sigmoid(``logit``) (learnt) or the fixed buffer ``value``."""

    def __init__(self, alpha: float, learn: bool) -> None:
        super().__init__()
        if learn:
            if not 0 < alpha < 1:
                raise ValueError(f"a learnt alpha starts strictly between 0 and 1, got {alpha}")
            self.logit = nn.Parameter(torch.tensor(math.log(alpha / (1 - alpha))))
        else:
            self.register_buffer("value", torch.tensor(float(alpha)))

    def forward(self) -> Tensor:
        return torch.sigmoid(self.logit) if hasattr(self, "logit") else self.value


@ADAPTERS.register("side")
class SideAdapter(nn.Module):
    """Side-tuning's additive fusion (Zhang et al., "Side-Tuning: A Baseline for Network Adaptation
    via Additive Side Networks", ECCV 2020): the head reads r = α·B(x) + (1−α)·S(x), B(x) the
    encoder's last stage and S a small side network on the image.

    S is five convolutions, like the paper's FCN5 side network: three 3×3 stride-2 conv-BN-ReLU
    (output stride 8, the same size as the dilated encoder's last stage for any input size), one
    3×3 conv-BN-ReLU, and a 1×1 conv to ``channels``; ``width`` channels inside. ``learn_alpha``:
    α = sigmoid(a) with a learnt scalar a starting at logit(``alpha``), as the authors' ``Alpha``
    merge operator (which starts at a = 0, α = ½); otherwise α is the fixed buffer ``alpha``.
    """

    def __init__(self, channels: int, width: int = 64, alpha: float = 0.5, learn_alpha: bool = True) -> None:
        super().__init__()
        self.side = nn.Sequential(_conv_bn_relu(3, width, 2), _conv_bn_relu(width, width, 2),
                                  _conv_bn_relu(width, width, 2), _conv_bn_relu(width, width, 1),
                                  nn.Conv2d(width, channels, 1))
        self.blend = _Alpha(alpha, learn_alpha)  # after ``side``: the side's first conv is the input side

    @property
    def alpha(self) -> Tensor:
        """α, the weight of the base (a 0-d tensor)."""
        return self.blend()

    def forward(self, images: Tensor, features: list[Tensor]) -> Tensor:
        base, side = features[-1], self.side(images)
        if side.shape[-2:] != base.shape[-2:]:  # an encoder with another output stride
            side = F.interpolate(side, size=base.shape[-2:], mode="bilinear", align_corners=False)
        alpha = self.alpha.to(base.dtype)
        return alpha * base + (1 - alpha) * side.to(base.dtype)
