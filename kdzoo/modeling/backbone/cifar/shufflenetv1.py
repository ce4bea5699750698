"""RepDistiller's CIFAR ShuffleNet V1 (``ShuffleV1``, groups 3) with its module names.

ShuffleNet (Zhang et al. 2018) adapted to 32x32: the stem is a single 1x1 conv with 24 channels
(no 3x3 stride-2 conv, no max-pool), then three stages of (4, 8, 4) units with 240, 480, 960
channels, each starting with a stride-2 unit.

Two details RepDistiller's checkpoints depend on:

* the first 1x1 conv of the network's first unit is not grouped (24 input channels are too few to
  split, as in the paper), and its channel shuffle is therefore a no-op; its last 1x1 conv still is;
* a stride-2 unit concatenates its branch with a 3x3 average-pooled input, so the branch only
  produces ``out - in`` channels and its bottleneck width is ``(out - in) // 4`` (54 in the first
  unit, not 60).

For a ``[B, 3, 32, 32]`` input, ``stages`` are the stem ``[B, 24, 32, 32]``, layer1
``[B, 240, 16, 16]``, layer2 ``[B, 480, 8, 8]`` and layer3 ``[B, 960, 4, 4]``; ``embedding`` is
``[B, 960]``. Weights keep PyTorch's default initialisation, as in RepDistiller.

With ``preact=True``, ``preact_stages`` are the stem (after its ReLU, as RepDistiller returns it)
and each stage's last unit before its final ReLU (the residual sum); ``features`` is ``[stem,
layer1_pre, layer2_pre, layer3_pre, embedding]``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..build import BACKBONE_REGISTRY
from ..features import backbone_output, run_stage


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups; ``[B, C, H, W]`` in and out."""
    b, channels, h, w = x.shape
    x = x.view(b, groups, channels // groups, h, w).transpose(1, 2)
    return x.reshape(b, channels, h, w)


class ShuffleUnit(nn.Module):
    """Grouped 1x1-BN-ReLU, channel shuffle, 3x3 depthwise-BN-ReLU, grouped 1x1-BN; merge; ReLU.

    Stride 1: the branch (``out_planes`` channels) is added to the input. Stride 2: the branch is
    concatenated with a 3x3 average pool of the input, so pass ``out_planes`` = output width minus
    input width.
    """

    def __init__(
        self, in_planes: int, out_planes: int, stride: int, groups: int, group_first_conv: bool
    ):
        super().__init__()
        self.stride = stride
        mid_planes = out_planes // 4
        self.first_groups = groups if group_first_conv else 1
        self.conv1 = nn.Conv2d(in_planes, mid_planes, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.conv2 = nn.Conv2d(
            mid_planes, mid_planes, 3, stride, padding=1, groups=mid_planes, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)

    def forward(self, x: torch.Tensor, preact: bool = False):
        """The unit's output; with ``preact``, ``(output, the merge before the last ReLU)``."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        # Unlike the paper, RepDistiller's unit has a ReLU after the depthwise conv as well.
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            merged = torch.cat([out, F.avg_pool2d(x, 3, stride=2, padding=1)], dim=1)
        else:
            merged = out + x
        out = F.relu(merged)
        return (out, merged) if preact else out


class CifarShuffleNetV1(nn.Module):
    """1x1 stem, three stages of :class:`ShuffleUnit`, global pool, ``linear``."""

    input_size = 32

    def __init__(
        self,
        out_planes: Sequence[int] = (240, 480, 960),
        num_blocks: Sequence[int] = (4, 8, 4),
        groups: int = 3,
        num_classes: int = 100,
    ):
        super().__init__()
        in_planes = 24
        self.conv1 = nn.Conv2d(3, in_planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        stages = []
        for s, (planes, blocks) in enumerate(zip(out_planes, num_blocks, strict=True)):
            units = [ShuffleUnit(in_planes, planes - in_planes, 2, groups, group_first_conv=s > 0)]
            units += [ShuffleUnit(planes, planes, 1, groups, True) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*units))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        x = F.relu(self.bn1(self.conv1(x)))
        stages, preact_stages = [x], [x]
        for layer in (self.layer1, self.layer2, self.layer3):
            x, pre = run_stage(layer, x, preact)
            stages.append(x)
            preact_stages.append(pre)
        embedding = x.mean(dim=(2, 3))
        logits = self.linear(embedding)
        return backbone_output(logits, embedding, stages, preact_stages, features, preact)


@BACKBONE_REGISTRY.register()
def ShuffleV1(num_classes: int = 100) -> CifarShuffleNetV1:
    """ShuffleNet V1 with 3 groups (240, 480, 960 channels), 960-d embedding."""
    return CifarShuffleNetV1(num_classes=num_classes)
