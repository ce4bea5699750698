"""VGG with BatchNorm for CIFAR (Simonyan & Zisserman 2015) with RepDistiller's module names.

Five conv blocks (``block0`` ... ``block4``) separated by 2x2 max-pools, then a global average pool
and a single linear ``classifier`` (no VGG-style fully connected stack). ``vgg8`` is RepDistiller's
own one-conv-per-block variant.

For a ``[B, 3, 32, 32]`` input, ``stages`` are ``[B, 64, 32, 32]``, ``[B, 128, 16, 16]``,
``[B, 256, 8, 8]``, ``[B, 512, 4, 4]`` and ``[B, 512, 4, 4]``: there is no pool between block3 and
block4 at 32x32. ``embedding`` is ``[B, 512]``.

With ``preact=True``, ``preact_stages`` are block0's output after its ReLU (RepDistiller returns
it so in both lists) and block1 ... block4 before their last ReLU (their last BN's output);
``features`` is ``[f0, f1_pre, f2_pre, f3_pre, f4_pre, embedding]``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..build import BACKBONE_REGISTRY
from ..features import backbone_output

_CONFIGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def _make_block(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """Conv3x3(bias)-BN-ReLU per width, *without* the last ReLU.

    RepDistiller applies that ReLU in ``forward`` (to also expose the pre-activation); leaving it
    out of the ``Sequential`` keeps the module indices (``block2.3``, ``block2.4`` ...) of its
    checkpoints.
    """
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        in_channels = width
    return nn.Sequential(*layers[:-1])


class CifarVGG(nn.Module):
    """Five :func:`_make_block` blocks, 2x2 max-pools between them, global pool, ``classifier``."""

    input_size = 32

    def __init__(self, config: Sequence[Sequence[int]], num_classes: int = 100):
        super().__init__()
        self.block0 = _make_block(3, config[0])
        self.block1 = _make_block(config[0][-1], config[1])
        self.block2 = _make_block(config[1][-1], config[2])
        self.block3 = _make_block(config[2][-1], config[3])
        self.block4 = _make_block(config[3][-1], config[4])
        self.classifier = nn.Linear(config[4][-1], num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        # RepDistiller pools after block3 only for 64x64 inputs (Tiny-ImageNet), so that block4
        # always works on 4x4 maps.
        pool_after_block3 = x.shape[-1] == 64
        blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)
        stages, preact_stages = [], []
        for i, block in enumerate(blocks):
            if i in (1, 2, 3) or (i == 4 and pool_after_block3):
                x = F.max_pool2d(x, 2)
            pre = block(x)
            x = F.relu(pre)
            stages.append(x)
            if preact:  # else ``pre`` is freed as soon as the ReLU has run
                preact_stages.append(x if i == 0 else pre)
        embedding = x.mean(dim=(2, 3))
        logits = self.classifier(embedding)
        return backbone_output(logits, embedding, stages, preact_stages, features, preact)


@BACKBONE_REGISTRY.register()
def vgg8(num_classes: int = 100) -> CifarVGG:
    """VGG-8 with BN: one conv per block."""
    return CifarVGG(_CONFIGS["vgg8"], num_classes)


@BACKBONE_REGISTRY.register()
def vgg11(num_classes: int = 100) -> CifarVGG:
    """VGG-11 (configuration A) with BN."""
    return CifarVGG(_CONFIGS["vgg11"], num_classes)


@BACKBONE_REGISTRY.register()
def vgg13(num_classes: int = 100) -> CifarVGG:
    """VGG-13 (configuration B) with BN."""
    return CifarVGG(_CONFIGS["vgg13"], num_classes)


@BACKBONE_REGISTRY.register()
def vgg16(num_classes: int = 100) -> CifarVGG:
    """VGG-16 (configuration D) with BN."""
    return CifarVGG(_CONFIGS["vgg16"], num_classes)


@BACKBONE_REGISTRY.register()
def vgg19(num_classes: int = 100) -> CifarVGG:
    """VGG-19 (configuration E) with BN."""
    return CifarVGG(_CONFIGS["vgg19"], num_classes)
