"""CIFAR ResNets (He et al. 2016, Sec. 4.2) with RepDistiller's module names.

Three stages of ``n = (depth - 2) / 6`` basic blocks at 32x32, 16x16 and 8x8. Widths are
``(stem, layer1, layer2, layer3)`` = (16, 16, 32, 64) for ``resnet8`` ... ``resnet110`` and
(32, 64, 128, 256) for CRD's 4x-wide ``resnet8x4`` / ``resnet32x4``. In the wide models the stem is
narrower than layer1, so the first block of layer1 also gets a projection shortcut.

For a ``[B, 3, 32, 32]`` input, ``stages`` are the stem ``[B, w0, 32, 32]``, layer1
``[B, w1, 32, 32]``, layer2 ``[B, w2, 16, 16]`` and layer3 ``[B, w3, 8, 8]``; ``embedding`` is
``[B, w3]``.

With ``preact=True`` (RepDistiller's ``is_feat=True, preact=True``), ``preact_stages`` are the stem
(after its ReLU, as RepDistiller returns it) and each stage's last residual sum before its ReLU;
``features`` is ``[stem, layer1_pre, layer2_pre, layer3_pre, embedding]``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..build import BACKBONE_REGISTRY
from ..features import backbone_output, run_stage

_THIN = (16, 16, 32, 64)
_WIDE_X4 = (32, 64, 128, 256)


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, add the shortcut, ReLU.

    The shortcut is the identity, or ``downsample`` (1x1 conv + BN) when stride or width change.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor, preact: bool = False):
        """The block's output; with ``preact``, ``(output, the sum before the last ReLU)``."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        summed = out + shortcut
        out = F.relu(summed)
        return (out, summed) if preact else out


class CifarResNet(nn.Module):
    """Stem (3x3 conv-BN-ReLU), three stages of :class:`BasicBlock`, global pool, ``fc``."""

    input_size = 32

    def __init__(self, depth: int, widths: Sequence[int], num_classes: int = 100):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = _make_stage(widths[0], widths[1], n, stride=1)
        self.layer2 = _make_stage(widths[1], widths[2], n, stride=2)
        self.layer3 = _make_stage(widths[2], widths[3], n, stride=2)
        self.fc = nn.Linear(widths[3], num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        x = F.relu(self.bn1(self.conv1(x)))
        stages, preact_stages = [x], [x]
        for layer in (self.layer1, self.layer2, self.layer3):
            x, pre = run_stage(layer, x, preact)
            stages.append(x)
            preact_stages.append(pre)
        embedding = x.mean(dim=(2, 3))
        logits = self.fc(embedding)
        return backbone_output(logits, embedding, stages, preact_stages, features, preact)


def _make_stage(in_planes: int, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
    blocks = [BasicBlock(in_planes, planes, stride)]
    blocks += [BasicBlock(planes, planes) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


@BACKBONE_REGISTRY.register()
def resnet8(num_classes: int = 100) -> CifarResNet:
    """ResNet-8: 1 block per stage, 64-d embedding."""
    return CifarResNet(8, _THIN, num_classes)


@BACKBONE_REGISTRY.register()
def resnet14(num_classes: int = 100) -> CifarResNet:
    """ResNet-14: 2 blocks per stage, 64-d embedding."""
    return CifarResNet(14, _THIN, num_classes)


@BACKBONE_REGISTRY.register()
def resnet20(num_classes: int = 100) -> CifarResNet:
    """ResNet-20: 3 blocks per stage, 64-d embedding."""
    return CifarResNet(20, _THIN, num_classes)


@BACKBONE_REGISTRY.register()
def resnet32(num_classes: int = 100) -> CifarResNet:
    """ResNet-32: 5 blocks per stage, 64-d embedding."""
    return CifarResNet(32, _THIN, num_classes)


@BACKBONE_REGISTRY.register()
def resnet44(num_classes: int = 100) -> CifarResNet:
    """ResNet-44: 7 blocks per stage, 64-d embedding."""
    return CifarResNet(44, _THIN, num_classes)


@BACKBONE_REGISTRY.register()
def resnet56(num_classes: int = 100) -> CifarResNet:
    """ResNet-56: 9 blocks per stage, 64-d embedding."""
    return CifarResNet(56, _THIN, num_classes)


@BACKBONE_REGISTRY.register()
def resnet110(num_classes: int = 100) -> CifarResNet:
    """ResNet-110: 18 blocks per stage, 64-d embedding."""
    return CifarResNet(110, _THIN, num_classes)


@BACKBONE_REGISTRY.register()
def resnet8x4(num_classes: int = 100) -> CifarResNet:
    """ResNet-8 with 4x widths (32, 64, 128, 256): 256-d embedding."""
    return CifarResNet(8, _WIDE_X4, num_classes)


@BACKBONE_REGISTRY.register()
def resnet32x4(num_classes: int = 100) -> CifarResNet:
    """ResNet-32 with 4x widths (32, 64, 128, 256): 256-d embedding."""
    return CifarResNet(32, _WIDE_X4, num_classes)
