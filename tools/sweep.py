#!/usr/bin/env python
"""Run every configuration of a sweep file, one ``tools/train_net.py`` process after another.

    python tools/sweep.py sweeps/cifar100/cocord/momenta.yaml [--dry-run] [--num-gpus N] \
        [--seeds 0,1,2] [KEY VALUE ...]

The sweep file (format in ``kdzoo/config/sweep.py``) names a config and the overrides of each run;
trailing ``KEY VALUE`` pairs apply to every run (``DATASETS.ROOT``, a shorter schedule, ...). All
runs, and the weight files they name, are checked before the first starts (``--dry-run`` too). A
run whose folder holds its final checkpoint is skipped and an unfinished one resumes, so an
interrupted sweep continues where it stopped when started again. Tabulate the results with
``python tools/collect_results.py OUTPUT_DIR/<sweep>/*``.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from kdzoo.checkpoint import RunFolder
from kdzoo.config.sweep import load_sweep
from kdzoo.distillers import check_weight_files
from kdzoo.utils.errors import KdzooError

TRAIN_NET = Path(__file__).resolve().parent / "train_net.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_file", metavar="SWEEP", help="a sweep YAML file")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per run")
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(seed) for seed in text.split(",")],
        default=[],
        metavar="S1,S2,..",
        help="repeat each run once per seed (a SEED grid axis)",
    )
    # Trailing KEY VALUE pairs may come before or after the flags: they are what is left over.
    args, args.opts = parser.parse_known_args()
    try:
        sweep = load_sweep(args.sweep_file, args.seeds)
        configs = [sweep.run_config(run, args.opts) for run in sweep.runs]
        for run, cfg in zip(sweep.runs, configs, strict=True):
            try:  # a teacher file missing for run 5 must not wait for runs 1-4 to finish
                check_weight_files(cfg)
            except KdzooError as e:
                raise KdzooError(f"sweep {sweep.name}, run {run.name}: {e}") from None
        output_dirs = [cfg.OUTPUT_DIR for cfg in configs]
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(2)

    for run, output_dir in zip(sweep.runs, output_dirs, strict=True):
        if RunFolder(output_dir).is_finished():
            print(f"[sweep] {run.name}: finished before, skipped", flush=True)
            continue
        command = [sys.executable, str(TRAIN_NET), "--config", sweep.config_file, "--resume"]
        command += ["--num-gpus", str(args.num_gpus), *run.opts(), *args.opts]
        command += ["OUTPUT_DIR", output_dir]
        print(f"[sweep] {run.name}: {shlex.join(command)}", flush=True)
        if not args.dry_run:
            status = subprocess.run(command).returncode
            if status:
                print(f"kdzoo: error: sweep run {run.name} failed (exit {status})", file=sys.stderr)
                sys.exit(status)


if __name__ == "__main__":
    main()
