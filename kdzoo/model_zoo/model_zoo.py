"""The model zoo by name, as Detectron2's: shipped configs, and the manifest of trained models.

A name is one of two things:

- a **config**: its path under ``configs/``, ending in ``.yaml``
  (``"cifar100/kd/resnet56_resnet20.yaml"``); a leading ``configs/`` is accepted too, so that the
  paths the README spells from a checkout (``configs/cifar100/...``) also work from a wheel;
- a **model** of the manifest (``"digits/resnet32_vanilla"``): its config is the one that trained
  it, and its checkpoint is :func:`get_checkpoint_url`'s answer.

The files live in one of two places, and the functions find them in either:

- a source checkout (``pip install -e .``): ``configs/`` and ``model_zoo/`` (``manifest.json``, the
  checkpoints it lists) beside the ``kdzoo`` package folder;
- an installed wheel: setup.py copies them into this package at build time, ``configs/`` to
  ``kdzoo/model_zoo/configs/`` (Detectron2's place) and the manifest and the checkpoints it lists
  from ``model_zoo/`` to ``kdzoo/model_zoo/``. The manifest's paths (relative to the checkout)
  are mapped the same way, so one manifest serves both.
"""

import difflib
import json
from pathlib import Path, PurePosixPath

from kdzoo.config import CfgNode, get_cfg
from kdzoo.utils.errors import KdzooError

#: This package's folder; in an installed wheel it also holds the configs and the manifest.
PACKAGE_DIR = Path(__file__).resolve().parent
#: The checkout that holds ``kdzoo/``, ``configs/`` and ``model_zoo/`` (in a source checkout).
REPO_ROOT = PACKAGE_DIR.parents[1]
CONFIG_SUFFIX = ".yaml"


def _installed() -> bool:
    """True when this package carries the shipped files itself (a wheel), False in a checkout."""
    return (PACKAGE_DIR / "configs").is_dir()


def _locate(checkout_path: str) -> Path:
    """Where this installation keeps a file that the manifest names by its path in a checkout
    (``configs/...``, ``model_zoo/...``)."""
    if not _installed():
        return REPO_ROOT / checkout_path
    folder, _, rest = checkout_path.partition("/")
    return PACKAGE_DIR / (rest if folder == "model_zoo" else checkout_path)


def configs_dir() -> Path:
    """The folder of the shipped configs (``configs/`` of the checkout, or of the wheel)."""
    return _locate("configs")


def _entries() -> dict[str, dict]:
    """The manifest's entries by name (read on every call: it is small and may be edited)."""
    manifest = _locate("model_zoo/manifest.json")
    if not manifest.is_file():
        raise KdzooError(
            f"model zoo manifest not found at {manifest}: this kdzoo is neither a source checkout "
            "nor a wheel built by its setup.py"
        )
    with open(manifest) as f:
        return {entry["name"]: entry for entry in json.load(f)["models"]}


def list_models() -> list[str]:
    """The names of every model in the zoo."""
    return sorted(_entries())


def list_configs() -> list[str]:
    """The names of every shipped config (paths under ``configs/``, ``_BASE_`` files included)."""
    root = configs_dir()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*" + CONFIG_SUFFIX))


def _close_matches(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (close matches: {', '.join(close)})" if close else ""


def _entry(name: str, configs_too: bool = False) -> dict:
    entries = _entries()
    if name in entries:
        return entries[name]
    known = sorted(entries) + (list_configs() if configs_too else [])
    models = ", ".join(sorted(entries))
    names = (
        f"a model of the manifest ({models}) or a config's path under configs/ ending in "
        f"{CONFIG_SUFFIX} (kdzoo.model_zoo.list_configs() lists them)"
        if configs_too
        else f"a model of the manifest ({models})"
    )
    raise KdzooError(
        f"unknown model zoo name {name!r}{_close_matches(name, known)}; a name is {names}"
    )


def _config_path(name: str) -> Path:
    """The shipped config named ``name`` (a path under ``configs/``, ending in ``.yaml``)."""
    relative = PurePosixPath(name.removeprefix("configs/"))
    path = configs_dir() / relative
    if relative.is_absolute() or ".." in relative.parts or not path.is_file():
        known = list_configs()
        raise KdzooError(
            f"unknown model zoo config {name!r}{_close_matches(str(relative), known)}; "
            f"kdzoo.model_zoo.list_configs() lists the {len(known)} configs in {configs_dir()}"
        )
    return path


def get_config_file(name: str) -> str:
    """Absolute path of the config ``name``: a config's name
    (``"cifar100/kd/resnet56_resnet20.yaml"``), or a model of the manifest
    (``"digits/resnet32_vanilla"``), whose training config it is."""
    if name.endswith(CONFIG_SUFFIX):
        return str(_config_path(name))
    path = _locate(_entry(name, configs_too=True)["config"])
    if not path.is_file():
        raise KdzooError(f"config of model zoo entry {name!r} not found at {path}")
    return str(path)


def get_config(name: str) -> CfgNode:
    """The full config (defaults merged with the file and its ``_BASE_`` files) of ``name`` (as
    :func:`get_config_file` takes it); not frozen, so that callers can override keys."""
    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(name))
    return cfg


def get_checkpoint_url(name: str) -> str:
    """The checkpoint of model ``name``: a URL as the manifest gives it, or an absolute path."""
    checkpoint = _entry(name)["checkpoint"]
    if "://" in checkpoint:
        return checkpoint
    path = _locate(checkpoint)
    if not path.is_file():
        raise KdzooError(f"checkpoint of model zoo entry {name!r} not found at {path}")
    return str(path)
