#!/usr/bin/env python
"""Tabulate kdzoo runs: method, teacher, student, seed, iterations, last and best top-1.

    python tools/collect_results.py output/cifar100/*/* [--markdown]

Each RUN_DIR is a kdzoo output folder (``config.yaml`` and ``metrics.json``), named in the table by
the shortest end of its path that tells it from the others (``kd/resnet56_resnet20``,
``crd/resnet56_resnet20``). A RUN_DIR that is not a run (an evaluation's folder, a run that failed
before training) is skipped with a note on stderr; only if none is a run is it an error. Top-1 is
the test accuracy in %: "last" is the final evaluation (what the CRD papers report), "best" the
highest one logged. ``--markdown`` prints a GitHub table, ready for MODEL_ZOO.md.
"""

import argparse
import sys

from tabulate import tabulate

from kdzoo.reports import summarize_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="kdzoo output folders (or their metrics.json)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    args = parser.parse_args()
    rows, skipped = summarize_runs(args.run_dirs)
    if not rows:
        if len(skipped) == 1:
            [(run_dir, reason)] = skipped.items()
            error = f"{run_dir} is not a kdzoo run: {reason}"
        else:
            reasons = "; ".join(f"{d}: {r}" for d, r in skipped.items())
            error = f"none of the {len(skipped)} RUN_DIRs is a kdzoo run: {reasons}"
        print(f"kdzoo: error: {error}", file=sys.stderr)
        sys.exit(2)
    for run_dir, reason in skipped.items():
        print(f"kdzoo: skipped {run_dir}: {reason}", file=sys.stderr)
    print(
        tabulate(
            rows,
            headers="keys",
            tablefmt="github" if args.markdown else "simple",
            floatfmt=".2f",
            missingval="-",
        )
    )


if __name__ == "__main__":
    main()
