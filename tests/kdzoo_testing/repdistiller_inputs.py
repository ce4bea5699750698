"""The inputs of ``test_feature_losses.py``'s reference checks, and the one-off script that ran
RepDistiller's own ``distiller_zoo`` criteria on them to write ``repdistiller_losses.json``.

The reference code is never copied into kdzoo: the script imports it from a checkout given on the
command line and stores only the numbers it returns::

    git clone https://github.com/HobbitLong/RepDistiller /tmp/RepDistiller
    .venv/bin/python tests/kdzoo_testing/repdistiller_inputs.py /tmp/RepDistiller \\
        tests/losses/repdistiller_losses.json

Only torch is imported here (no kdzoo), so the numbers are RepDistiller's alone.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

SEED = 20240518

# name -> shape; float64 normal draws from one torch.Generator seeded with SEED, in this order.
SHAPES = {
    # AT / NST: three layer pairs: student larger (pooled), teacher larger (pooled), equal.
    "maps_s0": (4, 3, 8, 8),
    "maps_t0": (4, 5, 4, 4),
    "maps_s1": (4, 4, 4, 4),
    "maps_t1": (4, 6, 8, 8),
    "maps_s2": (4, 2, 4, 4),
    "maps_t2": (4, 3, 4, 4),
    # SP: one pair of maps whose sizes differ.
    "sp_s": (4, 3, 4, 4),
    "sp_t": (4, 5, 2, 2),
    # PKT / RKD: pooled vectors of different widths.
    "vec_s": (5, 6),
    "vec_t": (5, 9),
    # CC: embeddings of one width.
    "emb_s": (5, 8),
    "emb_t": (5, 8),
}

# (loss name, flat indices into the student input whose gradient entries are stored)
GRADIENT_ENTRIES = {
    "attention_transfer": ("maps_s0", [0, 2, 19, 100, 191]),
    "rkd": ("vec_s", [0, 1, 7, 13, 29]),
}


# VID's trained modules (regressor weights, log-variances) are drawn from their own stream, so the
# inputs above keep their values.
VID_SEED = 20240519
# VID pairs: (student map, teacher map) keys; the first pools the student, the second the teacher.
VID_PAIRS = [("maps_s0", "maps_t0"), ("maps_s1", "maps_t1")]
VID_GRADIENT_INDEX = [0, 3, 64, 150, 191]


# FSP compares maps of equal channels, which the shared inputs above are not: its own stream.
FSP_SEED = 20240520
FSP_SHAPES = [(3, 4, 8, 8), (3, 5, 4, 4), (3, 6, 2, 2)]
FSP_GRADIENT_INDEX = [0, 5, 77, 200, 767]


def make_fsp_inputs() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Student and teacher feature lists of FSP_SHAPES, float64 (consecutive maps differ in
    size, so the pooling between them runs)."""
    g = torch.Generator().manual_seed(FSP_SEED)
    g_s = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in FSP_SHAPES]
    g_t = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in FSP_SHAPES]
    return g_s, g_t


def set_vid_parameters(modules) -> None:
    """Overwrite the parameters of one VID module per pair, in ``parameters()`` order (the three
    conv weights, then the log-variance), with seeded float64 draws: kdzoo's and RepDistiller's
    modules get the same numbers because their parameters come in the same order and shapes."""
    g = torch.Generator().manual_seed(VID_SEED)
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))


def make_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(SEED)
    return {k: torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}


