"""Reading finished (or running) kdzoo run directories: their metrics and what they trained.

A run directory holds ``config.yaml`` (the full merged config) and ``metrics.json`` (one JSON
object per line; training lines carry ``iteration``, the losses and ``lr``, evaluation lines
``test/top1``), as :class:`~kdzoo.engine.Trainer` writes them; their paths come from
:class:`~kdzoo.checkpoint.RunFolder`, the one place that knows a run folder's file names.
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path

from kdzoo.checkpoint import RunFolder
from kdzoo.config.config import read_yaml_mapping
from kdzoo.utils.errors import KdzooError

TOP1_KEY = "test/top1"


def run_folder_of(path: str | Path) -> Path:
    """The run folder ``path`` names: a run folder itself, or the ``metrics.json`` inside one
    (what a user may pass after looking at the file)."""
    path = Path(path)
    if path.is_file() and Path(RunFolder(path.parent).metrics_file) == path:
        return path.parent
    return path


def run_labels(run_dirs: Iterable[str | Path]) -> list[str]:
    """A label per run directory, in order: the shortest end of its path that no other directory's
    path ends with. Folder names where they differ; ``kd/resnet56_resnet20`` and
    ``crd/resnet56_resnet20`` for two runs of the same pair with different methods. A directory
    given twice (also as its ``metrics.json``) gets the same label twice."""
    paths = [Path(os.path.abspath(run_folder_of(d))).parts for d in run_dirs]
    labels = []
    for path in paths:
        others = {other for other in paths if other != path}
        depth = next(
            (k for k in range(1, len(path)) if all(o[-k:] != path[-k:] for o in others)),
            len(path),
        )
        labels.append(str(Path(*path[-depth:])))
    return labels


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/metrics.json`` (``run_dir`` may be that file), in the order they
    were written."""
    run_dir = run_folder_of(run_dir)
    path = Path(RunFolder(run_dir).metrics_file)
    if not path.is_file():
        raise KdzooError(f"no {path.name} in {run_dir}")
    records = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise KdzooError(f"{path}:{number}: not a JSON object") from None
    return records


def read_run_config(run_dir: str | Path) -> dict:
    """``run_dir/config.yaml`` as plain data (safe_load: a run directory is user input)."""
    path = Path(RunFolder(run_dir).config_file)
    if not path.is_file():
        raise KdzooError(f"no {path.name} in {run_dir}")
    return read_yaml_mapping(path, kind="run config")


def summarize_run(run_dir: str | Path) -> dict:
    """Method, models, seed, iterations trained and the last and best test top-1 (%) of one run.

    ``iterations`` counts from 1 (the engine logs 0-based iterations); ``teacher`` is ``None`` for
    runs without one, and a top-1 is ``None`` when the run has not been evaluated yet. The best is
    the maximum over the evaluations logged, so it is also right for runs written before
    ``test/best_top1`` existed.
    """
    run_dir = run_folder_of(run_dir)
    cfg = read_run_config(run_dir)
    records = read_metrics(run_dir)
    model = cfg.get("MODEL", {})
    top1 = [r[TOP1_KEY] for r in records if TOP1_KEY in r]
    iterations = [r["iteration"] for r in records if "iteration" in r]
    return {
        "run": Path(run_dir).name,
        "distiller": cfg.get("DISTILLER", {}).get("NAME", ""),
        "teacher": model.get("TEACHER", {}).get("NAME") or None,  # vanilla runs have none
        "student": model.get("STUDENT", {}).get("NAME", ""),
        "seed": cfg.get("SEED"),
        "iterations": max(iterations) + 1 if iterations else 0,
        "last_top1": top1[-1] if top1 else None,
        "best_top1": max(top1) if top1 else None,
    }


def not_a_run(run_dir: str | Path) -> str | None:
    """Why ``run_dir`` is not a run folder (``"no metrics.json"``: an evaluation's folder, a run
    that failed before training), or ``None`` if it holds both files a summary reads."""
    run_dir = run_folder_of(run_dir)
    if not run_dir.exists():
        return "no such folder"
    if not run_dir.is_dir():
        return "not a folder"
    files = RunFolder(run_dir)
    missing = [
        Path(f).name for f in (files.config_file, files.metrics_file) if not os.path.isfile(f)
    ]
    return f"no {' or '.join(missing)}" if missing else None


def summarize_runs(run_dirs: Iterable[str | Path]) -> tuple[list[dict], dict[str, str]]:
    """:func:`summarize_run` of each directory that is a run, labelled by :func:`run_labels` among
    them, and, for every other one, why it is not (``{run_dir: reason}``: a missing file, or the
    error of an unreadable ``metrics.json`` or ``config.yaml``)."""
    summaries, runs, skipped = [], [], {}
    for run_dir in run_dirs:
        try:
            reason = not_a_run(run_dir)
            if reason is None:
                summaries.append(summarize_run(run_dir))
                runs.append(run_dir)
        except KdzooError as e:  # a metrics.json or config.yaml that cannot be read
            reason = str(e)
        if reason is not None:
            skipped[str(run_dir)] = reason
    for summary, label in zip(summaries, run_labels(runs), strict=True):
        summary["run"] = label
    return summaries, skipped
