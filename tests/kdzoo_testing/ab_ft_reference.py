"""The inputs of the AB and FT reference checks, and the one-off script that ran RepDistiller's own
AB and FT code on them to write ``tests/losses/ab_ft_reference.json``.

The reference code is never copied into kdzoo: the script imports RepDistiller's
``distiller_zoo/AB.py``, ``distiller_zoo/FT.py``, ``models/util.py`` and its ``models`` package
from a checkout given on the command line and stores only the numbers (and parameter names) they
return::

    git clone https://github.com/HobbitLong/RepDistiller /tmp/RepDistiller
    PYTHONPATH=tests .venv/bin/python tests/kdzoo_testing/ab_ft_reference.py /tmp/RepDistiller \\
        tests/losses/ab_ft_reference.json

Only torch is imported here (no kdzoo), so the numbers are RepDistiller's alone. What is stored,
all in float64 on the CPU:

* ``ab``: ``ABLoss(3)`` (margin 1, and 0.5) on three pairs of maps of one shape: the per-layer
  values and the gradient of their sum w.r.t. the first student map;
* ``ab_connector``: ``Connector(s_shapes, t_shapes)`` over four pairs (identity, stride-2 conv,
  transposed conv, 1x1 conv), parameters from :func:`seeded_state_dict`, train mode, then
  ``ABLoss(4)``: the per-layer values and gradients of their sum w.r.t. the first student map and
  the last connector's conv weight;
* ``factor``: ``FactorTransfer()`` on three pairs (student map larger, teacher map larger, equal),
  and ``FactorTransfer(p2=2)`` on the first: values and gradients w.r.t. the student map;
* ``paraphraser``: ``Paraphraser(t_shape)`` (and ``use_bn=True``), seeded, train mode: the
  reconstruction MSE and its gradient w.r.t. the first encoder and last decoder weights; then
  ``Translator(s_shape, t_shape)``, seeded, train mode, and
  ``FactorTransfer()(translator(f_s), paraphraser(f_t, is_factor=True))``, the main phase's term:
  value and gradients w.r.t. ``f_s`` and the translator's first weight;
* ``ab_init_untrained``: for the 22 CIFAR models, the parameters the AB init SGD does not update:
  all but those of ``get_feat_modules()`` that the ``preact=True`` ``feat[1:-1]`` reach;
* ``ab_pairs`` / ``ft_pairs``: whole pairs, student, teacher and modules loaded with
  :func:`seeded_state_dict`, on the images of :func:`pair_batch`, in the modes the reference sets:
  AB's init loss (helper/pretrain.py: ``model_s.eval()``, then the connector and
  ``get_feat_modules()`` in train mode); FT's init loss (the paraphraser's MSE) and main-phase
  terms (helper/loops.py: the student and translator in train mode, the paraphraser in eval mode):
  values and gradient entries.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from kdzoo_testing.seeded_weights import four_images, seeded_state_dict

SEED = 20240610
# name -> shape; float64 normal draws from one torch.Generator seeded with SEED, in this order.
SHAPES = {
    # ABLoss: three layers, student and teacher maps of one shape.
    "ab_s0": (3, 4, 8, 8),
    "ab_t0": (3, 4, 8, 8),
    "ab_s1": (3, 6, 4, 4),
    "ab_t1": (3, 6, 4, 4),
    "ab_s2": (3, 8, 2, 2),
    "ab_t2": (3, 8, 2, 2),
    # Connector: identity, stride-2 conv, transposed conv, 1x1 conv.
    "con_s0": (3, 4, 8, 8),
    "con_t0": (3, 4, 8, 8),
    "con_s1": (3, 4, 8, 8),
    "con_t1": (3, 6, 4, 4),
    "con_s2": (3, 5, 2, 2),
    "con_t2": (3, 6, 4, 4),
    "con_s3": (3, 5, 4, 4),
    "con_t3": (3, 7, 4, 4),
    # FactorTransfer: student larger, teacher larger, equal sizes.
    "ft_s0": (3, 4, 8, 8),
    "ft_t0": (3, 6, 4, 4),
    "ft_s1": (3, 5, 2, 2),
    "ft_t1": (3, 6, 4, 4),
    "ft_s2": (3, 4, 4, 4),
    "ft_t2": (3, 8, 4, 4),
    # Paraphraser (teacher map) and translator (student map).
    "para_t": (3, 8, 4, 4),
    "trans_s": (3, 5, 8, 8),
}
GRADIENT_INDEX = [0, 7, 19, 34]
#: Seeds of seeded_state_dict: modules of the loss checks, then the pairs' teacher, student and
#: modules.
MODULE_SEED, TEACHER_SEED, STUDENT_SEED, HEAD_SEED = SEED + 1, SEED + 2, SEED + 3, SEED + 4
#: (teacher, student) pairs run whole.
AB_PAIRS = [("wrn_40_2", "wrn_40_1"), ("resnet32x4", "ShuffleV1"), ("vgg13", "MobileNetV2")]
FT_PAIRS = [("resnet32x4", "resnet8x4"), ("resnet32x4", "ShuffleV2"), ("wrn_40_2", "wrn_16_2")]
FT_WEIGHT = 200.0  # -b 200 (scripts/run_cifar_distill.sh:23)
#: The 22 CIFAR backbones of RepDistiller's model zoo.
CIFAR_MODELS = [
    *("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    *("resnet8x4", "resnet32x4", "ResNet50"),
    *("wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"),
    *("vgg8", "vgg11", "vgg13", "vgg16", "vgg19"),
    *("MobileNetV2", "ShuffleV1", "ShuffleV2"),
]


def make_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(SEED)
    return {k: torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}


def pair_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The four images (and labels) the whole-pair checks run on."""
    return four_images(SEED + 5)


