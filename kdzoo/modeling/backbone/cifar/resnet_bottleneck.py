"""RepDistiller's CIFAR ``ResNet50``: ImageNet ResNet-50's bottleneck stages on a CIFAR stem.

The stem is a single 3x3 stride-1 conv (no 7x7 conv, no max-pool), so layer1 runs at full 32x32
resolution; stages are (3, 4, 6, 3) bottlenecks of expansion 4. Module names follow RepDistiller
(``shortcut``, ``linear``), not torchvision (``downsample``, ``fc``).

For a ``[B, 3, 32, 32]`` input, ``stages`` are the stem ``[B, 64, 32, 32]``, layer1
``[B, 256, 32, 32]``, layer2 ``[B, 512, 16, 16]``, layer3 ``[B, 1024, 8, 8]`` and layer4
``[B, 2048, 4, 4]``; ``embedding`` is ``[B, 2048]``.

With ``preact=True``, ``preact_stages`` are the stem (after its ReLU, as RepDistiller returns it)
and each stage's last residual sum before its ReLU; ``features`` is ``[stem, layer1_pre, ...,
layer4_pre, embedding]``, RepDistiller's six.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..build import BACKBONE_REGISTRY
from ..features import backbone_output, run_stage


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand to ``4 * planes``; BN after each conv.

    The shortcut is the identity, or ``shortcut`` (1x1 conv + BN) when stride or width change.
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = None
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward(self, x: torch.Tensor, preact: bool = False):
        """The block's output; with ``preact``, ``(output, the sum before the last ReLU)``."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        summed = out + shortcut
        out = F.relu(summed)
        return (out, summed) if preact else out


class CifarBottleneckResNet(nn.Module):
    """3x3 stem, four stages of :class:`Bottleneck` (64, 128, 256, 512 planes), pool, ``linear``."""

    input_size = 32

    def __init__(self, num_blocks: Sequence[int], num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        stages = []
        plan = zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2), strict=True)
        for planes, blocks, stride in plan:
            layers = [Bottleneck(in_planes, planes, stride)]
            in_planes = planes * Bottleneck.expansion
            layers += [Bottleneck(in_planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(in_planes, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        x = F.relu(self.bn1(self.conv1(x)))
        stages, preact_stages = [x], [x]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x, pre = run_stage(layer, x, preact)
            stages.append(x)
            preact_stages.append(pre)
        embedding = x.mean(dim=(2, 3))
        logits = self.linear(embedding)
        return backbone_output(logits, embedding, stages, preact_stages, features, preact)


@BACKBONE_REGISTRY.register()
def ResNet50(num_classes: int = 100) -> CifarBottleneckResNet:
    """CIFAR ResNet-50: (3, 4, 6, 3) bottlenecks on a 3x3 stem, 2048-d embedding."""
    return CifarBottleneckResNet((3, 4, 6, 3), num_classes)
