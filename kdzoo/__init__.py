"""kdzoo: a Detectron2-style knowledge-distillation framework for image classifiers."""

__version__ = "0.1.0"
