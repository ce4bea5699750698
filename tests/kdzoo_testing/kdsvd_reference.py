"""The inputs of ``test_kdsvd_loss.py``'s reference checks, and the one-off script that ran
mdistiller's own ``kdsvd_loss`` on them to write ``tests/losses/kdsvd_reference.json``.

The reference code is never copied into kdzoo: the script imports ``mdistiller/distillers/
KDSVD.py`` (and the ``_base.py`` it imports) from a checkout given on the command line and stores
only the numbers it returns. A checkout, or the two files exported from a mirror::

    git clone https://github.com/megvii-research/mdistiller /tmp/mdistiller
    .venv/bin/python tests/kdzoo_testing/kdsvd_reference.py /tmp/mdistiller \\
        tests/losses/kdsvd_reference.json

    # or: mkdir -p /tmp/md/mdistiller/distillers; for f in KDSVD.py _base.py; do
    #   git -C MIRROR show HEAD:mdistiller/distillers/$f > /tmp/md/mdistiller/distillers/$f; done
    # and pass the commit as a third argument: ... /tmp/md OUT.json COMMIT

Only torch is imported here (no kdzoo), so the numbers are mdistiller's alone.

mdistiller's ``svd`` casts each map to float32 (``.float()``). For values to compare at 1e-6 the
script also runs it with ``Tensor.float`` made to leave float64 tensors as they are (nothing else
in the file calls it), so the whole computation is float64; ``values_float32`` are the code as
it is, on the same float64 inputs.
"""

import contextlib
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import torch

SEED = 20240601

# name -> shape; float64 normal draws from one torch.Generator seeded with SEED, in this order.
# Three layers of stage-like maps: widths 8, 4, 2 (the student keeps k + 3 = 4 vectors of 8, all
# 4 of 4, and the 2 there are of the 2-wide map); the channel counts differ between the networks,
# which mdistiller's [C*H, W] layout allows.
SHAPES = {
    "maps_s0": (3, 4, 8, 8),
    "maps_t0": (3, 5, 8, 8),
    "maps_s1": (3, 6, 4, 4),
    "maps_t1": (3, 3, 4, 4),
    "maps_s2": (3, 8, 2, 2),
    "maps_t2": (3, 7, 2, 2),
}
# The K values checked: mdistiller's default 1, and 2 (the teacher's normalised singular values
# then scale the vectors by numbers other than 1).
KS = (1, 2)
# Flat indices into the student maps whose gradient entries (K = 1, float64) are stored.
GRADIENT_ENTRIES = {"maps_s0": [0, 5, 77, 130, 255], "maps_s2": [0, 9, 31, 64, 95]}


def make_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(SEED)
    return {k: torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in SHAPES.items()}


def layers(x: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(student maps, teacher maps), three layers in order."""
    return [x[f"maps_s{i}"] for i in range(3)], [x[f"maps_t{i}"] for i in range(3)]


def _load(checkout: Path):
    """mdistiller's ``distillers/KDSVD.py`` as the module of a stand-in package holding its
    ``_base.py``, so its ``from ._base import Distiller`` works without the package's
    ``__init__`` (which imports every distiller and model)."""
    folder = checkout / "mdistiller" / "distillers"
    package = types.ModuleType("mdistiller_distillers")
    package.__path__ = [str(folder)]
    sys.modules[package.__name__] = package
    module = None
    for name in ("_base", "KDSVD"):
        spec = importlib.util.spec_from_file_location(
            f"{package.__name__}.{name}", folder / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _float64_kept():
    original = torch.Tensor.float

    def keep(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else original(self, *args, **kwargs)

    torch.Tensor.float = keep
    try:
        yield
    finally:
        torch.Tensor.float = original


def _reference(checkout: Path) -> dict:
    kdsvd = _load(checkout)
    x = make_inputs()
    g_s, g_t = layers(x)
    with _float64_kept():
        values = {f"k{k}": kdsvd.kdsvd_loss(g_s, g_t, k).item() for k in KS}
    values_float32 = {f"k{k}": kdsvd.kdsvd_loss(g_s, g_t, k).item() for k in KS}
    gradients = {}
    for key, index in GRADIENT_ENTRIES.items():
        student = [m.clone().requires_grad_(f"maps_s{i}" == key) for i, m in enumerate(g_s)]
        with _float64_kept():
            kdsvd.kdsvd_loss(student, g_t, 1).backward()
        flat = next(m for m in student if m.requires_grad).grad.reshape(-1)
        gradients[key] = {"index": index, "value": [flat[i].item() for i in index]}
    return {"values": values, "values_float32": values_float32, "gradients": gradients}


def main(checkout: str, out: str, commit: str | None = None) -> None:
    checkout = Path(checkout)
    if commit is None:
        commit = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    inputs = make_inputs()
    fixture = {
        "how": (
            "Made by tests/kdzoo_testing/kdsvd_reference.py: mdistiller's own "
            "mdistiller/distillers/KDSVD.py (kdsvd_loss(g_s, g_t, k), imported from a checkout "
            "outside kdzoo) on the three layers of float64 maps of make_inputs(), on the CPU. "
            "values: with Tensor.float leaving float64 as it is, so all of it is float64; "
            "values_float32: the code as it is (its .float() casts the maps to float32). "
            "Gradients (K = 1, float64): of the loss w.r.t. one student map, at flat indices."
        ),
        "mdistiller_commit": commit,
        "torch_version": torch.__version__,
        "seed": SEED,
        # Detects a change of torch's random stream, which would make the values meaningless.
        "input_sums": {k: v.sum().item() for k, v in inputs.items()},
        **_reference(checkout),
    }
    Path(out).write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
