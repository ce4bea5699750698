#!/usr/bin/env python
"""Measure kdzoo's hot paths; print a table per section and optionally write JSON.

    python tools/benchmark.py [--only SECTION ...] [--json out.json] [--quick] [--device cpu]
                              [--pair TEACHER STUDENT] [--methods METHOD ...] [--repeat N]
                              [--opts KEY VALUE ...]

Sections (``kdzoo/benchmarks/``): ``data_path`` (on-device CIFAR augmentation vs torchvision's
per-image pipeline), ``crd`` (CRD's criterion vs the reference's gathered rows, time and peak
memory), ``training`` (images/s of every distiller through the whole engine, fp32/bf16,
channels_last; ``--pair`` and ``--methods`` choose what it trains, by default every method on
resnet32x4 -> resnet8x4; ``--repeat N`` reports the median of N timings; ``--opts`` overrides
config keys of every trainer it times), ``step_overhead`` (a full KD step over the sum of its
raw passes) and ``convolutions`` (KD's convolutions timed alone: the step's ceiling if every
other pass were free). The process runs with the config's CPU settings, as ``train_net.py``
does (``kdzoo.engine.setup_cpu``: ``CPU_THREADS``, ``CPU_KEEP_FREED_MEMORY``, after ``--opts``),
for every section. ``--quick`` uses small sizes and short timings (for tests). BENCHMARKS.md
records the numbers and the machine.
"""

import argparse
import json
import os
import platform

import torch
from tabulate import tabulate

from kdzoo.benchmarks import SECTIONS, training
from kdzoo.config import get_cfg
from kdzoo.engine import setup_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), nargs="+", help="sections to run")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, short timings")
    parser.add_argument(
        "--pair",
        nargs=2,
        default=training.PAIR,
        metavar=("TEACHER", "STUDENT"),
        help="the training section's pair (configs/cifar100/<method>/<teacher>_<student>.yaml)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=training.METHODS + training.BASELINES,
        default=training.METHODS,
        help="the training section's distillers (default: %(default)s)",
    )
    parser.add_argument(
        "--layouts",
        nargs="+",
        choices=training.LAYOUTS,
        default=training.LAYOUTS,
        help="the training section's memory layouts (default: both)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="the training section's timings per rate (median)"
    )
    parser.add_argument(
        "--opts",
        nargs="+",
        default=[],
        metavar="KEY VALUE",
        help="config overrides: the training section's trainers take them, and the process its "
        "CPU settings, e.g. CPU_KEEP_FREED_MEMORY False",
    )
    args = parser.parse_args()
    if len(args.opts) % 2:
        parser.error(f"--opts takes KEY VALUE pairs; got {len(args.opts)} words")
    cfg = get_cfg()
    cfg.merge_from_list(args.opts)
    setup_cpu(cfg)  # process-wide and irreversible: once, before any section measures
    device = torch.device(args.device)
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "device": str(device),
            "torch": torch.__version__,
        },
    }
    for name in args.only or sorted(SECTIONS):
        section = SECTIONS[name]
        options = {}
        if section is training:
            options = {
                "pair": tuple(args.pair),
                "methods": args.methods,
                "repeat": args.repeat,
                "layouts": tuple(args.layouts),
                "opts": tuple(args.opts),
            }
        results[name] = section.run(device, args.quick, **options)
        title, headers, rows = section.table(results[name])
        print(f"\n{title}\n" + tabulate(rows, headers=headers, tablefmt="github"), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
