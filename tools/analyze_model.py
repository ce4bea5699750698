#!/usr/bin/env python
"""Print what a distillation config costs: parameters, FLOPs and memory sizes.

    python tools/analyze_model.py --config configs/cifar100/cocord/resnet32x4_resnet8x4.yaml
    python tools/analyze_model.py --config F --num-samples 1281167 --json cost.json [KEY VALUE ...]

The teacher and the student are built by name with random weights (no weight file is read), and
the distiller's dataset-sized state (CRD's memory bank) is sized for ``--num-samples`` training
images: CIFAR-100's 50,000 by default. FLOPs are fvcore's (a multiply-add counts as one) for one
image at the backbone's native size.
"""

import json
import sys

from tabulate import tabulate

from kdzoo.config import OverridesArgumentParser, get_cfg
from kdzoo.reports import CIFAR100_TRAIN_SIZE, analyze
from kdzoo.utils.errors import KdzooError


def main() -> None:
    parser = OverridesArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", "--config-file", dest="config_file", required=True)
    parser.add_argument(
        "--num-samples",
        type=int,
        default=CIFAR100_TRAIN_SIZE,
        help="training-set size that dataset-sized memories are built for (default: CIFAR-100)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    try:
        args = parser.parse_args()  # KEY VALUE overrides, anywhere among the flags, in args.opts
        cfg = get_cfg()
        cfg.merge_from_file(args.config_file)
        cfg.merge_from_list(args.opts)
        result = analyze(cfg, args.num_samples)
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(2)

    print(f"Distiller {cfg.DISTILLER.NAME!r}; FLOPs: fvcore, one image at the native size")
    print("\nBackbones")
    print(tabulate(result["backbones"], headers="keys", intfmt=",", tablefmt="github"))
    extra = result["extra_modules"]
    print(f"\nDistiller modules besides the backbones ({sum(r['params'] for r in extra):,} params)")
    print(tabulate(extra, headers="keys", intfmt=",", tablefmt="github") if extra else "none")
    memories = result["memories"]
    total_mib = sum(r["MiB"] for r in memories)
    print(f"\nMemories ({total_mib:.2f} MiB; dataset-sized ones for {args.num_samples:,} samples)")
    print(
        tabulate(memories, headers="keys", intfmt=",", floatfmt=".2f", tablefmt="github")
        if memories
        else "none"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": args.config_file, "num_samples": args.num_samples, **result}, f)


if __name__ == "__main__":
    main()
