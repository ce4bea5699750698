"""The model zoo: configs and checkpoints of the models kdzoo trained, by name.

    from kdzoo import model_zoo
    cfg = model_zoo.get_config("digits/resnet32_vanilla")
    weights = model_zoo.get_checkpoint_url("digits/resnet32_vanilla")

Works from a source checkout (editable install); see :mod:`kdzoo.model_zoo.model_zoo`.
"""

from .model_zoo import get_checkpoint_url, get_config, get_config_file, list_models

__all__ = ["get_checkpoint_url", "get_config", "get_config_file", "list_models"]
