"""RepDistiller's CIFAR ShuffleNet V2 (``ShuffleV2``, net size 1x) with its module names.

ShuffleNet V2 (Ma et al. 2018) adapted to 32x32: a 1x1 stem with 24 channels (no stride-2 conv, no
max-pool), three stages of one :class:`DownBlock` plus (3, 7, 3) :class:`ShuffleV2Block` with 116,
232, 464 channels, and a 1x1 conv to 1024 channels before the pool.

For a ``[B, 3, 32, 32]`` input, ``stages`` are the stem ``[B, 24, 32, 32]``, layer1
``[B, 116, 16, 16]``, layer2 ``[B, 232, 8, 8]`` and layer3 ``[B, 464, 4, 4]``; ``embedding`` is the
pooled head conv, ``[B, 1024]``. Weights keep PyTorch's default initialisation, as in RepDistiller.

With ``preact=True``, ``preact_stages`` are the stem (after its ReLU, as RepDistiller returns it)
and, per stage, its last unit's halves concatenated *before* the channel shuffle, the transformed
half before its ReLU: RepDistiller's preact skips the shuffle, so ``channel_shuffle(relu(pre), 2)``
(not ``relu(pre)``) is the stage. ``features`` is ``[stem, layer1_pre, layer2_pre, layer3_pre,
embedding]``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..build import BACKBONE_REGISTRY
from ..features import backbone_output, run_stage
from .shufflenetv1 import channel_shuffle


def _dw_conv3x3(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels, bias=False)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class ShuffleV2Block(nn.Module):
    """Stride-1 unit: split the channels in halves, transform the second, concat, shuffle.

    The branch is 1x1-BN-ReLU, 3x3 depthwise-BN, 1x1-BN-ReLU on ``channels // 2`` channels.
    """

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1 = _conv1x1(half, half)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = _dw_conv3x3(half, 1)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = _conv1x1(half, half)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x: torch.Tensor, preact: bool = False):
        """The unit's output; with ``preact``, ``(output, [kept, branch before its last ReLU])``
        (not shuffled, as RepDistiller returns it)."""
        kept, x2 = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        branch = self.bn3(self.conv3(out))
        out = channel_shuffle(torch.cat([kept, F.relu(branch)], dim=1), 2)
        return (out, torch.cat([kept, branch], dim=1)) if preact else out


class DownBlock(nn.Module):
    """Stride-2 unit: two branches on the whole input, ``out_channels // 2`` each; concat, shuffle.

    Left: 3x3 depthwise (stride 2)-BN, 1x1-BN-ReLU (``conv1``, ``conv2``). Right: 1x1-BN-ReLU,
    3x3 depthwise (stride 2)-BN, 1x1-BN-ReLU (``conv3`` ... ``conv5``).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.conv1 = _dw_conv3x3(in_channels, 2)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = _conv1x1(in_channels, mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = _conv1x1(in_channels, mid)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = _dw_conv3x3(mid, 2)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = _conv1x1(mid, mid)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], dim=1), 2)


class CifarShuffleNetV2(nn.Module):
    """1x1 stem, three stages (:class:`DownBlock`, then :class:`ShuffleV2Block`), 1x1 head, pool."""

    input_size = 32

    def __init__(
        self,
        out_channels: Sequence[int] = (116, 232, 464, 1024),
        num_blocks: Sequence[int] = (3, 7, 3),
        num_classes: int = 100,
    ):
        super().__init__()
        in_channels = 24
        self.conv1 = nn.Conv2d(3, in_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        stages = []
        for channels, blocks in zip(out_channels[:3], num_blocks, strict=True):
            units = [DownBlock(in_channels, channels)]
            units += [ShuffleV2Block(channels) for _ in range(blocks)]
            stages.append(nn.Sequential(*units))
            in_channels = channels
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = nn.Conv2d(in_channels, out_channels[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.linear = nn.Linear(out_channels[3], num_classes)

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        x = F.relu(self.bn1(self.conv1(x)))
        stages, preact_stages = [x], [x]
        for layer in (self.layer1, self.layer2, self.layer3):
            x, pre = run_stage(layer, x, preact)
            stages.append(x)
            preact_stages.append(pre)
        embedding = F.relu(self.bn2(self.conv2(x))).mean(dim=(2, 3))
        logits = self.linear(embedding)
        return backbone_output(logits, embedding, stages, preact_stages, features, preact)


@BACKBONE_REGISTRY.register()
def ShuffleV2(num_classes: int = 100) -> CifarShuffleNetV2:
    """ShuffleNet V2 1x (116, 232, 464 channels, 1024-channel head), 1024-d embedding."""
    return CifarShuffleNetV2(num_classes=num_classes)
