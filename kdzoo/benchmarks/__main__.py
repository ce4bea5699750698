"""``python -m kdzoo.benchmarks --worker SECTION ARGS...``: one measurement in a fresh process."""

import json
import sys

from . import SECTIONS

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--worker":
        sys.exit(
            "usage: python -m kdzoo.benchmarks --worker SECTION ARGS... (use tools/benchmark.py)"
        )
    print(json.dumps(SECTIONS[sys.argv[2]].worker(*sys.argv[3:])))
