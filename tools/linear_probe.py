#!/usr/bin/env python
"""Linear probing of a frozen student on STL-10, Tiny-ImageNet or CIFAR-100.

    tools/linear_probe.py --config output/run/config.yaml --weights output/run/model_final.pth \\
        --dataset stl10 --data-root datasets/stl10 --output-dir output/run/probe_stl10

The student is built from ``--config`` (``MODEL.STUDENT.NAME``, ``MODEL.NUM_CLASSES``, and the
``INPUT.PIXEL_MEAN``/``PIXEL_STD`` it was trained with; kdzoo's defaults without one), or named
with ``--backbone``. Features are cached in ``--output-dir``; the result goes to
``<output-dir>/linear_probe_<dataset>.json``. See :mod:`kdzoo.evaluation.linear_probe`.
"""

import argparse
import hashlib
import json
import os
import sys

from kdzoo.config import get_cfg
from kdzoo.distillers import build_network
from kdzoo.evaluation import PROBE_DATASETS, run_linear_probe
from kdzoo.utils.errors import KdzooError
from kdzoo.utils.logger import setup_logger


def sha256(path: str) -> str:
    """Hex digest of a file: the cache key of the weights it holds."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def probe(args: argparse.Namespace) -> dict:
    """Build and load the student, probe it, write and return the result."""
    cfg = get_cfg()
    if args.config:
        cfg.merge_from_file(args.config)
    name = args.backbone or cfg.MODEL.STUDENT.NAME
    num_classes = args.num_classes or cfg.MODEL.NUM_CLASSES
    model = build_network(name, args.weights, num_classes)  # a file or a torchvision name
    os.makedirs(args.output_dir, exist_ok=True)
    setup_logger(args.output_dir)  # the feature pass's progress, on the console and in log.txt
    result = run_linear_probe(
        model,
        {
            "backbone": name,
            "weights_sha256": sha256(args.weights) if os.path.isfile(args.weights) else None,
            "weights": args.weights,
        },
        args.dataset,
        args.data_root,
        args.output_dir,
        list(cfg.INPUT.PIXEL_MEAN),
        list(cfg.INPUT.PIXEL_STD),
        device=args.device,
        num_workers=args.num_workers,
        download=args.download,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        seed=args.seed,
    )
    result.update(
        backbone=name, weights=args.weights, dataset=args.dataset, epochs=args.epochs, lr=args.lr
    )
    with open(os.path.join(args.output_dir, f"linear_probe_{args.dataset}.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="kdzoo checkpoint or backbone weights")
    parser.add_argument("--dataset", required=True, choices=PROBE_DATASETS)
    parser.add_argument("--data-root", required=True, help="folder of the dataset")
    parser.add_argument("--output-dir", required=True, help="feature cache and result")
    parser.add_argument("--config", default="", help="the student's training config")
    parser.add_argument("--backbone", default="", help="registry name (overrides --config)")
    parser.add_argument("--num-classes", type=int, default=0, help="the student's classifier size")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.1, help="on standardised features")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--num-workers", type=int, default=4, help="decoders (Tiny-ImageNet)")
    parser.add_argument("--download", action="store_true", help="fetch STL-10 or CIFAR-100")
    args = parser.parse_args(argv)
    try:
        result = probe(args)
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(
        f"{result['backbone']} on {args.dataset}: linear probe top-1 {result['top1']:.2f} "
        f"({result['num_train']} train / {result['num_test']} test images, "
        f"{result['feature_dim']}-d features{', cached' if result['reused_cache'] else ''})"
    )


if __name__ == "__main__":
    main()
