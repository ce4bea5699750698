"""The kdzoo config: one yacs tree of every option (``defaults.py``), ``_BASE_``, overrides."""

from .config import CfgNode, load_yaml_with_base
from .defaults import _C


def get_cfg() -> CfgNode:
    """A fresh copy of the default config, to be merged with a file and overrides."""
    return _C.clone()


__all__ = ["CfgNode", "get_cfg", "load_yaml_with_base"]
