"""ImageNet ResNets from torchvision: torchvision's state_dict keys, kdzoo's output contract.

Registered as ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` and ``resnet152`` (lower case;
``ResNet50`` with capitals is RepDistiller's CIFAR variant). ``weights`` takes a torchvision weight
name such as ``"IMAGENET1K_V1"`` or ``"DEFAULT"``; those are downloaded by torchvision, so they need
internet the first time.

``stages`` are layer1 ... layer4. RepDistiller has no ImageNet model, so the feature list follows
its CIFAR ResNets and mdistiller's ImageNet ResNet (``feats``/``preact_feats``): ``features`` is
``[stem, layer1, ..., layer4, embedding]``, the stem being conv1-BN-ReLU before the max-pool
(``[B, 64, H/2, W/2]``, after its ReLU in both lists, as RepDistiller's CIFAR stems);
``preact=True`` puts each layer's last residual sum before its ReLU in place of the layer (also
``preact_stages``). ``features[1:-1]``, what AT, VID, AB ... distil, are then the four layers.
"""

import torch
from torchvision.models import get_model_weights
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from .build import BACKBONE_REGISTRY
from .features import backbone_output

_ARCHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}


class TorchvisionResNet(ResNet):
    """torchvision's ResNet (same modules and keys) whose forward returns the kdzoo contract."""

    input_size = 224

    def forward(self, x: torch.Tensor, features: bool = False, preact: bool = False) -> dict:
        x = self.relu(self.bn1(self.conv1(x)))
        stem = x if features or preact else None  # else freed after the max-pool, as before
        x = self.maxpool(x)
        stages, preact_stages = [], []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            if preact:
                *body, last = layer
                for block in body:
                    x = block(x)
                pre = _residual_sum(last, x)
                x = torch.relu(pre)
                preact_stages.append(pre)
            else:
                x = layer(x)
            stages.append(x)
        embedding = torch.flatten(self.avgpool(x), 1)
        logits = self.fc(embedding)
        return backbone_output(logits, embedding, stages, preact_stages, features, preact, stem)


def _residual_sum(block: BasicBlock | Bottleneck, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``block(x)`` before its last ReLU (which torchvision applies in place)."""
    out = block.relu(block.bn1(block.conv1(x)))
    if isinstance(block, Bottleneck):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = block.bn2(block.conv2(out))
    identity = x if block.downsample is None else block.downsample(x)
    return out + identity


def _build(arch: str, num_classes: int, weights: str | None) -> TorchvisionResNet:
    block, layers = _ARCHS[arch]
    model = TorchvisionResNet(block, layers, num_classes=num_classes)
    if weights:
        enum = get_model_weights(arch)
        state = enum[weights].get_state_dict(progress=True)
        if num_classes != state["fc.weight"].shape[0]:
            # Keep the pretrained trunk; the classifier of another label space starts fresh.
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            model.load_state_dict(state, strict=False)
        else:
            model.load_state_dict(state)
    return model


def _register(arch: str) -> None:
    # Annotated with the class: registered_input_size reads its input_size without building one.
    def constructor(num_classes: int = 1000, weights: str | None = None) -> TorchvisionResNet:
        return _build(arch, num_classes, weights)

    constructor.__name__ = arch
    constructor.__doc__ = f"torchvision {arch} with the kdzoo output contract."
    BACKBONE_REGISTRY.register(arch)(constructor)


for _arch in _ARCHS:
    _register(_arch)
