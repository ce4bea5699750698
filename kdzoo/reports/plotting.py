"""Training curves of kdzoo runs: each metric against the iteration, one line per run, labelled
by the shortest end of the run's path that tells it from the others (:func:`run_labels`).

Figures are drawn on matplotlib's Agg canvas directly, without pyplot, so plotting needs no
display and leaves the global matplotlib state of a calling program alone.
"""

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kdzoo.utils.errors import KdzooError

from .results import TOP1_KEY, read_metrics, run_labels


def default_keys(runs: dict[str, list[dict]]) -> list[str]:
    """Every loss term any run logged (``loss_*``, then ``total_loss``), ``lr`` and test top-1."""
    logged = {key for records in runs.values() for record in records for key in record}
    losses = sorted(k for k in logged if k.startswith("loss_"))
    return [k for k in [*losses, "total_loss", "lr", TOP1_KEY] if k in logged]


def curve(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """``(iterations, values)`` of the records that carry ``key``."""
    points = [(r["iteration"], r[key]) for r in records if key in r and "iteration" in r]
    return [i for i, _ in points], [v for _, v in points]


def plot_runs(
    run_dirs: list[str | Path], output: str | Path, keys: list[str] | None = None
) -> list[str]:
    """Draw one subplot per metric of ``keys`` (default: :func:`default_keys`) for every run and
    save the figure as ``output`` (a PNG). Returns the keys drawn."""
    runs = {label: read_metrics(d) for label, d in zip(run_labels(run_dirs), run_dirs, strict=True)}
    keys = keys or default_keys(runs)
    if not keys:
        raise KdzooError("the runs logged nothing to plot")
    for key in keys:
        if not any(curve(records, key)[0] for records in runs.values()):
            raise KdzooError(f"no run logged {key!r}")
    draw_runs(runs, keys).savefig(output, dpi=100)
    return keys


def draw_runs(runs: dict[str, list[dict]], keys: list[str]) -> Figure:
    """The figure of :func:`plot_runs`: one subplot per key, one line per run (``{label:
    records}``), in the same colour in every subplot."""
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(5 * cols, 3.5 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys, strict=False):
        # One colour per run in every subplot, also where only some runs logged the key.
        for color, (label, records) in enumerate(runs.items()):
            iterations, values = curve(records, key)
            if iterations:
                # A line through one point is invisible (a run evaluated once): mark the point.
                marker = "o" if len(iterations) == 1 else None
                ax.plot(iterations, values, label=label, color=f"C{color % 10}", marker=marker)
        if key == "lr":
            ax.set_yscale("log")  # step schedules span decades
        ax.set_title(key)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    return fig
