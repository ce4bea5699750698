"""Evaluation: top-k classification accuracy."""

from .classification import evaluate_classifier, topk_correct

__all__ = ["evaluate_classifier", "topk_correct"]
