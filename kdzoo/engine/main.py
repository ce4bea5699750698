"""The body of ``tools/train_net.py``, importable so user projects can reuse it.

A project that registers its own distiller or backbone only needs to import its module before
calling :func:`main`::

    import my_project.my_distiller  # noqa: F401  (registers "my_distiller")
    from kdzoo.engine import main
    main()

and one that changes a part of the Trainer passes its subclass: ``main(trainer_class=MyTrainer)``.
"""

import argparse
import logging
import sys
from collections.abc import Sequence

import torch.multiprocessing as mp

from kdzoo.checkpoint import RunFolder, load_backbone_weights
from kdzoo.distillers import build_student
from kdzoo.modeling import Classifier
from kdzoo.utils import comm
from kdzoo.utils.errors import KdzooError

from .defaults import default_argument_parser, default_setup, get_device, setup_cfg
from .launch import launch
from .trainer import Trainer

EXIT_USER_ERROR = 2


def run(
    args: argparse.Namespace, trainer_class: type[Trainer] = Trainer
) -> dict[str, float] | None:
    """Train with ``trainer_class`` (or, with ``--eval-only``, evaluate the student) as ``args``
    say, in this process.

    ``--eval-only`` evaluates ``MODEL.STUDENT.WEIGHTS``, or with ``--resume`` the student of
    OUTPUT_DIR's last checkpoint, and returns ``{"top1": .., "top5": ..}``.
    """
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    if not args.eval_only:
        trainer = trainer_class(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        return None
    device = get_device(cfg)
    student = build_student(cfg)
    checkpoint = RunFolder(cfg.OUTPUT_DIR).last_checkpoint() if args.resume else None
    if checkpoint:
        load_backbone_weights(student, checkpoint)
    results = trainer_class.test(cfg, Classifier(student).to(device), device)
    logging.getLogger("kdzoo").info(
        f"Evaluation of {cfg.MODEL.STUDENT.NAME}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in results.items())
    )
    return results


def _run_or_exit(args: argparse.Namespace, trainer_class: type[Trainer]) -> None:
    try:
        run(args, trainer_class)
    except KdzooError as e:
        prefix = f"[rank {comm.get_rank()}] " if comm.get_world_size() > 1 else ""
        print(f"kdzoo: error: {prefix}{e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def main(argv: Sequence[str] | None = None, trainer_class: type[Trainer] = Trainer) -> None:
    """Parse the command line and run ``trainer_class`` in every process of the job. A user error
    (bad config, missing file, ...) prints one line, ``kdzoo: error: ...``, and exits with status
    2."""
    try:
        args = default_argument_parser().parse_args(argv)
        cfg = setup_cfg(args)  # fail on a bad config before any process is started
    except KdzooError as e:
        print(f"kdzoo: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    backend = "nccl" if cfg.MODEL.DEVICE == "cuda" else "gloo"
    try:
        launch(
            _run_or_exit,
            args.num_gpus,
            args.num_machines,
            args.machine_rank,
            args.dist_url,
            backend=backend,
            args=(args, trainer_class),
        )
    except mp.ProcessExitedException as e:
        if e.signal_name is None:  # a rank exited with an error it has already reported
            sys.exit(e.exit_code or 1)
        # The launcher has stopped the other ranks; nothing is written after the last checkpoint.
        print(
            f"kdzoo: error: local process {e.error_index} (pid {e.error_pid}) was killed by "
            f"{e.signal_name}, so the job stopped; --resume continues it from the last checkpoint",
            file=sys.stderr,
        )
        sys.exit(1)
