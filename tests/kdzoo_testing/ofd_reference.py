"""The inputs of the OFD reference checks, and the one-off script that ran mdistiller's own OFD
on them to write ``tests/losses/ofd_reference.json``.

The reference code is never copied into kdzoo: the script imports ``mdistiller.distillers.OFD``
and mdistiller's models from a checkout given on the command line and stores only the numbers
(and module names) they return::

    git clone https://github.com/megvii-research/mdistiller /tmp/mdistiller
    PYTHONPATH=tests .venv/bin/python tests/kdzoo_testing/ofd_reference.py /tmp/mdistiller \\
        tests/losses/ofd_reference.json

(mdistiller's OFD.py imports scipy.) Only torch is imported here (no kdzoo), so the numbers are
mdistiller's alone. What is stored, all in float64 on the CPU:

* ``margins``: the margins ``OFD.init_ofd_modules`` computes (OFD.py:90-109) from a BatchNorm
  whose weight and bias are ``gamma`` and ``beta`` (as float32, as the reference returns them);
* ``feat_loss``: ``feat_loss(source, target, margin)`` (OFD.py:11-19) of one map, and its
  gradient w.r.t. ``source`` at flat indices;
* ``ofd_loss``: ``OFD.ofd_loss`` (OFD.py:142-161) over three stages whose teacher maps are larger
  than the student's at the first two, with the connectors replaced by identities (so the stage
  weights and the pooling are checked apart from them), margins from the three BatchNorms
  ``bn_w{i}``, ``bn_b{i}``; gradients w.r.t. the first and last student maps;
* ``bn_before_relu``: for the 22 CIFAR models and two ImageNet ResNets of mdistiller, the
  qualified names of the modules ``get_bn_before_relu()`` returns and the sums of their weight
  and bias after loading :func:`seeded_state_dict` (or the exception it raises);
* ``pairs``: mdistiller's whole OFD (``forward_train`` after ``train()``) on four pairs, student,
  teacher and connectors loaded with :func:`seeded_state_dict`, on the images of
  :func:`pair_batch`: the weighted CE and OFD terms and gradients of their sum.
"""

import contextlib
import importlib
import io
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch import nn

from kdzoo_testing.seeded_weights import four_images, seeded_state_dict

SEED = 20240601
# name -> shape; float64 normal draws from one torch.Generator seeded with SEED, in this order.
SHAPES = {
    "gamma": (24,),
    "beta": (24,),
    "source": (3, 5, 4, 4),
    "target": (3, 5, 4, 4),
    "margin": (5,),
    "s0": (3, 4, 8, 8),
    "s1": (3, 6, 4, 4),
    "s2": (3, 8, 2, 2),
    "t0": (3, 4, 16, 16),
    "t1": (3, 6, 8, 8),
    "t2": (3, 8, 2, 2),
    "bn_w0": (4,),
    "bn_b0": (4,),
    "bn_w1": (6,),
    "bn_b1": (6,),
    "bn_w2": (8,),
    "bn_b2": (8,),
}
FEAT_LOSS_GRADIENT = [0, 9, 101, 239]
OFD_LOSS_GRADIENT = {"s0": [0, 5, 77, 95], "s2": [0, 5, 77, 95]}
#: (teacher, student) pairs run whole; the last has maps of different sizes.
PAIRS = [
    ("resnet32x4", "resnet8x4"),
    ("wrn_40_2", "wrn_16_2"),
    ("vgg13", "vgg8"),
    ("resnet32x4", "ShuffleV2"),
]
PAIR_GRADIENT = [0, 7, 31, 63]
#: Seeds of seeded_state_dict: teacher, student, connector i (+ i), the accessor's models.
TEACHER_SEED, STUDENT_SEED, CONNECTOR_SEED, ACCESSOR_SEED = (
    SEED + 1,
    SEED + 2,
    SEED + 10,
    SEED + 100,
)
CIFAR_MODELS = [
    *("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    *("resnet8x4", "resnet32x4", "ResNet50"),
    *("wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"),
    *("vgg8", "vgg11", "vgg13", "vgg16", "vgg19"),
    *("MobileNetV2", "ShuffleV1", "ShuffleV2"),
]
IMAGENET_MODELS = ["resnet18", "resnet50"]


def make_inputs() -> dict[str, torch.Tensor]:
    """The seeded float64 inputs, with three margin cases set by hand: channel 0 of ``beta`` far
    above zero (``Phi(-4) < 0.001``: the ``-3 sigma`` branch), channel 1 of ``gamma`` negative
    (the reference takes ``|gamma|``), channel 2 of ``beta`` far below zero."""
    g = torch.Generator().manual_seed(SEED)
    x = {k: torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}
    x["beta"][0] = 4 * x["gamma"][0].abs()
    x["gamma"][1] = -x["gamma"][1].abs()
    x["beta"][2] = -3.0
    x["margin"] = -x["margin"].abs()  # margins are never positive
    return x


def pair_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The four images (and labels) the whole-pair checks run on."""
    return four_images(SEED + 3)


def _bn(weight: torch.Tensor, bias: torch.Tensor) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(weight.numel()).double()
    bn.weight.data.copy_(weight)
    bn.bias.data.copy_(bias)
    return bn


def _ofd_config():
    ns = types.SimpleNamespace
    loss = ns(CE_WEIGHT=1.0, FEAT_WEIGHT=0.001)
    return ns(OFD=ns(LOSS=loss, CONNECTOR=ns(KERNEL_SIZE=1)))


def _bare_ofd(ofd, bns: list[nn.BatchNorm2d]):
    """mdistiller's OFD without models: ``init_ofd_modules`` alone (margins, connectors)."""
    obj = ofd.OFD.__new__(ofd.OFD)
    nn.Module.__init__(obj)
    channels = [bn.num_features for bn in bns]
    obj.init_ofd_modules(channels, channels, bns, kernel_size=1)
    return obj


def _quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()):  # mdistiller's MobileNetV2 prints
        return fn(*args, **kwargs)


