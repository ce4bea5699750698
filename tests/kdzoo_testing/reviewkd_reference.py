"""The inputs of the ReviewKD reference checks (``tests/losses/test_review_loss.py``,
``tests/distillers/test_reviewkd.py``), and the one-off script that ran mdistiller's own
``hcl_loss`` and ``ReviewKD`` on them to write ``tests/losses/reviewkd_reference.json``.

The reference code is never copied into kdzoo: the script imports
``mdistiller.distillers.ReviewKD`` from a checkout given on the command line and stores only the
numbers it returns::

    git clone https://github.com/megvii-research/mdistiller /tmp/mdistiller
    .venv/bin/python tests/kdzoo_testing/reviewkd_reference.py /tmp/mdistiller \\
        tests/losses/reviewkd_reference.json

Only torch is imported here (no kdzoo), so the numbers are mdistiller's alone.

Two checks, all in float64 on the CPU:

* ``hcl``: ``hcl_loss`` on pairs of seeded maps whose heights (8, 5, 4, 3, 2, 1) take every
  branch of its choice of pyramid levels; its value and gradient entries w.r.t. the student maps.
* ``review``: mdistiller's whole ``ReviewKD.forward_train`` for the feature shapes of two pairs
  (:data:`PAIRS`): the student and the teacher are stand-ins that return seeded feature lists
  (``feats``, ``preact_feats``, ``pooled_feat``, as mdistiller's CIFAR models do), the ABF
  modules' parameters are overwritten by :func:`draw_fusion_parameters`. Stored: both losses,
  gradient entries w.r.t. each student map, the logits and every ABF parameter.
"""

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch import nn

SEED = 20240601
BATCH, CLASSES = 3, 10
#: mdistiller's epoch (counted from 1) of the review check; kdzoo's batch["epoch"] is one less.
EPOCH = 7
WARMUP, WEIGHT = 20, 5.0

# ---------------------------------------------------------------------------------------- HCL
#: Student and teacher maps of one shape per pair; heights 8, 5 (pools 4, 2, 1), 4 (2, 1),
#: 3 (2, 1: overlapping adaptive windows), 2 (1) and 1 (the full map alone).
HCL_SHAPES = [(BATCH, 4, 8, 8), (BATCH, 2, 5, 5), (BATCH, 5, 4, 4), (BATCH, 3, 3, 3)]
HCL_SHAPES += [(BATCH, 6, 2, 2), (BATCH, 7, 1, 1)]
#: Flat indices of each student map whose gradient entries are stored (all within the smallest
#: map's 21 entries).
HCL_GRADIENT_INDEX = [0, 5, 13, 20]


