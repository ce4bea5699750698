"""Registries: names, clear errors for unknown names, and user code registering its own models."""

import logging

import pytest
import torch
from torch import nn

from kdzoo.config import get_cfg
from kdzoo.data import DATASET_REGISTRY
from kdzoo.distillers import DISTILLER_REGISTRY, build_distiller, build_student
from kdzoo.losses import LOSS_REGISTRY, build_loss
from kdzoo.memory import MEMORY_REGISTRY, build_memory
from kdzoo.modeling import (
    BACKBONE_REGISTRY,
    build_backbone,
    probe_backbone,
    registered_input_size,
)
from kdzoo.utils.errors import KdzooError, RegistryError
from kdzoo.utils.registry import lookup

TORCHVISION_RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def test_registries_list_the_builtins():
    names = {n for n, _ in BACKBONE_REGISTRY}
    assert set(TORCHVISION_RESNETS) <= names
    assert {"vanilla", "kd"} <= {n for n, _ in DISTILLER_REGISTRY}
    assert "kd_kl" in {n for n, _ in LOSS_REGISTRY}


@pytest.mark.reliability
@pytest.mark.parametrize(
    "build",
    [
        lambda: build_backbone("resnet9000"),
        lambda: build_loss("nope"),
        lambda: build_memory("nope"),
    ],
)
def test_unknown_names_list_the_registered_ones(build):
    with pytest.raises(RegistryError) as info:
        build()
    message = str(info.value)
    assert "registered names are:" in message and "\n" not in message
    assert isinstance(info.value, KdzooError)


@pytest.mark.reliability
def test_unknown_backbone_lists_known_names():
    with pytest.raises(RegistryError, match=r"Unknown backbone 'resnet9000'.*resnet110.*wrn_40_2"):
        build_backbone("resnet9000")


@pytest.mark.reliability
def test_unknown_names_suggest_the_closest_registered_ones():
    with pytest.raises(RegistryError) as info:
        build_backbone("resnet5")
    message = str(info.value)
    assert message.startswith("Unknown backbone 'resnet5'; registered names are: MobileNetV2, ")
    assert message.endswith(", wrn_40_2; did you mean resnet56, ResNet50, resnet50?")
    with pytest.raises(RegistryError) as info:
        build_memory("queu")
    assert str(info.value) == (
        "Unknown memory 'queu'; registered names are: key_queue, momentum_bank; "
        "did you mean key_queue?"
    )
    with pytest.raises(RegistryError) as info:
        build_memory("bank")  # no registered name is close: the list alone
    assert (
        str(info.value) == "Unknown memory 'bank'; registered names are: key_queue, momentum_bank"
    )
    for registry, typo, meant in [
        (DISTILLER_REGISTRY, "crdd", "crd"),
        (DATASET_REGISTRY, "cifar10", "cifar100"),
        (LOSS_REGISTRY, "kd_kll", "kd_kl"),
    ]:
        with pytest.raises(RegistryError, match=rf"; did you mean {meant}\b[^;]*\?$"):
            lookup(registry, typo)


def test_input_sizes_are_read_without_building():
    builtins = [name for name, obj in BACKBONE_REGISTRY if obj.__module__.startswith("kdzoo.")]
    sizes = {name: registered_input_size(name) for name in builtins}
    assert sizes == {name: 224 if name in TORCHVISION_RESNETS else 32 for name in builtins}
    assert build_backbone("ResNet50").input_size == 32  # what the registry said, built