def entries(t: torch.Tensor) -> list[float]:
    flat = t.reshape(-1)
    return [flat[i].item() for i in GRADIENT_INDEX]


def _load(repo: Path, path: str):
    spec = importlib.util.spec_from_file_location(
        "repdistiller_" + path.replace("/", "_").removesuffix(".py"), repo / path
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seeded(module: nn.Module, seed: int) -> nn.Module:
    module = module.double()
    module.load_state_dict(seeded_state_dict(module, seed))
    return module


def _reference_ab(repo: Path, x: dict) -> dict:
    ab = _load(repo, "distiller_zoo/AB.py")
    out = {}
    for margin in (1.0, 0.5):
        g_s = [x[f"ab_s{i}"].clone().requires_grad_(True) for i in range(3)]
        g_t = [x[f"ab_t{i}"] for i in range(3)]
        values = ab.ABLoss(3, margin=margin)(g_s, g_t)
        sum(values).backward()
        out[str(margin)] = {"values": [v.item() for v in values], "gradient": entries(g_s[0].grad)}
    return out


def _reference_connector(repo: Path, x: dict) -> dict:
    ab, util = _load(repo, "distiller_zoo/AB.py"), _load(repo, "models/util.py")
    g_s = [x[f"con_s{i}"].clone().requires_grad_(True) for i in range(4)]
    g_t = [x[f"con_t{i}"] for i in range(4)]
    connector = _seeded(util.Connector([f.shape for f in g_s], [f.shape for f in g_t]), MODULE_SEED)
    connector.train()
    values = ab.ABLoss(4)(connector(g_s), g_t)
    sum(values).backward()
    return {
        "kinds": [type(c).__name__ for c in connector.connectors],
        "values": [v.item() for v in values],
        "student_gradient": entries(g_s[0].grad),
        "conv_gradient": entries(connector.connectors[3].conv.weight.grad),
    }


def _reference_factor(repo: Path, x: dict) -> dict:
    ft = _load(repo, "distiller_zoo/FT.py")
    out = {"values": [], "gradients": []}
    for i in range(3):
        f_s = x[f"ft_s{i}"].clone().requires_grad_(True)
        value = ft.FactorTransfer()(f_s, x[f"ft_t{i}"])
        value.backward()
        out["values"].append(value.item())
        out["gradients"].append(entries(f_s.grad))
    f_s = x["ft_s0"].clone().requires_grad_(True)
    value = ft.FactorTransfer(p2=2)(f_s, x["ft_t0"])
    value.backward()
    out["p2_2"] = {"value": value.item(), "gradient": entries(f_s.grad)}
    return out


def _reference_paraphraser(repo: Path, x: dict) -> dict:
    ft, util = _load(repo, "distiller_zoo/FT.py"), _load(repo, "models/util.py")
    f_t = x["para_t"]
    paraphraser = _seeded(util.Paraphraser(f_t.shape), MODULE_SEED).train()
    factor, rec = paraphraser(f_t)
    mse = nn.MSELoss()(rec, f_t)
    mse.backward()
    encoder_gradient = entries(paraphraser.encoder[0].weight.grad)
    decoder_gradient = entries(paraphraser.decoder[6].weight.grad)
    with_bn = _seeded(util.Paraphraser(f_t.shape, use_bn=True), MODULE_SEED).train()
    mse_bn = nn.MSELoss()(with_bn(f_t)[1], f_t)

    paraphraser.zero_grad()
    paraphraser.eval()
    f_s = x["trans_s"].clone().requires_grad_(True)
    translator = _seeded(util.Translator(f_s.shape, f_t.shape), MODULE_SEED + 1).train()
    term = ft.FactorTransfer()(translator(f_s), paraphraser(f_t, is_factor=True))
    term.backward()
    return {
        "keys": sorted(paraphraser.state_dict()),
        "factor_shape": list(factor.shape),
        "factor_sum": factor.sum().item(),
        "mse": mse.item(),
        "encoder_gradient": encoder_gradient,
        "decoder_gradient": decoder_gradient,
        "mse_with_bn": mse_bn.item(),
        "translator_keys": sorted(translator.state_dict()),
        "factor_term": term.item(),
        "student_gradient": entries(f_s.grad),
        "translator_gradient": entries(translator.encoder[0].weight.grad),
    }


def _models(repo: Path):
    sys.path.insert(0, str(repo))
    try:
        from models import model_dict  # RepDistiller's package
    finally:
        sys.path.remove(str(repo))
    return model_dict


def _reference_ab_untrained(model_dict) -> dict:
    out = {}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(SEED + 6))
    for name in CIFAR_MODELS:
        model = model_dict[name](num_classes=100).eval()
        feat_ids = {id(p) for p in model.get_feat_modules().parameters()}
        feat, _ = model(x, is_feat=True, preact=True)
        params = list(model.named_parameters())
        grads = torch.autograd.grad(
            sum(f.sum() for f in feat[1:-1]), [p for _, p in params], allow_unused=True
        )
        trained = {
            n
            for (n, p), g in zip(params, grads, strict=True)
            if g is not None and id(p) in feat_ids
        }
        out[name] = sorted(n for n, _ in params if n not in trained)
    return out


