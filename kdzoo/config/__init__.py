"""The kdzoo config: one yacs tree of every option (``defaults.py``), ``_BASE_``, overrides."""

from collections.abc import Callable

from .command_line import OverridesArgumentParser
from .config import CfgNode, load_yaml_with_base, require_choice
from .defaults import _C


def get_cfg() -> CfgNode:
    """A fresh copy of the default config, to be merged with a file and overrides."""
    return _C.clone()


def add_config(updater: Callable[[CfgNode], None]) -> Callable[[CfgNode], None]:
    """Add the options of user code (a new distiller's ``DISTILLER.<NAME>`` node, say) to the
    defaults every later :func:`get_cfg` returns. Usable as a decorator::

        @add_config
        def add_my_method_config(cfg):
            cfg.DISTILLER.MY_METHOD = CfgNode({"WEIGHT": 1.0})
    """
    updater(_C)
    return updater


__all__ = [
    "CfgNode",
    "OverridesArgumentParser",
    "add_config",
    "get_cfg",
    "load_yaml_with_base",
    "require_choice",
]
