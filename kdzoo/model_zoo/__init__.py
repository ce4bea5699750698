"""The model zoo: shipped configs and the models kdzoo trained, by name, from a source checkout
or an installed wheel alike.

    from kdzoo import model_zoo
    cfg = model_zoo.get_config("cifar100/kd/resnet56_resnet20.yaml")  # a config, by its name
    cfg = model_zoo.get_config("digits/resnet32_vanilla")  # a model: the config that trained it
    weights = model_zoo.get_checkpoint_url("digits/resnet32_vanilla")

See :mod:`kdzoo.model_zoo.model_zoo` for how names are resolved and where the files live.
"""

from .model_zoo import (
    configs_dir,
    get_checkpoint_url,
    get_config,
    get_config_file,
    list_configs,
    list_models,
)

__all__ = [
    "configs_dir",
    "get_checkpoint_url",
    "get_config",
    "get_config_file",
    "list_configs",
    "list_models",
]