def _pair_models(model_dict, teacher: str, student: str):
    model_t = _seeded(model_dict[teacher](num_classes=100), TEACHER_SEED)
    model_s = _seeded(model_dict[student](num_classes=100), STUDENT_SEED)
    return model_t, model_s


def _reference_ab_pairs(repo: Path, model_dict) -> dict:
    ab, util = _load(repo, "distiller_zoo/AB.py"), _load(repo, "models/util.py")
    images, _ = pair_batch()
    out = {}
    for teacher, student in AB_PAIRS:
        model_t, model_s = _pair_models(model_dict, teacher, student)
        probe = torch.zeros(2, 3, 32, 32, dtype=torch.float64)
        model_t.eval(), model_s.eval()
        feat_t, _ = model_t(probe, is_feat=True)
        feat_s, _ = model_s(probe, is_feat=True)
        shapes_s, shapes_t = [f.shape for f in feat_s[1:-1]], [f.shape for f in feat_t[1:-1]]
        connector = _seeded(util.Connector(shapes_s, shapes_t), HEAD_SEED)
        # helper/pretrain.py:12-14 (init_modules = [connector, get_feat_modules()])
        model_t.eval()
        model_s.eval()
        connector.train()
        model_s.get_feat_modules().train()
        feat_s, _ = model_s(images, is_feat=True, preact=True)
        with torch.no_grad():
            feat_t, _ = model_t(images, is_feat=True, preact=True)
        loss = sum(ab.ABLoss(len(feat_s[1:-1]))(connector(feat_s[1:-1]), feat_t[1:-1]))
        loss.backward()
        first_name, first = next(iter(model_s.named_parameters()))
        convs = [c for c in connector.connectors if hasattr(c, "conv")]
        out[f"{teacher}_{student}"] = {
            "loss": loss.item(),
            "student_parameter": first_name,
            "student_gradient": entries(first.grad),
            "connector_gradient": entries(convs[0].conv.weight.grad) if convs else None,
        }
    return out


