"""Models: backbones (``BACKBONE_REGISTRY``) and the small heads distillers put on them."""

from .backbone import (
    BACKBONE_REGISTRY,
    BackboneDims,
    Classifier,
    build_backbone,
    dummy_forward,
    eval_mode,
    input_size_mismatch,
    probe_backbone,
    probe_features,
    registered_input_size,
)
from .backbone.preact_bn import bn_before_relu
from .factor import Paraphraser, Translator
from .heads import ABConnector, HintRegressor, LinearEmbed, MLPHead, OFDConnector
from .review import AttentionBasedFusion, KnowledgeReview
from .sync_batchnorm import GlobalBatchNorm, convert_sync_batchnorm

__all__ = [
    "BACKBONE_REGISTRY",
    "ABConnector",
    "AttentionBasedFusion",
    "BackboneDims",
    "Classifier",
    "GlobalBatchNorm",
    "HintRegressor",
    "KnowledgeReview",
    "LinearEmbed",
    "MLPHead",
    "OFDConnector",
    "Paraphraser",
    "Translator",
    "bn_before_relu",
    "build_backbone",
    "convert_sync_batchnorm",
    "input_size_mismatch",
    "probe_backbone",
    "dummy_forward",
    "eval_mode",
    "probe_features",
    "registered_input_size",
]
