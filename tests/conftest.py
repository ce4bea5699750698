"""Shared fixtures: the team's ``../shared`` folder (reference JSONs, real CIFAR-100)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kdzoo_testing import CIFAR100_NPZ, REFERENCE_DIR


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two threads match the CI machine and keep float reductions reproducible between runs.
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def reference_models() -> dict:
    """RepDistiller's CIFAR models: name -> {num_params, pooled_feature_dim, state_dict, ...}."""
    path = REFERENCE_DIR / "repdistiller_cifar_models.json"
    if not path.exists():
        pytest.skip(f"reference model list not found at {path}")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def detectron2_reference() -> dict:
    """Detectron2's R50-C4 state_dict keys and shapes."""
    path = REFERENCE_DIR / "detectron2_r50c4_state_dict.json"
    if not path.exists():
        pytest.skip(f"Detectron2 reference not found at {path}")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def cifar100_slice(tmp_path_factory) -> Path:
    """A small npz in the format of the real CIFAR-100 file: 40 images per class from each split.

    The real file is read once per session; tests train on the slice so the suite stays fast.
    """
    if not CIFAR100_NPZ.exists():
        pytest.skip(
            f"real CIFAR-100 not found at {CIFAR100_NPZ} (only this team's machines have it)"
        )
    with np.load(CIFAR100_NPZ) as data:
        arrays = {k: data[k] for k in data.files}
    rng = np.random.default_rng(0)

    def take(split: str, per_class: int) -> dict:
        y = arrays[f"y_{split}"]
        keep = np.concatenate(
            [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in range(100)]
        )
        keep = rng.permutation(keep)
        return {f"x_{split}": arrays[f"x_{split}"][keep], f"y_{split}": y[keep]}

    root = tmp_path_factory.mktemp("cifar100_slice")
    np.savez(
        root / "cifar100.npz",
        **take("train", 40),
        **take("test", 10),
        class_names=arrays["class_names"],
    )
    return root


@pytest.fixture(scope="session")
def random_teacher(tmp_path_factory) -> Path:
    """A RepDistiller-format checkpoint of a randomly initialised resnet8, to serve as teacher."""
    from kdzoo.modeling import build_backbone

    path = tmp_path_factory.mktemp("teacher") / "resnet8.pth"
    torch.manual_seed(1)
    torch.save({"model": build_backbone("resnet8").state_dict()}, path)
    return path
