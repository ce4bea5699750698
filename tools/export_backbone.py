#!/usr/bin/env python
"""Export the student of a kdzoo checkpoint as a torchvision or Detectron2 backbone.

    tools/export_backbone.py --input output/run/model_final.pth --output student.pth
    tools/export_backbone.py --input output/run/model_final.pth --output student_d2.pkl \\
        --format detectron2

``--format torchvision`` (the default) writes the student's ``state_dict`` alone, which
``build_backbone(name).load_state_dict`` (and, for ResNets, torchvision's models) takes strictly.
``--format detectron2`` takes a ResNet-50 student only and writes Detectron2's R50-C4 pickle, plus
``<output stem>.yaml``, the Detectron2 keys that fine-tuning it needs. An existing output file is
never replaced unless ``--overwrite`` is given, and on any error nothing is written.
"""

import argparse
import os
import sys

from kdzoo.checkpoint import (
    atomic_save,
    atomic_write_text,
    detectron2_arrays,
    detectron2_config_fragment,
    extract_backbone_state,
    load_file,
    save_detectron2_pickle,
)
from kdzoo.utils.errors import KdzooError


def output_paths(output_path: str, fmt: str) -> list[str]:
    """The files an export writes: the weights, then (Detectron2) the YAML fragment."""
    if fmt == "torchvision":
        return [output_path]
    stem, suffix = os.path.splitext(output_path)
    if suffix != ".pkl":  # Detectron2 unpickles a file only when its name ends in .pkl
        raise KdzooError(f"--format detectron2 needs an output ending in .pkl, not {output_path}")
    return [output_path, stem + ".yaml"]


def export(
    input_path: str, output_path: str, fmt: str = "torchvision", overwrite: bool = False
) -> tuple[int, list[str]]:
    """Write the backbone of ``input_path`` in format ``fmt``; returns the number of tensors
    exported and the paths written.

    Everything is checked before the first file is written.
    """
    paths = output_paths(output_path, fmt)
    for path in paths:
        if os.path.exists(path) and not overwrite:
            raise KdzooError(f"{path} exists; pass --overwrite to replace it")
    state = extract_backbone_state(load_file(input_path), input_path)
    if fmt == "torchvision":
        atomic_save(state, output_path)
        return len(state), paths
    arrays = detectron2_arrays(state, input_path)
    fragment = detectron2_config_fragment(output_path)
    save_detectron2_pickle(arrays, output_path)
    atomic_write_text(fragment, paths[1])
    return len(arrays), paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="kdzoo checkpoint or backbone weights")
    parser.add_argument("--output", required=True, help="file to write (.pkl for detectron2)")
    parser.add_argument(
        "--format",
        choices=["torchvision", "detectron2"],
        default="torchvision",
        help="plain state_dict, or Detectron2 R50-C4 pickle + YAML fragment (ResNet-50 only)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    try:
        count, paths = export(args.input, args.output, args.format, args.overwrite)
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {count} tensors to {paths[0]}")
    if len(paths) > 1:
        print(f"Wrote the Detectron2 keys for fine-tuning it to {paths[1]}")


if __name__ == "__main__":
    main()
