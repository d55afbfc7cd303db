"""Dilated ResNet encoders (output stride 8) and the small ``tiny`` encoder.

Every encoder returns the four stage outputs (layer1 … layer4) so feature-distillation
methods (POD) can read them; heads use the last one. torchvision's BasicBlock refuses
``replace_stride_with_dilation``, so dilation is applied by editing the convolutions after
construction (docs/deviations.md, "Dilation by editing convolutions"): layer3 and layer4 lose
their stride, their 3×3 convolutions get dilation 2 and 4, the formerly strided conv half of that
(1 and 2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock, Bottleneck

from lhl.registry import ENCODERS


def _dilate_stage(stage: nn.Sequential, dilation: int) -> None:
    """Remove the stage's stride and dilate its 3×3 convs in place (first block: dilation/2)."""
    for index, block in enumerate(stage):
        block_dilation = max(dilation // 2, 1) if index == 0 else dilation
        for module in block.modules():
            if isinstance(module, nn.Conv2d):
                if module.stride == (2, 2):
                    module.stride = (1, 1)
                if module.kernel_size == (3, 3):
                    module.dilation = (block_dilation, block_dilation)
                    module.padding = (block_dilation, block_dilation)


def undilate(encoder: "ResNetEncoder") -> "ResNetEncoder":
    """Give ``encoder`` torchvision's classification strides back, in place: layer3 and layer4 stride 2
    and no dilation (output stride 32), the form an ImageNet trunk is trained in. The parameters are the
    same tensors, so weights move between the two forms unchanged (``lhl pretrain`` trains in this
    form; every run uses the dilated one, as the paper's encoders dilate ImageNet weights)."""
    for stage in (encoder.layer3, encoder.layer4):
        first = stage[0]
        strided = [first.conv2 if isinstance(first, Bottleneck) else first.conv1]
        if first.downsample is not None:
            strided.append(first.downsample[0])
        for module in stage.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                module.dilation, module.padding = (1, 1), (1, 1)
        for conv in strided:
            conv.stride = (2, 2)
    return encoder


class ResNetEncoder(nn.Module):
    """A torchvision ResNet trunk with output stride 8.

    Input ``[B, 3, H, W]``; output: list of four stage maps, the last ``[B, C, H/8, W/8]``.
    """

    def __init__(self, net: resnet.ResNet) -> None:
        super().__init__()
        _dilate_stage(net.layer3, 2)
        _dilate_stage(net.layer4, 4)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.stage_channels = [_stage_out(s) for s in (self.layer1, self.layer2, self.layer3, self.layer4)]
        self.out_channels = self.stage_channels[-1]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f1, f2, f3, f4]


def _stage_out(stage: nn.Sequential) -> int:
    last = stage[-1]
    return last.bn3.num_features if isinstance(last, Bottleneck) else last.bn2.num_features


@ENCODERS.register("resnet18")
def resnet18() -> ResNetEncoder:
    return ResNetEncoder(resnet.resnet18(weights=None))


@ENCODERS.register("resnet34")
def resnet34() -> ResNetEncoder:
    return ResNetEncoder(resnet.resnet34(weights=None))


@ENCODERS.register("resnet50")
def resnet50() -> ResNetEncoder:
    return ResNetEncoder(resnet.resnet50(weights=None))


class _TinyResNet(resnet.ResNet):
    """ResNet with BasicBlocks, one block per stage and widths 8/16/24/32."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = 8, 1, 1, 64
        self.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, 8, 1)
        self.layer2 = self._make_layer(BasicBlock, 16, 1, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 24, 1, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 32, 1, stride=2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


@ENCODERS.register("tiny")
def tiny() -> ResNetEncoder:
    """Same dilated ResNet structure with widths 8–32, for tests and the smoke preset."""
    return ResNetEncoder(_TinyResNet())


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_encoder_weights(encoder: ResNetEncoder, path: str | Path) -> str:
    """Load ImageNet-style ResNet weights from a local file into ``encoder``; return its SHA-256.

    Accepts a torchvision ``resnet*.pth`` state dict (``conv1.*``, ``bn1.*``, ``layer*``; the
    classifier ``fc.*`` is ignored) or one saved from this encoder. Never downloads.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.weights: no such file {str(path)!r}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    renamed = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        if key.startswith(("conv1.", "bn1.")):
            key = {"conv1": "stem.0", "bn1": "stem.1"}[key.split(".")[0]] + key[key.index("."):]
        renamed[key] = value
    missing, unexpected = encoder.load_state_dict(renamed, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"model.weights {str(path)!r} does not fit the encoder: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return file_sha256(path)
