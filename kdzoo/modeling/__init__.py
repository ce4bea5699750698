"""Models: backbones (``BACKBONE_REGISTRY``) and the small heads distillers put on them."""

from .backbone import BACKBONE_REGISTRY, BackboneDims, build_backbone, probe_backbone
from .heads import MLPHead

__all__ = ["BACKBONE_REGISTRY", "BackboneDims", "MLPHead", "build_backbone", "probe_backbone"]
