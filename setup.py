"""kdzoo: a Detectron2-style knowledge-distillation framework for image classifiers."""

from setuptools import find_packages, setup

setup(
    name="kdzoo",
    version="0.1.0",
    description="Contrastive knowledge distillation (CoCoRD, CRD, WCoRD, KD) for image classifiers",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "configs")),
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
