#!/usr/bin/env python
"""The offline quickstart: a real distillation on real images that ship with scikit-learn.

1. evaluates the resnet32 teacher kept in model_zoo/ (trained by kdzoo on the digits),
2. trains a resnet8 student alone (the baseline),
3. distills the resnet8 student from the teacher with KD, on the same 10-epoch schedule,
and prints the three accuracies. Each step is a ``tools/train_net.py`` command, printed before it
runs. Outputs go to ``output/quickstart/`` (this script's own folder, emptied first).
"""

import os
import shlex
import shutil
import sys

from tabulate import tabulate

from kdzoo.engine import default_argument_parser, run
from kdzoo.model_zoo import get_checkpoint_url
from kdzoo.reports import summarize_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join("output", "quickstart")
TEACHER = os.path.relpath(get_checkpoint_url("digits/resnet32_vanilla"), ROOT)


def train_net(*argv: str) -> dict | None:
    print("\n$ python tools/train_net.py " + " ".join(shlex.quote(a) for a in argv), flush=True)
    return run(default_argument_parser().parse_args(list(argv)))


def final_top1(output_dir: str) -> float:
    return summarize_run(output_dir)["last_top1"]


def main() -> None:
    os.chdir(ROOT)
    shutil.rmtree(OUT, ignore_errors=True)
    teacher = train_net(
        "--config",
        "configs/digits/vanilla/resnet32.yaml",
        "--eval-only",
        "MODEL.STUDENT.WEIGHTS",
        TEACHER,
        "OUTPUT_DIR",
        f"{OUT}/teacher",
    )
    baseline_dir, kd_dir = f"{OUT}/resnet8_vanilla", f"{OUT}/resnet8_kd"
    train_net("--config", "configs/digits/vanilla/resnet8.yaml", "OUTPUT_DIR", baseline_dir)
    train_net("--config", "configs/digits/kd/resnet32_resnet8.yaml", "OUTPUT_DIR", kd_dir)
    rows = [
        ["teacher resnet32 (model_zoo)", f"{teacher['top1']:.2f}"],
        ["student resnet8, trained alone", f"{final_top1(baseline_dir):.2f}"],
        ["student resnet8, distilled with KD", f"{final_top1(kd_dir):.2f}"],
    ]
    print("\nTest top-1 (%) on the 355 held-out digits:")
    print(tabulate(rows, headers=["model", "top-1"], tablefmt="github"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
