"""Sweeps: one config file, many runs that differ in a few keys (the paper's ablation grids).

A sweep file is YAML with three keys::

    config: ../../configs/cifar100/cocord/resnet110_resnet32.yaml  # relative to this file
    runs:      # optional: named override sets, {name: {KEY: value, ...}}
      teacher_dictionary: {DISTILLER.COCORD.DICTIONARY_ENCODER: teacher}
    grid:      # optional: every combination of these values (a cartesian product)
      DISTILLER.COCORD.SLOW_MOMENTUM: [0.9, 0.99]
      SEED: [0, 1]

Each of ``runs`` (one unnamed empty run when absent) is combined with every point of ``grid``; a
run's name is its ``runs`` name, then ``KEY=value`` for each grid key (the key's last component).
Runs write to ``<OUTPUT_DIR of the config>/<sweep file name>/<run name>`` so a sweep's folders sit
together for ``tools/collect_results.py``.
"""

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdzoo.utils.errors import ConfigError

from . import get_cfg
from .config import CfgNode, read_yaml_mapping

_SWEEP_KEYS = {"config", "runs", "grid"}


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its name, and the ``KEY VALUE`` overrides it adds to the config."""

    name: str
    overrides: tuple[tuple[str, Any], ...]

    def opts(self) -> list[str]:
        """The overrides as command-line strings: ``[KEY, VALUE, ...]`` for ``train_net.py``."""
        return [s for key, value in self.overrides for s in (key, _to_command_line(value))]


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: the config every run starts from, and the runs."""

    name: str
    config_file: str
    runs: tuple[SweepRun, ...]

    def run_config(self, run: SweepRun, opts: list[str] | tuple[str, ...] = ()) -> CfgNode:
        """The full config of ``run`` (then ``opts``, command-line overrides), with its
        OUTPUT_DIR; raises :class:`ConfigError` naming any unknown key or wrong value."""
        cfg = get_cfg()
        cfg.merge_from_file(self.config_file)
        try:
            cfg.merge_from_list([x for kv in run.overrides for x in kv])
        except ConfigError as e:
            raise ConfigError(f"sweep {self.name}, run {run.name}: {e}") from None
        cfg.merge_from_list(list(opts))
        cfg.OUTPUT_DIR = os.path.join(cfg.OUTPUT_DIR, self.name, run.name)
        return cfg


def load_sweep(path: str | os.PathLike, seeds: list[int] | tuple[int, ...] = ()) -> Sweep:
    """Parse and expand a sweep file (see the module docstring); ``seeds`` adds a last grid
    axis, ``SEED``, so every run is repeated once per seed."""
    path = Path(path)
    spec = read_yaml_mapping(path, kind="sweep file")
    if "config" not in spec:
        raise ConfigError(f"{path}: a sweep file needs a 'config' key (the config file it varies)")
    unknown = set(spec) - _SWEEP_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown sweep keys {sorted(unknown)}; use {sorted(_SWEEP_KEYS)}"
        )
    named = spec.get("runs") or {"": {}}
    grid = spec.get("grid") or {}
    if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
        raise ConfigError(f"{path}: 'runs' maps run names to {{KEY: value}} mappings")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: 'grid' maps config keys to non-empty lists of values")
    if seeds:
        grid = {**grid, "SEED": list(seeds)}

    runs = []
    for run_name, fixed in named.items():
        for point in itertools.product(*grid.values()):
            varying = dict(zip(grid, point, strict=True))
            parts = [run_name] if run_name else []
            parts += [f"{key.split('.')[-1]}={value}" for key, value in varying.items()]
            runs.append(SweepRun(",".join(parts) or "default", tuple({**fixed, **varying}.items())))
    config_file = os.path.normpath(path.parent / spec["config"])
    return Sweep(path.stem, config_file, tuple(runs))


def _to_command_line(value: Any) -> str:
    # train_net.py reads each VALUE with literal_eval, falling back to the plain string.
    return value if isinstance(value, str) else repr(value)
