"""What a configured distillation costs: parameters and FLOPs of the teacher and the student,
the distiller's extra modules, and the size of its memories.

Everything is built from the config alone by :func:`kdzoo.distillers.build_distiller` with
``load_weights=False``: random weights, no weight file read (sizes do not depend on values), and
dataset-sized state bound to fake labels. The numbers are returned as plain dicts, ready for
``tabulate(rows, headers="keys")`` and for JSON.
"""

import warnings

import torch
from torch import nn

from kdzoo.config import CfgNode
from kdzoo.distillers import Distiller, build_distiller
from kdzoo.memory import Memory

with warnings.catch_warnings():
    # fvcore scripts a helper with torch.jit.script at import, which torch >= 2.10 deprecates;
    # the warning is about fvcore's internals, not about anything the user can change.
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis

#: The training set the CRD/CoCoRD papers size their memories by: CIFAR-100's 50,000 images.
CIFAR100_TRAIN_SIZE = 50_000

_MIB = 2**20


def fake_train_labels(cfg: CfgNode, num_samples: int = CIFAR100_TRAIN_SIZE) -> torch.Tensor:
    """``num_samples`` labels spread evenly over ``cfg.MODEL.NUM_CLASSES`` classes: all that
    dataset-sized state (CRD's memory bank, say) needs to be sized as for a real training set."""
    return torch.arange(num_samples) % cfg.MODEL.NUM_CLASSES


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
    distiller = build_distiller(cfg, fake_train_labels(cfg, num_samples), load_weights=False)
    return {
        "backbones": backbone_rows(cfg, distiller),
        "extra_modules": extra_module_rows(distiller),
        "memories": memory_rows(distiller),
    }
