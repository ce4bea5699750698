#!/usr/bin/env python
"""Export the student of a kdzoo checkpoint as a plain backbone state_dict.

    tools/export_backbone.py --input output/run/model_final.pth --output student.pth

``--format torchvision`` (the default) writes the student's ``state_dict`` alone, which
``build_backbone(name).load_state_dict`` (and, for ResNets, torchvision's models) takes strictly.
An existing output file is never replaced unless ``--overwrite`` is given.
"""

import argparse
import os
import sys

from kdzoo.checkpoint import atomic_save, extract_backbone_state, load_file
from kdzoo.utils.errors import KdzooError


def export(input_path: str, output_path: str, overwrite: bool = False) -> int:
    """Write the backbone state of ``input_path`` to ``output_path``; returns the tensor count."""
    if os.path.exists(output_path) and not overwrite:
        raise KdzooError(f"{output_path} exists; pass --overwrite to replace it")
    state = extract_backbone_state(load_file(input_path), input_path)
    atomic_save(state, output_path)
    return len(state)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="kdzoo checkpoint or backbone weights")
    parser.add_argument("--output", required=True, help="file to write")
    parser.add_argument("--format", choices=["torchvision"], default="torchvision")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    try:
        count = export(args.input, args.output, args.overwrite)
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {count} tensors to {args.output}")


if __name__ == "__main__":
    main()
