"""The body of ``tools/train_net.py``, importable so user projects can reuse it.

A project that registers its own distiller or backbone only needs to import its module before
calling :func:`main`::

    import my_project.my_distiller  # noqa: F401  (registers "my_distiller")
    from kdzoo.engine import main
    main()

and one that changes a part of the Trainer passes its subclass: ``main(trainer_class=MyTrainer)``.
"""

import argparse
import json
import logging
import sys
from collections.abc import Sequence

import torch.multiprocessing as mp

from kdzoo.checkpoint import RunFolder
from kdzoo.config import CfgNode
from kdzoo.distillers import build_network
from kdzoo.modeling import Classifier
from kdzoo.utils import comm
from kdzoo.utils.errors import ConfigError, KdzooError

from .defaults import default_argument_parser, default_setup, get_device, setup_cfg
from .launch import launch
from .trainer import Trainer

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def run(
    args: argparse.Namespace, trainer_class: type[Trainer] = Trainer
) -> dict[str, float] | None:
    """Train with ``trainer_class`` (or, with ``--eval-only``, evaluate the student) as ``args``
    say, in this process.

    ``--eval-only`` evaluates ``MODEL.STUDENT.WEIGHTS``, or with ``--resume`` the student of
    OUTPUT_DIR's last checkpoint, writes the result to ``OUTPUT_DIR/eval/eval_<name>.json`` and
    returns ``{"top1": .., "top5": ..}``.
    """
    cfg = setup_cfg(args)
    if args.eval_only:
        weights = weights_to_evaluate(cfg, args.resume)  # before anything is written
    default_setup(cfg, args)
    if not args.eval_only:
        trainer = trainer_class(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        return None
    return evaluate_weights(cfg, weights, trainer_class)


def weights_to_evaluate(cfg: CfgNode, resume: bool) -> str:
    """What ``--eval-only`` evaluates: OUTPUT_DIR's last checkpoint with ``resume``, else
    ``MODEL.STUDENT.WEIGHTS``. Refuses, in one line, to evaluate a randomly initialised student."""
    if resume:
        checkpoint = RunFolder(cfg.OUTPUT_DIR).last_checkpoint()
        if checkpoint is None:
            raise ConfigError(
                f"--eval-only --resume: OUTPUT_DIR {cfg.OUTPUT_DIR!r} holds no checkpoint to "
                "evaluate; check OUTPUT_DIR, or name a weights file with MODEL.STUDENT.WEIGHTS"
            )
        return checkpoint
    if not cfg.MODEL.STUDENT.WEIGHTS:
        raise ConfigError(
            "--eval-only needs trained weights: set MODEL.STUDENT.WEIGHTS to a checkpoint or "
            "weights file, or add --resume to evaluate OUTPUT_DIR's last checkpoint"
        )
    return cfg.MODEL.STUDENT.WEIGHTS


def evaluate_weights(cfg: CfgNode, weights: str, trainer_class: type[Trainer]) -> dict[str, float]:
    """Top-1/top-5 of ``MODEL.STUDENT.NAME`` with ``weights`` on the test set, logged and written
    to the evaluation folder."""
    device = get_device(cfg)
    student = build_network(cfg.MODEL.STUDENT.NAME, weights, cfg.MODEL.NUM_CLASSES, cfg.INPUT.SIZE)
    test_loader = trainer_class.build_test_loader(cfg, device)
    results = trainer_class.test(cfg, Classifier(student).to(device), device, test_loader)
    logging.getLogger("kdzoo").info(
        f"Evaluation of {cfg.MODEL.STUDENT.NAME} ({weights}) on {test_loader.num_images} test "
        "images: " + ", ".join(f"{k} {v:.2f}" for k, v in results.items())
    )
    if comm.is_main_process():
        folder = RunFolder(cfg.OUTPUT_DIR).evaluation_folder()
        record = {
            "student": cfg.MODEL.STUDENT.NAME,
            "weights": weights,
            "test_images": test_loader.num_images,
            **{f"test/{k}": v for k, v in results.items()},
        }
        with open(folder.eval_result_file(weights), "w") as f:
            json.dump(record, f, indent=2)
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
        if not args.config_file and not args.opts:
            raise ConfigError(
                "no --config given: name a config file or a model-zoo config, e.g. --config "
                "configs/cifar100/kd/resnet56_resnet20.yaml (KEY VALUE overrides alone train "
                "kdzoo's defaults)"
            )
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
    except KeyboardInterrupt:  # Ctrl-C: every local process has stopped
        print(f"kdzoo: {interrupted_message(cfg, args.eval_only)}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
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


def interrupted_message(cfg: CfgNode, eval_only: bool) -> str:
    """What to say when the user stopped the job: where ``--resume`` will continue from."""
    if eval_only:
        return "interrupted"
    try:
        last = RunFolder(cfg.OUTPUT_DIR).last_checkpoint()
    except KdzooError:  # last_checkpoint names a file that is gone: --resume will say so
        last = None
    if last is None:
        return "interrupted before the first checkpoint; run the same command to start again"
    return f"interrupted; the last checkpoint is {last}: add --resume to continue from it"
