#!/usr/bin/env python
"""Tabulate kdzoo runs: method, teacher, student, seed, iterations, last and best top-1.

    python tools/collect_results.py output/cifar100/*/* [--markdown]

Each RUN_DIR is a kdzoo output folder (``config.yaml`` and ``metrics.json``). Top-1 is the test
accuracy in %: "last" is the final evaluation (what the CRD papers report), "best" the highest one
logged. ``--markdown`` prints a GitHub table, ready for MODEL_ZOO.md.
"""

import argparse
import sys

from tabulate import tabulate

from kdzoo.reports import summarize_run
from kdzoo.utils.errors import KdzooError


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
    try:
        rows = [summarize_run(d) for d in args.run_dirs]
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(2)
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
