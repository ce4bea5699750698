"""Export the student of a kdzoo checkpoint as a torchvision or Detectron2 backbone: the
``kdzoo-export`` command (``tools/export_backbone.py``).

    kdzoo-export --input output/run/model_final.pth --output student.pth
    kdzoo-export --input output/run/model_final.pth --output student_d2.pkl --format detectron2 \\
        --detectron2-base detectron2/configs/PascalVOC-Detection/faster_rcnn_R_50_C4.yaml

``--format torchvision`` (the default) writes the student's ``state_dict`` alone, which
``build_backbone(name).load_state_dict`` (and, for ResNets, torchvision's models) takes strictly.
``--format detectron2`` takes a ResNet-50 student only and writes Detectron2's R50-C4 pickle, plus
``<output stem>.yaml``, the Detectron2 keys that fine-tuning it needs; ``--detectron2-base``
names the Detectron2 config the fragment builds on (written in as an absolute ``_BASE_``). An
existing output file is never replaced unless ``--overwrite`` is given, and on any error nothing
is written.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from kdzoo.utils.errors import KdzooError

from .detectron2 import detectron2_arrays, detectron2_config_fragment, save_detectron2_pickle
from .io import atomic_save, atomic_write_text, load_file
from .weights import extract_backbone_state

EXIT_USER_ERROR = 2


def output_paths(output_path: str, fmt: str) -> list[str]:
    """The files an export writes: the weights, then (Detectron2) the YAML fragment."""
    if fmt == "torchvision":
        return [output_path]
    stem, suffix = os.path.splitext(output_path)
    if suffix != ".pkl":  # Detectron2 unpickles a file only when its name ends in .pkl
        raise KdzooError(f"--format detectron2 needs an output ending in .pkl, not {output_path}")
    return [output_path, stem + ".yaml"]


def export(
    input_path: str,
    output_path: str,
    fmt: str = "torchvision",
    overwrite: bool = False,
    detectron2_base: str | None = None,
) -> tuple[int, list[str]]:
    """Write the backbone of ``input_path`` in format ``fmt``; returns the number of tensors
    exported and the paths written. ``detectron2_base`` (Detectron2 only) is the config the
    YAML fragment names as its ``_BASE_``.

    Everything is checked before the first file is written.
    """
    paths = output_paths(output_path, fmt)
    if detectron2_base is not None:
        if fmt != "detectron2":
            raise KdzooError("--detectron2-base goes with --format detectron2")
        if not os.path.isfile(detectron2_base):
            raise KdzooError(f"--detectron2-base: Detectron2 config not found: {detectron2_base}")
    for path in paths:
        if os.path.exists(path) and not overwrite:
            raise KdzooError(f"{path} exists; pass --overwrite to replace it")
    state = extract_backbone_state(load_file(input_path), input_path)
    if fmt == "torchvision":
        atomic_save(state, output_path)
        return len(state), paths
    arrays = detectron2_arrays(state, input_path)
    fragment = detectron2_config_fragment(output_path, detectron2_base)
    save_detectron2_pickle(arrays, output_path)
    atomic_write_text(fragment, paths[1])
    return len(arrays), paths


def main(argv: Sequence[str] | None = None) -> None:
    """The command line; a user error prints one line, ``kdzoo: error: ...``, and exits with
    status 2."""
    parser = argparse.ArgumentParser(
        prog="kdzoo-export",
        description="Export the student of a kdzoo checkpoint as a torchvision or Detectron2 "
        "backbone.",
    )
    parser.add_argument("--input", required=True, help="kdzoo checkpoint or backbone weights")
    parser.add_argument("--output", required=True, help="file to write (.pkl for detectron2)")
    parser.add_argument(
        "--format",
        choices=["torchvision", "detectron2"],
        default="torchvision",
        help="plain state_dict, or Detectron2 R50-C4 pickle + YAML fragment (ResNet-50 only)",
    )
    parser.add_argument(
        "--detectron2-base",
        metavar="PATH",
        help="a Detectron2 R50-C4 config the YAML fragment builds on: written in as its _BASE_, "
        "made absolute (Detectron2 reads a relative _BASE_ from the fragment's folder)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    try:
        count, paths = export(
            args.input, args.output, args.format, args.overwrite, args.detectron2_base
        )
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    print(f"Wrote {count} tensors to {paths[0]}")
    if len(paths) > 1:
        print(f"Wrote the Detectron2 keys for fine-tuning it to {paths[1]}")


if __name__ == "__main__":
    main()
