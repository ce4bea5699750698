"""Evaluation: top-k classification accuracy, linear probing of frozen features."""

from .classification import evaluate_classifier, topk_correct
from .linear_probe import (
    PROBE_DATASETS,
    cached_features,
    extract_features,
    probe_batches,
    run_linear_probe,
    train_linear_probe,
)

__all__ = [
    "PROBE_DATASETS",
    "cached_features",
    "evaluate_classifier",
    "extract_features",
    "probe_batches",
    "run_linear_probe",
    "topk_correct",
    "train_linear_probe",
]
