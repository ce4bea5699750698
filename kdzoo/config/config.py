"""A yacs :class:`CfgNode` with ``_BASE_`` inheritance and one-line errors that name the culprit."""

import copy
import os
import re
from collections.abc import Sequence
from typing import Any

import yaml
from yacs.config import CfgNode as _YacsCfgNode

from kdzoo.utils.errors import ConfigError, did_you_mean

BASE_KEY = "_BASE_"


class CfgNode(_YacsCfgNode):
    """yacs' CfgNode with ``_BASE_`` files and errors that name the wrong key and its file."""

    #: Keys renamed since an older ``VERSION`` of ``defaults.py``, old -> new. Merging an old key,
    #: from a file or the command line, is an error that names the new one.
    _RENAMED_KEYS = {
        # VERSION 2: CRD's and WCoRD's bank options became one node, DISTILLER.MEMORY_BANK.
        f"DISTILLER.{method}.{old}": f"DISTILLER.MEMORY_BANK.{new}"
        for method in ("CRD", "WCORD")
        for old, new in (
            ("FEAT_DIM", "FEAT_DIM"),
            ("NUM_NEGATIVES", "NUM_NEGATIVES"),
            ("MODE", "MODE"),
            ("MEMORY", "NAME"),
            ("MEMORY_MOMENTUM", "MOMENTUM"),
        )
    }

    # yacs 0.1.8 keeps renamed keys per instance (empty unless registered on each node); kdzoo
    # keeps them on the class, so every node, cloned or built from a file, knows them.
    def key_is_renamed(self, full_key: str) -> bool:
        return full_key in self._RENAMED_KEYS

    def raise_key_rename_error(self, full_key: str) -> None:
        new_key = self._RENAMED_KEYS[full_key]
        raise KeyError(f"config key {full_key} was renamed to {new_key}; update the config")

    def merge_from_file(self, cfg_filename: str) -> None:
        """Merge a YAML file (and, first, the ``_BASE_`` files it names) into this config."""
        loaded = upgrade_renamed_keys(load_yaml_with_base(cfg_filename))
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except (KeyError, ValueError, AssertionError) as e:
            raise ConfigError(f"{cfg_filename}: {_message(e, self)}") from None

    def merge_from_list(self, cfg_list: list) -> None:
        """Merge ``[KEY, VALUE, KEY, VALUE, ...]`` overrides, as given on the command line."""
        if len(cfg_list) % 2:
            raise ConfigError(
                f"command-line overrides come in KEY VALUE pairs; got an odd list: {cfg_list}"
            )
        try:
            super().merge_from_list(cfg_list)
        except (KeyError, ValueError, AssertionError) as e:
            raise ConfigError(f"command line: {_message(e, self)}") from None


def upgrade_renamed_keys(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """A config that says it was written before ``VERSION`` 2 (the full ``config.yaml`` dump of an
    earlier run), with the keys renamed since moved to their new names, so that it keeps loading.
    CRD's and WCoRD's bank options became one node: the values of the method the config trains
    win. A file without ``VERSION`` is taken as current, as Detectron2 takes it; its old keys stay
    errors that name the new ones."""
    version = cfg_dict.get("VERSION")
    if not isinstance(version, int) or version >= 2:
        return cfg_dict
    distiller = cfg_dict.get("DISTILLER", {})
    trained = str(distiller.get("NAME", "")).upper()
    moved: dict[str, Any] = {}
    for old_key, new_key in CfgNode._RENAMED_KEYS.items():
        _, method, old = old_key.split(".")
        node = distiller.get(method, {})
        if old in node:
            value = node.pop(old)
            if method == trained or new_key not in moved:
                moved[new_key] = value
    for new_key, value in moved.items():
        _, node_name, name = new_key.split(".")
        distiller.setdefault(node_name, {})[name] = value
    return {**cfg_dict, "VERSION": 2}


def _message(error: Exception, cfg: CfgNode | None = None) -> str:
    """yacs' message on one line, with its wording for unknown keys made plain and, given the
    ``cfg`` merged into, the existing keys closest to an unknown one."""
    text = " ".join(str(error.args[0] if error.args else error).split())
    unknown = re.fullmatch(r"Non-existent (?:config )?key: (\S+)", text)
    if not unknown:
        return text
    key = unknown.group(1)
    # Keys of the same depth only, and a high cutoff: sibling keys share their node's name, which
    # makes every SOLVER.* key look close to any other.
    same_depth = [k for k in _full_keys(cfg) if k.count(".") == key.count(".")] if cfg else []
    return f"unknown config key {key}" + did_you_mean(key, same_depth, cutoff=0.8)


def _full_keys(node: _YacsCfgNode, prefix: str = "") -> list[str]:
    """Every key of ``node`` and of its sub-nodes, dotted (``SOLVER``, ``SOLVER.BASE_LR``)."""
    keys = []
    for key, value in node.items():
        keys.append(prefix + key)
        if isinstance(value, _YacsCfgNode):
            keys += _full_keys(value, f"{prefix}{key}.")
    return keys


def load_yaml_with_base(filename: str) -> dict[str, Any]:
    """Read a YAML file and recursively merge it over the files its ``_BASE_`` key names.

    ``_BASE_`` is a path relative to the file that names it (or absolute), or a list of such paths
    merged in order.
    """
    cfg = read_yaml_mapping(filename)
    bases = cfg.pop(BASE_KEY, None)
    if bases is None:
        return cfg
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        path = os.path.join(os.path.dirname(filename), os.path.expanduser(base))
        if not os.path.isfile(path):
            raise ConfigError(f"{filename}: _BASE_ file not found: {path}")
        _merge_dicts(load_yaml_with_base(path), merged)
    _merge_dicts(cfg, merged)
    return merged


def read_yaml_mapping(filename: str | os.PathLike, kind: str = "config file") -> dict[str, Any]:
    """The mapping a YAML file holds, with one-line errors (naming ``kind``) for a missing file,
    invalid YAML or anything but a mapping."""
    if not os.path.isfile(filename):
        raise ConfigError(f"{kind} not found: {filename}")
    with open(filename, "rb") as f:  # bytes: PyYAML decodes them (UTF-8/16) and names bad ones
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(_yaml_message(filename, e)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: a {kind} must be a mapping of keys to values")
    return data


def _yaml_message(filename: str | os.PathLike, error: yaml.YAMLError) -> str:
    """PyYAML's error on one line, its place first as editors and compilers write it (1-based):
    ``f.yaml:4:11: not valid YAML: mapping values are not allowed here``, then the construct it
    was reading where PyYAML names one (``(while scanning a quoted scalar at line 2, column 9)``).
    """
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return f"{filename}: not valid YAML: {' '.join(str(error).split())}"  # e.g. undecodable
    mark = error.problem_mark
    text = f"{filename}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {error.problem}"
    if error.context:
        where = error.context_mark
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        text += f" ({error.context}{at})"
    return " ".join(text.split())


def require_choice(key: str, value: str, choices: Sequence[str]) -> None:
    """Refuse, in one line naming the config ``key``, a ``value`` that is not one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _merge_dicts(src: dict, dst: dict) -> None:
    """Deep-merge ``src`` into ``dst``: nested mappings merge, everything else replaces."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge_dicts(value, dst[key])
        else:
            dst[key] = copy.deepcopy(value)