@pytest.fixture
def kdzoo_warnings(caplog):
    """Warnings of kdzoo's loggers (setup_logger stops them at ``kdzoo``, before caplog's)."""
    logger = logging.getLogger("kdzoo")
    propagate, logger.propagate = logger.propagate, True
    caplog.set_level(logging.WARNING, logger="kdzoo")
    yield lambda: [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    logger.propagate = propagate


def test_a_backbone_made_for_other_images_warns_and_is_built(kdzoo_warnings):
    cfg = get_cfg()  # CIFAR: INPUT.SIZE 32
    cfg.MODEL.STUDENT.NAME = "resnet50"  # torchvision's ImageNet model, not the CIFAR ResNet50
    student = build_student(cfg)
    assert student.input_size == 224  # the run goes on with what was asked for
    assert kdzoo_warnings() == [
        "resnet50 expects 224x224 images but INPUT.SIZE is 32; for 32x32 images see ResNet50"
    ]


def test_the_teacher_is_checked_too_and_fitting_backbones_are_not(kdzoo_warnings):
    cfg = get_cfg()
    cfg.DISTILLER.NAME = "kd"
    cfg.MODEL.TEACHER.NAME, cfg.MODEL.STUDENT.NAME = "resnet32x4", "resnet8x4"
    build_distiller(cfg, torch.arange(10), load_weights=False)
    assert kdzoo_warnings() == []
    cfg.INPUT.SIZE = 224
    cfg.MODEL.STUDENT.NAME = "resnet18"  # fits 224; the CIFAR teacher does not
    build_distiller(cfg, torch.arange(10), load_weights=False)
    assert kdzoo_warnings() == [
        "resnet32x4 expects 32x32 images but INPUT.SIZE is 224; "
        "for 224x224 images see resnet34, resnet152, resnet50"
    ]


@pytest.mark.parametrize("name", TORCHVISION_RESNETS)
def test_torchvision_resnets_follow_the_output_contract(name):
    from torchvision.models import get_model

    model = build_backbone(name, num_classes=10).eval()
    reference = get_model(name, num_classes=10)
    assert list(model.state_dict()) == list(reference.state_dict())  # torchvision's keys
    with torch.no_grad():
        out = model(torch.randn(1, 3, model.input_size, model.input_size))
    width = 512 if name in ("resnet18", "resnet34") else 2048
    assert out["logits"].shape == (1, 10) and out["embedding"].shape == (1, width)
    assert [s.shape[1] for s in out["stages"]] == [width // 8, width // 4, width // 2, width]
    assert [s.shape[-1] for s in out["stages"]] == [56, 28, 14, 7]
    assert torch.allclose(out["logits"], model.fc(out["embedding"]))
    if name == "resnet18":  # same weights give torchvision's logits
        reference.load_state_dict(model.state_dict())
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(model(x)["logits"], reference.eval()(x), atol=1e-5)


class TinyNet(nn.Module):
    """A user's own backbone: one conv, global pooling, a classifier."""

    input_size = 16

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> dict:
        stage = torch.relu(self.conv(x))
        embedding = stage.mean(dim=(2, 3))
        return {"logits": self.fc(embedding), "embedding": embedding, "stages": [stage]}


@pytest.fixture
def tiny_net_registered():
    BACKBONE_REGISTRY.register(TinyNet)
    yield "TinyNet"
    BACKBONE_REGISTRY._obj_map.pop("TinyNet")


def test_user_backbone_is_built_from_a_config(tiny_net_registered, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("MODEL:\n  NUM_CLASSES: 7\n  STUDENT:\n    NAME: TinyNet\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    distiller = build_distiller(cfg, train_labels=torch.arange(14) % 7)  # vanilla: no teacher
    student, teacher = distiller.student, distiller.teacher
    assert isinstance(student, TinyNet) and teacher is None
    assert student.fc.out_features == 7
    dims = probe_backbone(student)
    assert dims.embedding == 8 and dims.stages == ((8, 16, 16),)


def test_user_memory_is_built_by_name():
    from kdzoo.memory import Memory

    @MEMORY_REGISTRY.register("test_last_keys")
    class LastKeys(Memory):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.register_buffer("keys", torch.zeros(0, dim))

        def write(self, keys, index):
            self.keys = keys.clone()

    try:
        memory = build_memory("test_last_keys", dim=3)
        memory.push(torch.ones(2, 3))
        assert memory.keys.shape == (0, 3)  # staged, not yet written
        memory.commit()
        assert torch.equal(memory.keys, torch.ones(2, 3))
        assert "keys" in memory.state_dict()
    finally:
        MEMORY_REGISTRY._obj_map.pop("test_last_keys")
