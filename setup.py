"""kdzoo: a Detectron2-style knowledge-distillation framework for image classifiers."""

import json
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
# A checkpoint the manifest lists by path ships inside the wheel only while it stays small; a
# larger one is published and listed by URL instead.
MAX_SHIPPED_CHECKPOINT_BYTES = 16 * 2**20


def model_zoo_files() -> dict[str, str]:
    """The checkout's files that a wheel carries: ``{path in the checkout: path under
    kdzoo/model_zoo/}``. ``configs/`` keeps its name (Detectron2's ``model_zoo/configs``); the
    manifest and the checkpoints it lists leave ``model_zoo/`` for ``kdzoo/model_zoo/``, the
    mapping ``kdzoo.model_zoo`` applies to the manifest's paths."""
    files = {}
    for folder, _, names in os.walk(os.path.join(HERE, "configs")):
        for name in names:
            if name.endswith(".yaml"):
                path = os.path.relpath(os.path.join(folder, name), HERE).replace(os.sep, "/")
                files[path] = path
    files["model_zoo/manifest.json"] = "manifest.json"
    with open(os.path.join(HERE, "model_zoo", "manifest.json")) as f:
        models = json.load(f)["models"]
    for model in models:
        checkpoint = model["checkpoint"]
        if "://" in checkpoint:
            continue
        size = os.path.getsize(os.path.join(HERE, checkpoint))
        if size > MAX_SHIPPED_CHECKPOINT_BYTES:
            raise SystemExit(
                f"{checkpoint} ({size / 2**20:.1f} MiB) is too large to ship in the wheel: "
                "publish it and give its URL in model_zoo/manifest.json"
            )
        files[checkpoint] = checkpoint.removeprefix("model_zoo/")
    return files


class BuildPyWithModelZoo(build_py):
    """build_py, plus the configs, the manifest and its checkpoints copied into the built
    ``kdzoo/model_zoo/``. An editable install skips them: it reads them from the checkout."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = os.path.join(self.build_lib, "kdzoo", "model_zoo")
        shutil.rmtree(os.path.join(target, "configs"), ignore_errors=True)  # no stale configs
        for source, dest in model_zoo_files().items():
            dest = os.path.join(target, dest)
            self.mkpath(os.path.dirname(dest))
            self.copy_file(os.path.join(HERE, source), dest)


setup(
    name="kdzoo",
    version="0.1.0",
    description="Contrastive knowledge distillation (CoCoRD, CRD, WCoRD, KD) for image classifiers",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "configs")),
    cmdclass={"build_py": BuildPyWithModelZoo},
    entry_points={
        "console_scripts": [
            "kdzoo-train = kdzoo.engine:main",  # tools/train_net.py
            "kdzoo-export = kdzoo.checkpoint.export:main",  # tools/export_backbone.py
        ]
    },
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "yacs>=0.1.8",
        "tabulate>=0.9",
        "termcolor>=2.0",
        "numpy>=1.23",
    ],
    extras_require={
        # scikit-learn ships the real images of the offline quickstart (8x8 handwritten digits);
        # matplotlib draws tools/plot_metrics.py's figures.
        "dev": ["pytest>=7", "ruff>=0.5", "scikit-learn>=1.2", "matplotlib>=3.5"],
        "plot": ["matplotlib>=3.5"],
        "tensorboard": ["tensorboard>=2.10"],
    },
)