def _flat_at(tensor: torch.Tensor, index: list[int]) -> list[float]:
    flat = tensor.reshape(-1)
    return [flat[i].item() for i in index]


def _losses(ofd, x: dict) -> dict:
    margins = _bare_ofd(ofd, [_bn(x["gamma"], x["beta"])]).margins[0]
    out = {"margins": margins.reshape(-1).tolist()}

    source = x["source"].clone().requires_grad_(True)
    value = ofd.feat_loss(source, x["target"], x["margin"].view(1, -1, 1, 1))
    value.backward()
    out["feat_loss"] = {
        "value": value.item(),
        "gradient_index": FEAT_LOSS_GRADIENT,
        "gradient": _flat_at(source.grad, FEAT_LOSS_GRADIENT),
    }

    bns = [_bn(x[f"bn_w{i}"], x[f"bn_b{i}"]) for i in range(3)]
    obj = _bare_ofd(ofd, bns)
    obj.connectors.connectors = nn.ModuleList(nn.Identity() for _ in range(3))
    student = [x[f"s{i}"].clone().requires_grad_(True) for i in range(3)]
    value = obj.ofd_loss(student, [x[f"t{i}"] for i in range(3)])
    value.backward()
    grads = {
        key: {"index": index, "value": _flat_at(student[int(key[1])].grad, index)}
        for key, index in OFD_LOSS_GRADIENT.items()
    }
    out["ofd_loss"] = {
        "margins": [m.reshape(-1).tolist() for m in obj.margins],
        "value": value.item(),
        "gradients": grads,
    }
    return out


def _accessor(cifar, imagenet) -> dict:
    out = {}
    builders = {n: (cifar.cifar_model_dict[n][0], 100) for n in CIFAR_MODELS}
    builders |= {n: (getattr(imagenet, n), 1000) for n in IMAGENET_MODELS}
    for name, (build, classes) in builders.items():
        model = _quiet(build, num_classes=classes).double()
        model.load_state_dict(seeded_state_dict(model, ACCESSOR_SEED))
        try:
            bns = model.get_bn_before_relu()
        except Exception as err:  # the ShuffleNets raise NotImplementedError
            out[name] = {"raises": type(err).__name__}
            continue
        names = {id(m): n for n, m in model.named_modules()}
        out[name] = {
            "names": [names[id(bn)] for bn in bns],
            "num_features": [bn.num_features for bn in bns],
            "weight_sums": [bn.weight.sum().item() for bn in bns],
            "bias_sums": [bn.bias.sum().item() for bn in bns],
        }
    return out


def _pairs(ofd, cifar) -> dict:
    out = {}
    images, labels = pair_batch()
    for teacher_name, student_name in PAIRS:
        teacher = _quiet(cifar.cifar_model_dict[teacher_name][0], num_classes=100).double()
        teacher.load_state_dict(seeded_state_dict(teacher, TEACHER_SEED))
        student = _quiet(cifar.cifar_model_dict[student_name][0], num_classes=100).double()
        student.load_state_dict(seeded_state_dict(student, STUDENT_SEED))
        distiller = ofd.OFD(student, teacher, _ofd_config())
        for i, connector in enumerate(distiller.connectors.connectors):
            connector.double()
            connector.load_state_dict(seeded_state_dict(connector, CONNECTOR_SEED + i))
        distiller.train()
        _, losses = distiller.forward_train(image=images, target=labels)
        sum(losses.values()).backward()
        param_name, param = next(iter(student.named_parameters()))
        conv = distiller.connectors.connectors[0][0].weight
        out[f"{teacher_name}_{student_name}"] = {
            "teacher_training": teacher.training,
            "loss_ce": losses["loss_ce"].item(),
            "loss_ofd": losses["loss_kd"].item(),  # mdistiller's key for the OFD term
            "gradient_index": PAIR_GRADIENT,
            "student_param": param_name,
            "student_gradient": _flat_at(param.grad, PAIR_GRADIENT),
            "connector0_gradient": _flat_at(conv.grad, PAIR_GRADIENT),
        }
    return out


def main(checkout: str, out: str) -> None:
    checkout = Path(checkout)
    commit = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sys.path.insert(0, str(checkout))
    ofd = importlib.import_module("mdistiller.distillers.OFD")
    cifar = importlib.import_module("mdistiller.models.cifar")
    imagenet = importlib.import_module("mdistiller.models.imagenet.resnet")
    inputs = make_inputs()
    images, _ = pair_batch()
    fixture = {
        "how": (
            "Made by tests/kdzoo_testing/ofd_reference.py: mdistiller's own "
            "mdistiller/distillers/OFD.py (feat_loss, OFD.init_ofd_modules, OFD.ofd_loss, "
            "OFD.forward_train) and the get_bn_before_relu() of its models, imported from a "
            "checkout outside kdzoo, in float64 on the CPU; see the script's docstring."
        ),
        "mdistiller_commit": commit,
        "torch_version": torch.__version__,
        "seed": SEED,
        # Detects a change of torch's random stream, which would make the values meaningless.
        "input_sums": {k: v.sum().item() for k, v in inputs.items()}
        | {"images": images.sum().item()},
        **_losses(ofd, inputs),
        "bn_before_relu": _accessor(cifar, imagenet),
        "pairs": _pairs(ofd, cifar),
    }
    Path(out).write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
