"""The inputs of the DKD loss tests, and the one-off script that ran mdistiller's own ``dkd_loss``
on them to write ``tests/losses/mdistiller_losses.json``.

The reference code is never copied into kdzoo: the script imports it from a checkout given on the
command line and stores only the numbers it returns::

    git clone https://github.com/megvii-research/mdistiller /tmp/mdistiller
    .venv/bin/python tests/kdzoo_testing/mdistiller_inputs.py /tmp/mdistiller \\
        tests/losses/mdistiller_losses.json

Only torch is imported here (no kdzoo), so the numbers are mdistiller's alone.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import torch

SEED = 20240601
BATCH, CLASSES = 6, 10
#: (alpha, beta, temperature): mdistiller's defaults, and the beta of its resnet56 -> resnet20.
DKD_SETTINGS = [(1.0, 8.0, 4.0), (1.0, 2.0, 4.0)]
GRADIENT_INDEX = [0, 7, 13, 31, 59]


def make_inputs() -> dict[str, torch.Tensor]:
    """Seeded float64 logits of student and teacher ``[6, 10]`` (spread like a trained
    network's) and labels ``[6]``."""
    g = torch.Generator().manual_seed(SEED)
    return {
        "logits_s": 3 * torch.randn(BATCH, CLASSES, generator=g, dtype=torch.float64),
        "logits_t": 5 * torch.randn(BATCH, CLASSES, generator=g, dtype=torch.float64),
        "labels": torch.randint(CLASSES, (BATCH,), generator=g),
    }


def _reference_values(repo: Path) -> list[dict]:
    sys.path.insert(0, str(repo))
    dkd = importlib.import_module("mdistiller.distillers.DKD")
    x = make_inputs()
    out = []
    for alpha, beta, temperature in DKD_SETTINGS:
        logits_s = x["logits_s"].clone().requires_grad_(True)
        loss = dkd.dkd_loss(logits_s, x["logits_t"], x["labels"], alpha, beta, temperature)
        loss.backward()
        flat = logits_s.grad.reshape(-1)
        out.append(
            {
                "alpha": alpha,
                "beta": beta,
                "temperature": temperature,
                "value": loss.item(),
                "gradient_index": GRADIENT_INDEX,
                "gradient": [flat[i].item() for i in GRADIENT_INDEX],
            }
        )
    return out


def main(repo: str, out: str) -> None:
    repo = Path(repo)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    inputs = make_inputs()
    fixture = {
        "how": (
            "Made by tests/kdzoo_testing/mdistiller_inputs.py: mdistiller's own "
            "mdistiller.distillers.DKD.dkd_loss, imported from a checkout outside kdzoo, run on "
            "the float64 inputs of make_inputs() on the CPU for each (alpha, beta, temperature) of "
            "DKD_SETTINGS; gradients w.r.t. the student logits at the given flat indices."
        ),
        "mdistiller_commit": commit,
        "torch_version": torch.__version__,
        "seed": SEED,
        "input_sums": {k: v.double().sum().item() for k, v in inputs.items()},
        "dkd": _reference_values(repo),
    }
    Path(out).write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
