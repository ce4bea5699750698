"""RepDistiller's CIFAR MobileNetV2 (``mobile_half``) with its module names.

MobileNetV2 (Sandler et al. 2018) with expansion 6 and width multiplier 0.5, changed for 32x32
inputs: the second bottleneck group (24 channels) has stride 1 instead of 2, so the network
downsamples 16x overall. Three quirks of RepDistiller are kept because its checkpoints depend on
them:

* widths are scaled with ``int(c * width_mult)`` (no rounding to multiples of 8), giving odd widths
  such as 12 and 48;
* every inverted residual keeps its 1x1 expansion conv, also with expansion 1 (the first block);
* the 1280-channel head conv is not narrowed for width multipliers <= 1.

ReLU (not ReLU6) is used throughout, as in RepDistiller.

For a ``[B, 3, 32, 32]`` input, ``stages`` are the stem ``[B, 16, 16, 16]`` and the outputs of the
last group at each resolution: ``[B, 12, 16, 16]``, ``[B, 16, 8, 8]``, ``[B, 48, 4, 4]``,
``[B, 160, 2, 2]``; ``embedding`` is ``[B, 1280]``.

RepDistiller's MobileNetV2 ignores ``preact``: both its lists are the stages above (the stem after
its ReLU, the groups' linear-bottleneck outputs, which have no ReLU) and the embedding. So are
kdzoo's: ``preact_stages`` are the ``stages`` tensors themselves.
"""

import torch
from torch import nn

from ..build import BACKBONE_REGISTRY
from ..features import backbone_output

# (channels, blocks, stride) per group, before the width multiplier. The first group does not
# expand (expansion 1); the others use the model's expansion.
_GROUPS = (
    (16, 1, 1),
    (24, 2, 1),
    (32, 3, 2),
    (64, 4, 2),
    (96, 3, 1),
    (160, 3, 2),
    (320, 1, 1),
)
# Indices of the groups whose outputs are returned as stages (the last group at each resolution).
_STAGE_GROUPS = (1, 2, 4, 6)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand-BN-ReLU, 3x3 depthwise-BN-ReLU, 1x1 project-BN (linear bottleneck).

    The input is added back when the block keeps stride 1 and the width.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class CifarMobileNetV2(nn.Module):
    """Stem (3x3, stride 2), seven groups of :class:`InvertedResidual`, 1x1 head, pool, linear."""

    input_size = 32

    def __init__(self, expansion: int = 6, width_mult: float = 0.5, num_classes: int = 100):
        super().__init__()
        in_channels = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(3, in_channels, 3, stride=2)
        self.blocks = nn.ModuleList()
        for g, (channels, num_blocks, first_stride) in enumerate(_GROUPS):
            out_channels = int(channels * width_mult)
            t = 1 if g == 0 else expansion
            layers = []
            for i in range(num_blocks):
                stride = first_stride if i == 0 else 1
                layers.append(InvertedResidual(in_channels, out_channels, stride, t))
                in_channels = out_channels
            self.blocks.append(nn.Sequential(*layers))
        head_channels = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = _conv_bn_relu(in_channels, head_channels, 1, stride=1)
        # A one-layer Sequential because RepDistiller's key is ``classifier.0``.
        self.classifier = nn.Sequential(nn.Linear(head_channels, num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        x = self.conv1(x)
        stages = [x]
        for i, group in enumerate(self.blocks):
            x = group(x)
            if i in _STAGE_GROUPS:
                stages.append(x)
        embedding = self.conv2(x).mean(dim=(2, 3))
        logits = self.classifier(embedding)
        return backbone_output(logits, embedding, stages, list(stages), features, preact)


@BACKBONE_REGISTRY.register()
def MobileNetV2(num_classes: int = 100) -> CifarMobileNetV2:
    """RepDistiller's ``mobile_half``: expansion 6, width 0.5, 1280-d embedding."""
    return CifarMobileNetV2(expansion=6, width_mult=0.5, num_classes=num_classes)
