"""Export of a torchvision-style ResNet-50 as a Detectron2 R50-C4 backbone (write-only).

Detectron2 names the same tensors differently: ``conv1``/``bn1`` become ``stem.conv1``/
``stem.conv1.norm``, ``layer1..4`` become ``res2..5``, ``bnK`` becomes ``convK.norm`` and
``downsample.0/1`` become ``shortcut``/``shortcut.norm``; ``fc`` has no counterpart. Detectron2
itself places ``res5`` in the ROI head (``roi_heads.res5.*``) and finds it by suffix because the
file says ``matching_heuristics``.

The layout an export must match is derived here from torchvision's ``resnet50`` (265 tensors),
and a state that does not match it exactly is refused: Detectron2 would otherwise load it
partially, or fill missing BN statistics with 0/1, without failing. kdzoo writes this pickle but
never reads one back, since unpickling runs arbitrary code.
"""

import functools
import os
import pickle
import re

import numpy as np
import torch

from kdzoo.utils.errors import CheckpointError
from kdzoo.utils.file_io import atomic_write

from .weights import check_layout, listed

AUTHOR = "kdzoo"
# The settings that make Detectron2 read torchvision-style weights as they were trained: RGB input
# in [0, 255], torchvision's normalisation scaled by 255, and the stride in the 3x3 convolution.
PIXEL_MEAN = (123.675, 116.280, 103.530)
PIXEL_STD = (58.395, 57.120, 57.375)
_CONV_NAME = re.compile(r"^(stem\.conv1|res[2-5]\.\d+\.(conv[1-3]|shortcut))\.weight$")
_BN_STATISTICS = ("running_mean", "running_var")


def detectron2_name(key: str) -> str | None:
    """The R50-C4 name of a torchvision ResNet key, or None for keys Detectron2 has no use for."""
    if key.startswith("fc.") or key.endswith(".num_batches_tracked"):
        return None
    stage = re.match(r"layer([1-4])\.(.*)", key)
    name = f"res{int(stage[1]) + 1}.{stage[2]}" if stage else f"stem.{key}"
    # (?<![^.]) and (?=\.) anchor each rename to whole dotted components.
    name = re.sub(r"(?<![^.])bn([1-3])(?=\.)", r"conv\1.norm", name)
    name = re.sub(r"(?<![^.])downsample\.0(?=\.)", "shortcut", name)
    return re.sub(r"(?<![^.])downsample\.1(?=\.)", "shortcut.norm", name)


def to_detectron2_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ResNet state_dict to Detectron2's names, dropping ``fc`` and
    ``num_batches_tracked``. Tensors are shared, not copied."""
    renamed = {}
    for key, value in state.items():
        name = detectron2_name(key)
        if name is not None:
            renamed[name] = value
    return renamed


@functools.cache
def r50c4_layout() -> dict[str, tuple[int, ...]]:
    """Every tensor of Detectron2's R50-C4 backbone (``res5`` included): name -> shape.

    Read off torchvision's ``resnet50`` built on the meta device (no memory, no initialisation),
    so the layout follows the architecture rather than a list typed by hand.
    """
    # Imported here: torchvision's model zoo doubles the import time of every kdzoo.checkpoint user.
    from torchvision.models import resnet50

    with torch.device("meta"):
        model = resnet50()
    return {
        name: tuple(value.shape) for name, value in to_detectron2_names(model.state_dict()).items()
    }


def check_r50c4(state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``state`` (Detectron2 names) holds exactly
    the tensors of :func:`r50c4_layout`, with their shapes."""
    layout = r50c4_layout()
    convs = sorted(k for k in state if _CONV_NAME.match(k))
    expected_convs = sorted(k for k in layout if _CONV_NAME.match(k))
    if convs != expected_convs:
        absent = [k for k in expected_convs if k not in state]
        extra = [k for k in convs if k not in layout]
        details = [
            f"{len(keys)} {label}, e.g. {listed(keys)}"
            for label, keys in (("absent", absent), ("extra", extra))
            if keys
        ]
        raise CheckpointError(
            f"{source} is not a torchvision ResNet-50: Detectron2's R50-C4 has "
            f"{len(expected_convs)} convolutions, the student has {len(convs)} "
            f"({'; '.join(details)})"
        )
    missing = [k for k in layout if k not in state]
    statistics = [k for k in missing if k.endswith(_BN_STATISTICS)]
    if statistics:
        raise CheckpointError(
            f"{source} lacks {len(statistics)} batch-norm statistics ({listed(statistics)}); "
            "Detectron2 would silently use mean 0 and variance 1"
        )
    check_layout(state, layout, source, "Detectron2's R50-C4 backbone")


