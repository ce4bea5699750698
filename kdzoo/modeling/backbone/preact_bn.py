"""The BatchNorm in front of each stage's last ReLU: what OFD's margins are computed from.

OFD (Heo et al., ICCV 2019) distils each stage of the teacher *before* its last ReLU and clips
the teacher's map from below at a per-channel margin, the expected value of the map's negative
responses. It reads that expectation off the BatchNorm whose output feeds the ReLU, taking the
BN's affine parameters as the mean and spread of a normal distribution (its outputs are
normalised, then scaled by ``weight`` and shifted by ``bias``).

:func:`bn_before_relu` returns those BatchNorm layers, one per entry of the backbone's
pre-activation stages after the stem: ``model(x, preact=True)["features"][1:-1]`` for every model
of the CIFAR zoo and ``[layer1, ..., layer4]`` for torchvision's ResNets. The modules are the ones
mdistiller's ``get_bn_before_relu()`` (commit a08d46f, ``mdistiller/models/cifar/*.py``)
returns, in its order:

* CIFAR ResNets: the last BN of each stage's last block (``layer{1,2,3}[-1].bn2``; ``bn3`` for
  the bottleneck ``ResNet50``, four stages). Its output is added to the shortcut before the ReLU,
  so the margin describes the residual branch alone, as in the reference;
* WRNs: the BN the *next* layer applies to a stage's output before its ReLU
  (``block2.layer[0].bn1``, ``block3.layer[0].bn1``, the final ``bn1``): the preact features of a
  pre-activation network are those BNs' outputs;
* VGGs: the last BN of ``block1`` ... ``block4`` (``block0``'s stage is distilled after its ReLU);
* MobileNetV2: the projecting BN of the last block of groups 1, 2, 4 and 6, the four stages
  (linear bottlenecks: no ReLU follows them, the reference takes them all the same);
* torchvision ResNets: the last BN of each layer's last block, layer1 included. mdistiller's
  ImageNet ResNet returns only layer2 ... layer4 (its layer1 line is commented out); the
  distiller keeps the last teacher stages it pairs, so with three student stages the margins are
  mdistiller's;
* ShuffleV1: mdistiller raises (``get_bn_before_relu`` is not implemented for ShuffleNets). Each
  stage ends with a stride-1 unit that adds ``bn3``'s output to its input before the ReLU, as a
  ResNet block adds ``bn2``'s, so kdzoo returns ``layer{1,2,3}[-1].bn3``;
* ShuffleV2: raises ``ValueError``, as mdistiller does: half of each stage's pre-activation map
  is the untouched split of the unit's input, which no BatchNorm describes.

A backbone outside the zoo can say it itself with a method ``bn_before_relu()`` returning the
list; that method is used first.
"""

from torch import nn

from .cifar.mobilenetv2 import _STAGE_GROUPS, CifarMobileNetV2
from .cifar.resnet import CifarResNet
from .cifar.resnet_bottleneck import CifarBottleneckResNet
from .cifar.shufflenetv1 import CifarShuffleNetV1
from .cifar.shufflenetv2 import CifarShuffleNetV2
from .cifar.vgg import CifarVGG
from .cifar.wrn import WideResNet
from .torchvision_resnet import TorchvisionResNet


def bn_before_relu(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The BatchNorm layer in front of the last ReLU of each stage of ``model``, one per entry
    of ``model(x, preact=True)["features"][1:-1]`` (stem and pooled vector excluded), in order.
    Entry ``i`` has as many channels as that stage's map ``[B, C_i, H_i, W_i]``.

    Raises ``ValueError`` for a backbone without one (ShuffleV2, or an unknown family without a
    ``bn_before_relu()`` method of its own).
    """
    own = getattr(model, "bn_before_relu", None)
    if callable(own):
        return list(own())
    if isinstance(model, CifarResNet):
        return [stage[-1].bn2 for stage in (model.layer1, model.layer2, model.layer3)]
    if isinstance(model, CifarBottleneckResNet):
        return [stage[-1].bn3 for stage in (model.layer1, model.layer2, model.layer3, model.layer4)]
    if isinstance(model, WideResNet):
        return [model.block2.layer[0].bn1, model.block3.layer[0].bn1, model.bn1]
    if isinstance(model, CifarVGG):
        return [block[-1] for block in (model.block1, model.block2, model.block3, model.block4)]
    if isinstance(model, CifarMobileNetV2):
        return [model.blocks[g][-1].conv[-1] for g in _STAGE_GROUPS]
    if isinstance(model, CifarShuffleNetV1):
        return [stage[-1].bn3 for stage in (model.layer1, model.layer2, model.layer3)]
    if isinstance(model, TorchvisionResNet):
        last = "bn3" if hasattr(model.layer1[-1], "bn3") else "bn2"
        layers = (model.layer1, model.layer2, model.layer3, model.layer4)
        return [getattr(layer[-1], last) for layer in layers]
    if isinstance(model, CifarShuffleNetV2):
        raise ValueError(
            "ShuffleV2 has no BatchNorm before its stages' last ReLU: half of each stage's "
            "pre-activation map is the untouched split of the unit's input (mdistiller's "
            "get_bn_before_relu raises for it too)"
        )
    raise ValueError(
        f"no BatchNorm-before-ReLU list is known for {type(model).__name__}; give the backbone "
        "a bn_before_relu() method returning one BatchNorm2d per pre-activation stage"
    )