def make_hcl_inputs() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(student maps, teacher maps), float64 normal draws, student then teacher per pair."""
    g = torch.Generator().manual_seed(SEED)
    maps_s, maps_t = [], []
    for shape in HCL_SHAPES:
        maps_s.append(torch.randn(shape, generator=g, dtype=torch.float64))
        maps_t.append(torch.randn(shape, generator=g, dtype=torch.float64))
    return maps_s, maps_t


# ------------------------------------------------------------------------------- review path
#: Per pair: the ``(C, H, W)`` of the stem, of each stage output, and ``(C,)`` of the pooled
#: vector, student and teacher (kdzoo's probe_features of the models, RepDistiller's is_feat
#: lists), and the lists mdistiller's config would need for them: CFG.REVIEWKD.SHAPES,
#: OUT_SHAPES, IN_CHANNELS, OUT_CHANNELS (for wrn_40_2 -> ShuffleV1 the authors' build_review_kd
#: in CIFAR-100/model/reviewkd.py writes the same lists).
PAIRS = {
    "resnet32x4_resnet8x4": {
        "student": [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8), (256,)],
        "teacher": [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8), (256,)],
        "SHAPES": [1, 8, 16, 32],
        "OUT_SHAPES": [1, 8, 16, 32],
        "IN_CHANNELS": [64, 128, 256, 256],
        "OUT_CHANNELS": [64, 128, 256, 256],
    },
    "wrn_40_2_ShuffleV1": {
        "student": [(24, 32, 32), (240, 16, 16), (480, 8, 8), (960, 4, 4), (960,)],
        "teacher": [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8), (128,)],
        "SHAPES": [1, 4, 8, 16],
        "OUT_SHAPES": [1, 8, 16, 32],
        "IN_CHANNELS": [240, 480, 960, 960],
        "OUT_CHANNELS": [32, 64, 128, 128],
    },
}
#: (pair, student preact): mdistiller's default (STU_PREACT False) for both pairs, and True once.
REVIEW_CASES = [
    ("resnet32x4_resnet8x4", False),
    ("resnet32x4_resnet8x4", True),
    ("wrn_40_2_ShuffleV1", False),
]
#: The parameters of one ABF module by the names kdzoo's AttentionBasedFusion gives them, and
#: the names of the same tensors in mdistiller's ABF. The deepest module has no attention.
FUSION_PARAMETERS = {
    "reduce.weight": "conv1.0.weight",
    "reduce_bn.weight": "conv1.1.weight",
    "reduce_bn.bias": "conv1.1.bias",
    "attention.weight": "att_conv.0.weight",
    "attention.bias": "att_conv.0.bias",
    "out.weight": "conv2.0.weight",
    "out_bn.weight": "conv2.1.weight",
    "out_bn.bias": "conv2.1.bias",
}
#: Flat indices (of each tensor, taken modulo its size) whose gradient entries are stored.
REVIEW_GRADIENT_INDEX = [0, 1, 37, 1001, 123457]


def make_review_inputs(pair: str) -> dict:
    """Seeded float64 stand-in outputs of the two networks of ``pair``: ``logits`` ``[B, 10]``,
    ``labels`` ``[B]``; per side ``preact`` (stem, stage maps before the ReLU) and ``feats``
    (stem, ``relu(preact)``), both lists of ``[B, C, H, W]``, and ``pooled`` ``[B, C]``
    (non-negative, as an average of ReLU outputs)."""
    g = torch.Generator().manual_seed(SEED + 1 + sorted(PAIRS).index(pair))
    out = {"labels": torch.randint(CLASSES, (BATCH,), generator=g)}
    out["logits"] = 2 * torch.randn(BATCH, CLASSES, generator=g, dtype=torch.float64)
    for side in ("student", "teacher"):
        *maps, (pooled,) = PAIRS[pair][side]
        preact = [torch.randn((BATCH, *s), generator=g, dtype=torch.float64) for s in maps]
        stem = preact[0].relu()
        out[side] = {
            "preact": [stem, *preact[1:]],
            "feats": [stem, *(p.relu() for p in preact[1:])],
            "pooled": torch.rand(BATCH, pooled, generator=g, dtype=torch.float64),
        }
    return out


def fusion_parameter_shapes(pair: str) -> list[dict[str, tuple[int, ...]]]:
    """The shape of each parameter of the ABF module of each reviewed map, shallowest first,
    by kdzoo's names (the middle width min(512, the student's last channels))."""
    spec = PAIRS[pair]
    mid = min(512, spec["IN_CHANNELS"][-1])
    last = len(spec["IN_CHANNELS"]) - 1
    shapes = []
    for i, (c_in, c_out) in enumerate(zip(spec["IN_CHANNELS"], spec["OUT_CHANNELS"], strict=True)):
        level = {
            "reduce.weight": (mid, c_in, 1, 1),
            "reduce_bn.weight": (mid,),
            "reduce_bn.bias": (mid,),
            "attention.weight": (2, 2 * mid, 1, 1),
            "attention.bias": (2,),
            "out.weight": (c_out, mid, 3, 3),
            "out_bn.weight": (c_out,),
            "out_bn.bias": (c_out,),
        }
        if i == last:
            del level["attention.weight"], level["attention.bias"]
        shapes.append(level)
    return shapes


def draw_fusion_parameters(pair: str) -> list[dict[str, torch.Tensor]]:
    """Seeded float64 values for every ABF parameter of ``pair``, shallowest module first, in
    the order of :data:`FUSION_PARAMETERS`: convolutions ``N(0, 1 / fan_in)``, BatchNorm weights
    ``1 + N(0, 0.01)``, biases ``N(0, 0.01)``. kdzoo's modules and mdistiller's get the same
    numbers."""
    g = torch.Generator().manual_seed(SEED + 100)
    levels = []
    for level in fusion_parameter_shapes(pair):
        values = {}
        for name, shape in level.items():
            x = torch.randn(shape, generator=g, dtype=torch.float64)
            if len(shape) == 4:
                values[name] = x / (shape[1] * shape[2] * shape[3]) ** 0.5
            elif name.endswith("bn.weight"):
                values[name] = 1 + 0.1 * x
            else:
                values[name] = 0.1 * x
        levels.append(values)
    return levels


def gradient_entries(grad: torch.Tensor) -> dict:
    flat = grad.reshape(-1)
    index = [i % flat.numel() for i in REVIEW_GRADIENT_INDEX]
    return {"index": index, "value": [flat[i].item() for i in index]}


class _StandIn(nn.Module):
    """A network that returns fixed outputs, as mdistiller's CIFAR models return them."""

    def __init__(self, logits, feats, preact, pooled):
        super().__init__()
        self.out = (logits, {"feats": feats, "preact_feats": preact, "pooled_feat": pooled})

    def forward(self, image):
        return self.out


def _hcl_reference(reviewkd) -> dict:
    maps_s, maps_t = make_hcl_inputs()
    maps_s = [m.clone().requires_grad_(True) for m in maps_s]
    loss = reviewkd.hcl_loss(maps_s, maps_t)
    loss.backward()
    return {
        "value": loss.item(),
        # each pair alone, so a test can name the height that went wrong
        "per_pair": [
            reviewkd.hcl_loss([s], [t]).item() for s, t in zip(maps_s, maps_t, strict=True)
        ],
        "gradient_index": HCL_GRADIENT_INDEX,
        "gradients": [[m.grad.reshape(-1)[i].item() for i in HCL_GRADIENT_INDEX] for m in maps_s],
    }


