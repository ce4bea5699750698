"""What a configured distillation costs: parameters and FLOPs of the teacher and the student,
the distiller's extra modules, and the size of its memories.

Everything is built from the config alone, with random weights: the teacher's weight file need
not exist, since its size does not depend on its values. The numbers are returned as plain dicts,
ready for ``tabulate(rows, headers="keys")`` and for JSON.
"""

import warnings

import torch
from torch import nn

from kdzoo.config import CfgNode
from kdzoo.distillers import Distiller, build_distiller
from kdzoo.memory import Memory
from kdzoo.modeling import build_backbone

with warnings.catch_warnings():
    # fvcore scripts a helper with torch.jit.script at import, which torch >= 2.10 deprecates;
    # the warning is about fvcore's internals, not about anything the user can change.
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis

#: The training set the CRD/CoCoRD papers size their memories by: CIFAR-100's 50,000 images.
CIFAR100_TRAIN_SIZE = 50_000

_MIB = 2**20


def build_distiller_for_analysis(cfg: CfgNode, num_samples: int = CIFAR100_TRAIN_SIZE) -> Distiller:
    """The distiller ``cfg`` configures, around randomly initialised backbones.

    Its dataset-sized state (CRD's memory bank, say) is bound to ``num_samples`` fake labels
    spread evenly over ``cfg.MODEL.NUM_CLASSES`` classes, as ``Trainer`` would bind the real ones.
    """
    num_classes = cfg.MODEL.NUM_CLASSES
    student = build_backbone(cfg.MODEL.STUDENT.NAME, num_classes)
    # The method decides whether a teacher is needed; build_distiller says so if one is missing.
    teacher = None
    if cfg.MODEL.TEACHER.NAME:
        teacher = build_backbone(cfg.MODEL.TEACHER.NAME, num_classes)
    distiller = build_distiller(cfg, student, teacher)
    distiller.bind_dataset(torch.arange(num_samples) % num_classes)
    return distiller


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """``(all, trainable)`` parameter counts of ``module``."""
    params = list(module.parameters())
    return (
        sum(p.numel() for p in params),
        sum(p.numel() for p in params if p.requires_grad),
    )


@torch.no_grad()
def count_flops(model: nn.Module, input_size: int | None = None) -> int:
    """fvcore's FLOP count of one forward pass of a backbone on one image of its native size.

    fvcore counts a fused multiply-add as one FLOP (the convention of the papers' "FLOPs"
    columns); element-wise ops such as additions and pooling are not counted.
    """
    size = input_size or model.input_size
    param = next(model.parameters())
    image = torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()  # BatchNorm in train mode would count its batch statistics too
    try:
        analysis = FlopCountAnalysis(model, image)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total())
    finally:
        model.train(was_training)


def backbone_rows(cfg: CfgNode, distiller: Distiller) -> list[dict]:
    """One row per backbone (teacher, then student): name, parameters and FLOPs."""
    models = {
        "teacher": (cfg.MODEL.TEACHER.NAME, distiller.teacher),
        "student": (cfg.MODEL.STUDENT.NAME, distiller.student),
    }
    rows = []
    for role, (name, model) in models.items():
        if model is None:  # e.g. vanilla training has no teacher
            continue
        total, trainable = count_parameters(model)
        rows.append(
            {
                "model": role,
                "name": name,
                "params": total,
                "trainable": trainable,
                "input_size": model.input_size,
                "flops": count_flops(model),
            }
        )
    return rows


def extra_module_rows(distiller: Distiller) -> list[dict]:
    """One row per child module of the distiller other than its student and teacher: the heads,
    memories, moving-average copies and losses the method adds."""
    rows = []
    for name, module in distiller.named_children():
        if module is distiller.student or module is distiller.teacher:
            continue
        total, trainable = count_parameters(module)
        rows.append(
            {"module": name, "type": type(module).__name__, "params": total, "trainable": trainable}
        )
    return rows


def memory_rows(distiller: Distiller) -> list[dict]:
    """One row per buffer of each :class:`~kdzoo.memory.Memory` in the distiller."""
    rows = []
    for name, module in distiller.named_modules():
        if not isinstance(module, Memory):
            continue
        for buffer_name, buffer in module.named_buffers():
            size = buffer.numel() * buffer.element_size()
            rows.append(
                {
                    "memory": name,
                    "buffer": buffer_name,
                    "shape": list(buffer.shape),
                    "dtype": str(buffer.dtype).removeprefix("torch."),
                    "bytes": size,
                    "MiB": size / _MIB,
                }
            )
    return rows


def analyze(cfg: CfgNode, num_samples: int = CIFAR100_TRAIN_SIZE) -> dict[str, list[dict]]:
    """All of the above for the distiller ``cfg`` configures."""
    distiller = build_distiller_for_analysis(cfg, num_samples)
    return {
        "backbones": backbone_rows(cfg, distiller),
        "extra_modules": extra_module_rows(distiller),
        "memories": memory_rows(distiller),
    }
