"""RepDistiller's CIFAR-100 model zoo (the models of CRD, Tian et al. 2020), one family per module.

Module names match RepDistiller's exactly, so its ``{'model': state_dict}`` checkpoints load with
``strict=True``. Importing this package registers the 22 models in ``BACKBONE_REGISTRY`` under
RepDistiller's names: ``resnet8`` ... ``resnet110``, ``resnet8x4``, ``resnet32x4``, ``ResNet50``,
``wrn_16_1``, ``wrn_16_2``, ``wrn_40_1``, ``wrn_40_2``, ``vgg8`` ... ``vgg19``, ``MobileNetV2``,
``ShuffleV1`` and ``ShuffleV2``.

``stages`` are the feature maps RepDistiller returns with ``is_feat=True`` (without the final pooled
vector, which is ``embedding``); ``model(x, features=True)["features"]`` is that whole list and
``model(x, preact=True)["features"]`` the ``is_feat=True, preact=True`` one, for all 22 (each
model file says what its family's preact features are). Every model pools globally;
RepDistiller's fixed-size pools (8x8, 4x4, ...) cover the whole map at its native 32x32 input, so
the outputs are the same there.
"""

from . import (  # noqa: F401  (registers the models)
    mobilenetv2,
    resnet,
    resnet_bottleneck,
    shufflenetv1,
    shufflenetv2,
    vgg,
    wrn,
)
