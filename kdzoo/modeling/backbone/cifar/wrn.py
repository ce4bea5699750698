"""Wide ResNets WRN-d-k (Zagoruyko & Komodakis 2016) with RepDistiller's module names.

Pre-activation blocks; three groups of ``n = (d - 4) / 6`` blocks with widths 16k, 32k, 64k after a
16-channel 3x3 stem. There is no dropout: RepDistiller's zoo trains every WRN with a drop rate of 0.

For a ``[B, 3, 32, 32]`` input, ``stages`` are the stem ``[B, 16, 32, 32]``, block1
``[B, 16k, 32, 32]``, block2 ``[B, 32k, 16, 16]`` and block3 ``[B, 64k, 8, 8]``; ``embedding`` is
``[B, 64k]``. As in RepDistiller the stages are the raw residual sums (a pre-activation network has
no ReLU at a block's end); only the embedding goes through the final BN-ReLU.

``preact=True`` follows RepDistiller's reading of "before the ReLU" for this family: a stage's
output passed through the BN that the next layer applies before its ReLU (``block2.layer.0.bn1``
for block1, ``block3.layer.0.bn1`` for block2, the final ``bn1`` for block3). The stem is the raw
conv output in both lists, and ``relu(preact)`` is what the next layer convolves, not the stage.
RepDistiller calls those BNs a second time after the forward pass, which in training mode updates
their running statistics twice per step; kdzoo keeps the BN outputs the forward pass computes
anyway (equal values, one update).
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..build import BACKBONE_REGISTRY
from ..features import backbone_output


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus a shortcut.

    When the width changes the shortcut is ``convShortcut`` (a 1x1 conv, no BN) applied to the
    *activated* input, so BN-ReLU is shared by both paths; otherwise it is the raw input.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, padding=1, bias=False)
        # camelCase kept: it is the key RepDistiller's checkpoints use.
        self.convShortcut = None
        if in_planes != out_planes:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor, input_bn: bool = False):
        """The block's output; with ``input_bn``, ``(output, bn1(x))``: the input's BN before
        its ReLU, which is what RepDistiller returns as the previous stage's preact feature."""
        normed = self.bn1(x)
        act = F.relu(normed)
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        out = shortcut + out
        return (out, normed) if input_bn else out


class WideStage(nn.Module):
    """``num_blocks`` blocks, the first changing width and stride (RepDistiller's NetworkBlock)."""

    def __init__(self, in_planes: int, out_planes: int, num_blocks: int, stride: int):
        super().__init__()
        blocks = [WideBasicBlock(in_planes, out_planes, stride)]
        blocks += [WideBasicBlock(out_planes, out_planes, 1) for _ in range(num_blocks - 1)]
        self.layer = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, input_bn: bool = False):
        """The stage's output; with ``input_bn``, ``(output, its first block's bn1(x))``."""
        if not input_bn:
            return self.layer(x)
        first, *rest = self.layer
        x, normed = first(x, input_bn=True)
        for block in rest:
            x = block(x)
        return x, normed


class WideResNet(nn.Module):
    """Stem conv, three :class:`WideStage`, final BN-ReLU (``bn1``), global pool, ``fc``."""

    input_size = 32

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.block1 = WideStage(widths[0], widths[1], n, stride=1)
        self.block2 = WideStage(widths[1], widths[2], n, stride=2)
        self.block3 = WideStage(widths[2], widths[3], n, stride=2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        x = self.conv1(x)
        stages, preact_stages = [x], [x]
        x = self.block1(x)
        stages.append(x)
        for block in (self.block2, self.block3):
            # The next stage normalises this stage's output: RepDistiller's preact of it.
            if preact:
                x, normed = block(x, input_bn=True)
                preact_stages.append(normed)
            else:
                x = block(x)
            stages.append(x)
        normed = self.bn1(x)
        if preact:
            preact_stages.append(normed)
        embedding = F.relu(normed).mean(dim=(2, 3))
        logits = self.fc(embedding)
        return backbone_output(logits, embedding, stages, preact_stages, features, preact)


@BACKBONE_REGISTRY.register()
def wrn_16_1(num_classes: int = 100) -> WideResNet:
    """WRN-16-1: 2 blocks per group, 64-d embedding."""
    return WideResNet(16, 1, num_classes)


@BACKBONE_REGISTRY.register()
def wrn_16_2(num_classes: int = 100) -> WideResNet:
    """WRN-16-2: 2 blocks per group, 128-d embedding."""
    return WideResNet(16, 2, num_classes)


@BACKBONE_REGISTRY.register()
def wrn_40_1(num_classes: int = 100) -> WideResNet:
    """WRN-40-1: 6 blocks per group, 64-d embedding."""
    return WideResNet(40, 1, num_classes)


@BACKBONE_REGISTRY.register()
def wrn_40_2(num_classes: int = 100) -> WideResNet:
    """WRN-40-2: 6 blocks per group, 128-d embedding."""
    return WideResNet(40, 2, num_classes)
