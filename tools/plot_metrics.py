#!/usr/bin/env python
"""Plot the training curves of kdzoo runs into one PNG.

    python tools/plot_metrics.py output/cifar100/kd/resnet56_resnet20 output/cifar100/crd/... \\
        --output curves.png [--keys loss_cls loss_kd lr test/top1]

One subplot per metric against the iteration (by default every loss term, ``total_loss``, ``lr``
and ``test/top1``), one line per run (a dot where a run logged a metric once), labelled by the
shortest end of its path that tells it from the others: ``kd/resnet56_resnet20`` and
``crd/resnet56_resnet20`` where only the method's folder differs.
"""

import argparse
import sys

from kdzoo.reports import plot_runs, run_labels
from kdzoo.utils.errors import KdzooError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="kdzoo output folders (or their metrics.json)",
    )
    parser.add_argument("--output", required=True, help="PNG file to write")
    parser.add_argument("--keys", nargs="+", metavar="KEY", help="metrics.json keys to plot")
    args = parser.parse_args()
    try:
        keys = plot_runs(args.run_dirs, args.output, args.keys)
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(2)
    runs = len(set(run_labels(args.run_dirs)))  # a run given twice is drawn once
    print(f"Wrote {args.output}: {', '.join(keys)} for {runs} run(s)")


if __name__ == "__main__":
    main()
