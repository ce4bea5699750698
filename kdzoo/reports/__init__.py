"""Reports: reading and summarising runs and configs, for the tools and for people.

What a configured distillation costs (:mod:`.analysis`), the metrics and summary of a run folder
(:mod:`.results`) and its training curves (:mod:`.plotting`). Reports sit at the top of kdzoo's
layers, beside the benchmarks: they may import every other kdzoo package, and none imports them.

:func:`plot_runs` is imported on first use, so that matplotlib (the ``plot`` extra) is needed only
to draw.
"""

from typing import Any

from .analysis import (
    CIFAR100_TRAIN_SIZE,
    analyze,
    backbone_rows,
    count_flops,
    count_parameters,
    extra_module_rows,
    fake_train_labels,
    memory_rows,
)
from .results import (
    TOP1_KEY,
    not_a_run,
    read_metrics,
    read_run_config,
    run_labels,
    summarize_run,
    summarize_runs,
)

__all__ = [
    "CIFAR100_TRAIN_SIZE",
    "TOP1_KEY",
    "analyze",
    "backbone_rows",
    "count_flops",
    "count_parameters",
    "extra_module_rows",
    "fake_train_labels",
    "memory_rows",
    "not_a_run",
    "plot_runs",
    "read_metrics",
    "read_run_config",
    "run_labels",
    "summarize_run",
    "summarize_runs",
]


def __getattr__(name: str) -> Any:
    if name == "plot_runs":
        from .plotting import plot_runs

        return plot_runs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
