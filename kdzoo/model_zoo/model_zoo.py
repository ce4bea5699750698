"""The model zoo's manifest, ``model_zoo/manifest.json``, read by name (as Detectron2's).

Each entry names a model (``"digits/resnet32_vanilla"``), the config that trained it (a path
relative to the repository), its checkpoint (a path relative to the repository, or a URL), the
checkpoint's sha256, the top-1 (%) kdzoo measured and, where a paper reports the same setting,
the paper's top-1.

The configs and the manifest live in the repository, not in the installed package: this module
finds them beside the ``kdzoo`` package folder, which works from a source checkout (``pip install
-e .``, as the README installs kdzoo). A wheel installed elsewhere has no manifest to read.
"""

import json
from pathlib import Path

from kdzoo.config import CfgNode, get_cfg
from kdzoo.utils.errors import KdzooError

#: The checkout that holds ``kdzoo/``, ``configs/`` and ``model_zoo/``.
REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "model_zoo" / "manifest.json"


def _entries() -> dict[str, dict]:
    """The manifest's entries by name (read on every call: it is small and may be edited)."""
    if not MANIFEST.is_file():
        raise KdzooError(
            f"model zoo manifest not found at {MANIFEST}: kdzoo.model_zoo works from a source "
            "checkout of kdzoo (pip install -e .)"
        )
    with open(MANIFEST) as f:
        return {entry["name"]: entry for entry in json.load(f)["models"]}


def _entry(name: str) -> dict:
    entries = _entries()
    if name not in entries:
        raise KdzooError(f"unknown model zoo name {name!r}; known: {', '.join(sorted(entries))}")
    return entries[name]


def list_models() -> list[str]:
    """The names of every model in the zoo."""
    return sorted(_entries())


def get_config_file(name: str) -> str:
    """Absolute path of the config file that trained model ``name``."""
    path = REPO_ROOT / _entry(name)["config"]
    if not path.is_file():
        raise KdzooError(f"config of model zoo entry {name!r} not found at {path}")
    return str(path)


def get_config(name: str) -> CfgNode:
    """The full config (defaults merged with the file and its ``_BASE_``) of model ``name``;
    not frozen, so that callers can override keys."""
    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(name))
    return cfg


def get_checkpoint_url(name: str) -> str:
    """The checkpoint of model ``name``: a URL as the manifest gives it, or an absolute path."""
    checkpoint = _entry(name)["checkpoint"]
    if "://" in checkpoint:
        return checkpoint
    return str(REPO_ROOT / checkpoint)
