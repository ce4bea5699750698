"""Where the checkout and the team's ``../shared`` folder (reference JSONs, real CIFAR-100) are."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# The team's shared folder sits beside the checkout; KDZOO_SHARED points elsewhere if needed.
SHARED_DIR = Path(os.environ.get("KDZOO_SHARED", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = SHARED_DIR / "reference"
CIFAR100_NPZ = SHARED_DIR / "data" / "cifar100.npz"


def tiny_run_opts(data_root: Path, output_dir: Path, **overrides) -> list[str]:
    """KEY VALUE overrides for a few-iteration CPU run of resnet8 on the CIFAR-100 slice."""
    opts = {
        "DATASETS.ROOT": str(data_root),
        "OUTPUT_DIR": str(output_dir),
        "MODEL.STUDENT.NAME": "resnet8",
        "SOLVER.IMS_PER_BATCH": 32,
        "SOLVER.MAX_ITER": 6,
        "SOLVER.CHECKPOINT_PERIOD": 3,
        "SOLVER.CHECKPOINT_KEEP": 0,
        "TEST.EVAL_PERIOD": 3,
        "TEST.IMS_PER_BATCH": 500,
        "LOG_PERIOD": 2,
    }
    opts.update(overrides)
    return [str(x) for kv in opts.items() for x in kv]


#: The 22 CIFAR backbones of RepDistiller's model zoo, by their registry names.
CIFAR_MODELS = [
    *("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    *("resnet8x4", "resnet32x4", "ResNet50"),
    *("wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"),
    *("vgg8", "vgg11", "vgg13", "vgg16", "vgg19"),
    *("MobileNetV2", "ShuffleV1", "ShuffleV2"),
]