def _reference_ft_pairs(repo: Path, model_dict) -> dict:
    ft, util = _load(repo, "distiller_zoo/FT.py"), _load(repo, "models/util.py")
    images, labels = pair_batch()
    out = {}
    for teacher, student in FT_PAIRS:
        model_t, model_s = _pair_models(model_dict, teacher, student)
        probe = torch.zeros(2, 3, 32, 32, dtype=torch.float64)
        model_t.eval(), model_s.eval()
        t_shape = model_t(probe, is_feat=True)[0][-2].shape
        s_shape = model_s(probe, is_feat=True)[0][-2].shape
        paraphraser = _seeded(util.Paraphraser(t_shape), HEAD_SEED)
        translator = _seeded(util.Translator(s_shape, t_shape), HEAD_SEED + 1)
        # init (helper/pretrain.py): the paraphraser alone, train mode, on the teacher's feat[-2]
        paraphraser.train()
        with torch.no_grad():
            f_t = model_t(images, is_feat=True)[0][-2]
        _, rec = paraphraser(f_t)
        init_loss = nn.MSELoss()(rec, f_t)
        init_loss.backward()
        init_gradient = entries(paraphraser.encoder[0].weight.grad)
        paraphraser.zero_grad()
        # main (helper/loops.py:70-79, 114-117, 177-182)
        model_s.train()
        translator.train()
        paraphraser.eval()
        model_t.eval()
        feat_s, logit_s = model_s(images, is_feat=True)
        with torch.no_grad():
            feat_t, _ = model_t(images, is_feat=True)
        ce = nn.CrossEntropyLoss()(logit_s, labels)
        factor = ft.FactorTransfer()(
            translator(feat_s[-2]), paraphraser(feat_t[-2], is_factor=True)
        )
        (ce + FT_WEIGHT * factor).backward()
        first_name, first = next(iter(model_s.named_parameters()))
        out[f"{teacher}_{student}"] = {
            "init_loss": init_loss.item(),
            "init_gradient": init_gradient,
            "loss_cls": ce.item(),
            "loss_ft": FT_WEIGHT * factor.item(),
            "student_parameter": first_name,
            "student_gradient": entries(first.grad),
            "translator_gradient": entries(translator.encoder[0].weight.grad),
        }
    return out


def main(repo: str, out: str) -> None:
    repo = Path(repo)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    x = make_inputs()
    model_dict = _models(repo)
    fixture = {
        "how": (
            "Made by tests/kdzoo_testing/ab_ft_reference.py: RepDistiller's own "
            "distiller_zoo/AB.py (ABLoss), distiller_zoo/FT.py (FactorTransfer), models/util.py "
            "(Connector, Paraphraser, Translator) and models (model_dict), imported from a "
            "checkout outside kdzoo, run in float64 on the CPU on make_inputs() and pair_batch(), "
            "modules and models loaded with seeded_state_dict(); the module docstring lists "
            "each entry."
        ),
        "repdistiller_commit": commit,
        "torch_version": torch.__version__,
        "seed": SEED,
        # Detects a change of torch's random stream, which would make the values meaningless.
        "input_sums": {k: v.sum().item() for k, v in x.items()},
        "gradient_index": GRADIENT_INDEX,
        "ab": _reference_ab(repo, x),
        "ab_connector": _reference_connector(repo, x),
        "factor": _reference_factor(repo, x),
        "paraphraser": _reference_paraphraser(repo, x),
        "ab_init_untrained": _reference_ab_untrained(model_dict),
        "ab_pairs": _reference_ab_pairs(repo, model_dict),
        "ft_pairs": _reference_ft_pairs(repo, model_dict),
    }
    Path(out).write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