def _load(repo: Path, name: str):
    spec = importlib.util.spec_from_file_location(
        f"repdistiller_{name}", repo / "distiller_zoo" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_values(repo: Path) -> tuple[dict, dict]:
    at, sp, pkt = _load(repo, "AT").Attention(), _load(repo, "SP").Similarity(), _load(repo, "PKT")
    rkd, nst, cc = _load(repo, "RKD").RKDLoss(), _load(repo, "NST").NSTLoss(), _load(repo, "CC")
    x = make_inputs()
    g_s = [x[f"maps_s{i}"] for i in range(3)]
    g_t = [x[f"maps_t{i}"] for i in range(3)]
    values = {
        "attention_transfer": [v.item() for v in at(g_s, g_t)],
        "nst": [v.item() for v in nst(g_s, g_t)],
        "similarity_preserving": [v.item() for v in sp([x["sp_s"]], [x["sp_t"]])],
        "pkt": pkt.PKT()(x["vec_s"], x["vec_t"]).item(),
        "rkd": rkd(x["vec_s"], x["vec_t"]).item(),
        "correlation_congruence": cc.Correlation()(x["emb_s"], x["emb_t"]).item(),
    }
    # Gradients of the summed loss (as train_student.py sums AT's list) w.r.t. a student input.
    gradients = {}
    for name, (key, index) in GRADIENT_ENTRIES.items():
        student = x[key].clone().requires_grad_(True)
        if name == "attention_transfer":
            loss = sum(at([student, *g_s[1:]], g_t))
        else:
            loss = rkd(student, x["vec_t"])
        loss.backward()
        flat = student.grad.reshape(-1)
        gradients[name] = {"input": key, "index": index, "value": [flat[i].item() for i in index]}
    return values, gradients


def _reference_vid(repo: Path) -> dict:
    """VIDLoss(C_s, C_t, C_t) per pair (train_student.py:219-223), parameters from
    set_vid_parameters, float64: the per-pair values and gradients of their sum w.r.t. the first
    student map and the first pair's log-variance."""
    x = make_inputs()
    vid = _load(repo, "VID")
    modules = [
        vid.VIDLoss(x[s].shape[1], x[t].shape[1], x[t].shape[1]).double() for s, t in VID_PAIRS
    ]
    set_vid_parameters(modules)
    student = x[VID_PAIRS[0][0]].clone().requires_grad_(True)
    maps_s = [student, *(x[s] for s, _ in VID_PAIRS[1:])]
    values = [m(f_s, x[t]) for m, f_s, (_, t) in zip(modules, maps_s, VID_PAIRS, strict=True)]
    sum(values).backward()
    flat = student.grad.reshape(-1)
    return {
        "values": [v.item() for v in values],
        "student_gradient": {
            "input": VID_PAIRS[0][0],
            "index": VID_GRADIENT_INDEX,
            "value": [flat[i].item() for i in VID_GRADIENT_INDEX],
        },
        "log_scale_gradient": modules[0].log_scale.grad.tolist(),
    }


def _reference_fsp(repo: Path) -> dict:
    """FSP(s_shapes, t_shapes) on make_fsp_inputs(): the per-pair values and the gradient of
    their sum (helper/pretrain.py sums them) w.r.t. the student's first map."""
    g_s, g_t = make_fsp_inputs()
    fsp = _load(repo, "FSP").FSP([f.shape for f in g_s], [f.shape for f in g_t])
    g_s[0].requires_grad_(True)
    values = fsp(g_s, g_t)
    sum(values).backward()
    flat = g_s[0].grad.reshape(-1)
    return {
        "values": [v.item() for v in values],
        "index": FSP_GRADIENT_INDEX,
        "gradient": [flat[i].item() for i in FSP_GRADIENT_INDEX],
    }


def main(repo: str, out: str) -> None:
    repo = Path(repo)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    values, gradients = _reference_values(repo)
    inputs = make_inputs()
    fixture = {
        "how": (
            "Made by tests/kdzoo_testing/repdistiller_inputs.py: RepDistiller's own distiller_zoo "
            "modules (AT.Attention(), SP.Similarity(), PKT.PKT(), RKD.RKDLoss(), NST.NSTLoss(), "
            "CC.Correlation(), default arguments, imported from a checkout outside kdzoo) run on "
            "the float64 inputs of make_inputs() on the CPU. AT, NST and SP are called with lists, "
            "as train_student.py calls them, and return one value per pair. Gradients: of the "
            "loss (AT: the sum of its list) w.r.t. the student input, at the given flat indices. "
            "vid: VID.VIDLoss(C_s, C_t, C_t) per VID_PAIRS entry, .double(), parameters from "
            "set_vid_parameters; per-pair values and gradients of their sum. fsp: "
            "FSP.FSP(shapes) on make_fsp_inputs(), per-pair values and the gradient of their sum."
        ),
        "repdistiller_commit": commit,
        "torch_version": torch.__version__,
        "seed": SEED,
        # Detects a change of torch's random stream, which would make the values meaningless.
        "input_sums": {k: v.sum().item() for k, v in inputs.items()},
        "values": values,
        "gradients": gradients,
        "vid": _reference_vid(repo),
        "fsp": _reference_fsp(repo),
    }
    Path(out).write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