def detectron2_arrays(state: dict[str, torch.Tensor], source: str) -> dict[str, np.ndarray]:
    """A checked R50-C4 ``{name: float32 array}`` from a torchvision ResNet-50 state_dict."""
    renamed = to_detectron2_names(state)
    check_r50c4(renamed, source)
    return {k: v.detach().cpu().to(torch.float32).numpy() for k, v in renamed.items()}


class _PortablePickler(pickle.Pickler):
    """Pickles arrays as ``numpy.ndarray(shape, dtype, buffer)``.

    numpy >= 2 would pickle them through its private ``numpy._core`` module, which numpy 1.x
    (common beside Detectron2) cannot import. A bytearray buffer keeps the arrays writable, so
    Detectron2's ``torch.from_numpy`` does not warn.
    """

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            data = bytearray(np.ascontiguousarray(obj).tobytes())
            return np.ndarray, (obj.shape, obj.dtype.str, data)
        return NotImplemented


def save_detectron2_pickle(arrays: dict[str, np.ndarray], path: str) -> None:
    """Write ``{"model": arrays, "__author__", "matching_heuristics": True}`` atomically.

    ``__author__`` tells Detectron2 the names are its own (without it, Caffe2 renaming applies and
    loses the BN statistics); ``matching_heuristics`` lets ``res5.*`` find ``roi_heads.res5.*``.
    Detectron2 reads a file as a pickle only when its name ends in ``.pkl``.
    """
    document = {"model": arrays, "__author__": AUTHOR, "matching_heuristics": True}
    # Protocol 4 is read by every Python 3 that Detectron2 supports.
    atomic_write(path, lambda f: _PortablePickler(f, protocol=4).dump(document))


def _yaml_string(text: str) -> str:
    """``text`` as a double-quoted YAML string (json-style quotes are valid YAML and escape any
    path)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def detectron2_config_fragment(weights_path: str, base_config: str | None = None) -> str:
    """A YAML fragment of Detectron2 keys for fine-tuning ``weights_path`` in an R50-C4 model.

    ``base_config``, a Detectron2 R50-C4 config, becomes the fragment's ``_BASE_``, written as an
    absolute path: Detectron2 reads a relative ``_BASE_`` from the folder of the file naming it,
    not from the working directory, and the weights are named absolutely too. Without it the
    fragment says how to add one. ``VERSION: 2`` keeps Detectron2 from warning that a fragment
    loaded alone has no version.
    """
    mean = ", ".join(f"{v:.3f}" for v in PIXEL_MEAN)
    std = ", ".join(f"{v:.3f}" for v in PIXEL_STD)
    quoted = _yaml_string(os.path.abspath(weights_path))
    if base_config is None:
        base = """\
# Use them with an R50-C4 config, Faster R-CNN (configs/PascalVOC-Detection/
# faster_rcnn_R_50_C4.yaml) or Mask R-CNN (configs/COCO-InstanceSegmentation/
# mask_rcnn_R_50_C4_1x.yaml): put _BASE_: "<that config>" above these lines, or pass the same
# keys to Detectron2's train_net.py. Detectron2 reads a relative _BASE_ from this file's folder
# (not from where train_net.py runs), so name the config by its absolute path or by its path
# relative to this folder; kdzoo-export --detectron2-base PATH writes the absolute path in.
"""
    else:
        base = f"""\
# Detectron2 reads them over the R50-C4 config named by _BASE_ (absolute: Detectron2 reads a
# relative _BASE_ from this file's folder).
_BASE_: {_yaml_string(os.path.abspath(base_config))}
"""
    return f"""\
# Detectron2 keys for the torchvision-style ResNet-50 that kdzoo exported to {quoted}.
{base}\
# MoCo's detection recipe also fine-tunes every layer with synchronised batch norm:
#   MODEL.BACKBONE.FREEZE_AT 0 and MODEL.RESNETS.NORM "SyncBN" (plus a BN after res5 in the ROI
#   head, MoCo's Res5ROIHeadsExtraNorm, which Detectron2 does not ship).
VERSION: 2
MODEL:
  WEIGHTS: {quoted}
  PIXEL_MEAN: [{mean}]
  PIXEL_STD: [{std}]
  RESNETS:
    STRIDE_IN_1X1: False
INPUT:
  FORMAT: "RGB"
"""