def _review_reference(reviewkd, pair: str, student_preact: bool) -> dict:
    spec = PAIRS[pair]
    x = make_review_inputs(pair)
    s, t = x["student"], x["teacher"]
    feats = [m.clone().requires_grad_(True) for m in s["feats"]]
    preact = [m.clone().requires_grad_(True) for m in s["preact"]]
    pooled = s["pooled"].clone().requires_grad_(True)
    logits = x["logits"].clone().requires_grad_(True)
    student = _StandIn(logits, feats, preact, pooled)
    teacher = _StandIn(x["logits"].flip(1), t["feats"], t["preact"], t["pooled"])
    options = {k: spec[k] for k in ("SHAPES", "OUT_SHAPES", "IN_CHANNELS", "OUT_CHANNELS")}
    cfg = types.SimpleNamespace(
        REVIEWKD=types.SimpleNamespace(
            CE_WEIGHT=1.0,
            REVIEWKD_WEIGHT=WEIGHT,
            WARMUP_EPOCHS=WARMUP,
            MAX_MID_CHANNEL=512,
            STU_PREACT=student_preact,
            **options,
        )
    )
    distiller = reviewkd.ReviewKD(student, teacher, cfg).double().train()
    n = len(distiller.abfs)
    with torch.no_grad():
        for i, values in enumerate(draw_fusion_parameters(pair)):
            abf = distiller.abfs[n - 1 - i]  # mdistiller keeps them deepest first
            for name, value in values.items():
                abf.get_parameter(FUSION_PARAMETERS[name]).copy_(value)
    _, losses = distiller(image=None, target=x["labels"], epoch=EPOCH)
    sum(losses.values()).backward()
    used = (preact if student_preact else feats)[1:]
    return {
        "pair": pair,
        "student_preact": student_preact,
        "loss_ce": losses["loss_ce"].item(),
        "loss_kd": losses["loss_kd"].item(),
        "student_map_gradients": [gradient_entries(m.grad) for m in used],
        "pooled_gradient": gradient_entries(pooled.grad),
        "logits_gradient": gradient_entries(logits.grad),
        "fusion_gradients": [
            {
                name: gradient_entries(distiller.abfs[n - 1 - i].get_parameter(md).grad)
                for name, md in FUSION_PARAMETERS.items()
                if name in level
            }
            for i, level in enumerate(fusion_parameter_shapes(pair))
        ],
        # the stem (feats[0]) and the other list are not reviewed: no gradient reaches them
        "unused_have_no_gradient": all(
            m.grad is None for m in [feats[0], preact[0], *(feats if student_preact else preact)]
        ),
    }


def input_sums() -> dict[str, float]:
    maps_s, maps_t = make_hcl_inputs()
    sums = {"hcl_student": sum(m.sum() for m in maps_s).item()}
    sums["hcl_teacher"] = sum(m.sum() for m in maps_t).item()
    for pair in PAIRS:
        x = make_review_inputs(pair)
        sums[f"{pair}_logits"] = x["logits"].sum().item()
        for side in ("student", "teacher"):
            sums[f"{pair}_{side}"] = (
                sum(m.sum() for m in x[side]["preact"]) + x[side]["pooled"].sum()
            ).item()
        sums[f"{pair}_fusions"] = sum(
            v.sum() for level in draw_fusion_parameters(pair) for v in level.values()
        ).item()
    return sums


def main(repo: str, out: str) -> None:
    repo = Path(repo)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    sys.path.insert(0, str(repo))
    reviewkd = importlib.import_module("mdistiller.distillers.ReviewKD")
    fixture = {
        "how": (
            "Made by tests/kdzoo_testing/reviewkd_reference.py: mdistiller's own "
            "mdistiller.distillers.ReviewKD (hcl_loss; ReviewKD.forward_train with stand-in "
            "networks returning seeded feature lists and its ABF parameters overwritten by "
            "draw_fusion_parameters), imported from a checkout outside kdzoo, in float64 on "
            f"the CPU; epoch {EPOCH} (mdistiller's, from 1), REVIEWKD_WEIGHT {WEIGHT}, "
            f"WARMUP_EPOCHS {WARMUP}. Gradients of loss_ce + loss_kd at flat indices."
        ),
        "mdistiller_commit": commit,
        "torch_version": torch.__version__,
        "seed": SEED,
        # Detects a change of torch's random stream, which would make the values meaningless.
        "input_sums": input_sums(),
        "hcl": _hcl_reference(reviewkd),
        "review": [_review_reference(reviewkd, pair, preact) for pair, preact in REVIEW_CASES],
    }
    Path(out).write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
