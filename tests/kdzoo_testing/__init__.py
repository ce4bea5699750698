"""Helpers shared by kdzoo's tests: paths, tiny-run options, in-process runs, toy distillers."""

from kdzoo_testing.paths import (
    CIFAR100_NPZ,
    CIFAR_MODELS,
    REFERENCE_DIR,
    REPO_ROOT,
    SHARED_DIR,
    tiny_run_opts,
)

__all__ = [
    "CIFAR100_NPZ",
    "CIFAR_MODELS",
    "REFERENCE_DIR",
    "REPO_ROOT",
    "SHARED_DIR",
    "tiny_run_opts",
]
