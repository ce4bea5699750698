"""What every kdzoo script shares: the command line, the config it builds, the setup of a run's
folder, logger and seeds, and the device of this process."""

import argparse
import logging
import os

import torch

from kdzoo.checkpoint import RunFolder
from kdzoo.config import CfgNode, OverridesArgumentParser, get_cfg, require_choice
from kdzoo.solver import check_amp_dtype
from kdzoo.utils import comm
from kdzoo.utils.env import collect_env_info, seed_all
from kdzoo.utils.errors import ConfigError, KdzooError
from kdzoo.utils.host_memory import keep_freed_memory
from kdzoo.utils.logger import setup_logger


def default_argument_parser(description: str = "kdzoo training") -> OverridesArgumentParser:
    """The command line of ``tools/train_net.py``: Detectron2's flags, anywhere among the
    ``KEY VALUE`` config overrides (``args.opts``)."""
    parser = OverridesArgumentParser(
        description=description,
        epilog="KEY VALUE pairs, before, between or after the flags, override config keys, "
        "e.g. SOLVER.MAX_ITER 100",
    )
    parser.add_argument("--config", "--config-file", dest="config_file", default="", metavar="FILE")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT_DIR's last checkpoint (starts fresh, with a warning, if none)",
    )
    parser.add_argument("--eval-only", action="store_true", help="evaluate the student and exit")
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine: one per GPU, or CPU processes when MODEL.DEVICE is cpu",
    )
    parser.add_argument("--num-machines", type=int, default=1)
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's rank")
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="tcp://HOST:PORT of machine 0 for several machines; 'auto' picks a local port",
    )
    return parser


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """Defaults, then ``--config`` (a file, or else a model-zoo config name such as
    ``cifar100/kd/resnet56_resnet20.yaml``), then the ``KEY VALUE`` overrides; frozen."""
    from kdzoo.model_zoo import get_config_file  # the one user of the zoo in the engine

    cfg = get_cfg()
    if args.config_file:
        path = args.config_file
        if not os.path.isfile(path):
            try:
                path = get_config_file(path)
            except KdzooError as e:
                raise ConfigError(
                    f"config file not found: {args.config_file}; nor is it a model zoo name: {e}"
                ) from None
        cfg.merge_from_file(path)
    cfg.merge_from_list(args.opts)
    if cfg.SEED < 0:
        cfg.SEED = _draw_shared_seed()
    check_amp_dtype(cfg)
    require_choice("MODEL.DEVICE", cfg.MODEL.DEVICE, ("cpu", "cuda"))
    cfg.freeze()
    return cfg


def _draw_shared_seed() -> int:
    """A random seed, the same on every rank (rank 0's draw): every rank must seed alike."""
    seed = [int.from_bytes(os.urandom(2), "little")]
    if comm.get_world_size() > 1:
        torch.distributed.broadcast_object_list(seed, src=0)
    return seed[0]


def default_setup(cfg: CfgNode, args: argparse.Namespace) -> None:
    """Prepare the output folder, the logger, the threads and the seeds; record the command line,
    the config and the environment.

    A fresh training run refuses an OUTPUT_DIR that already holds a run, so nothing is overwritten;
    ``--resume`` continues it instead. ``--eval-only`` writes into the run's ``eval/`` folder and
    leaves the run's own files alone.
    """
    folder = RunFolder(cfg.OUTPUT_DIR)
    if args.eval_only:
        folder = folder.evaluation_folder()
    output_dir = folder.path
    rank = comm.get_rank()
    if comm.is_main_process():
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as e:
            raise KdzooError(f"cannot create OUTPUT_DIR {output_dir!r}: {e.strerror}") from None
        if not os.access(output_dir, os.W_OK):
            raise KdzooError(f"OUTPUT_DIR {output_dir!r} is not writable")
        if not args.resume and not args.eval_only and folder.holds_run():
            raise KdzooError(
                f"OUTPUT_DIR {output_dir!r} already holds a run; pass --resume to continue it "
                "or choose another OUTPUT_DIR"
            )
    comm.synchronize()
    logger = setup_logger(output_dir, rank=rank)
    logger.info(f"Rank {rank} of {comm.get_world_size()}\n{collect_env_info()}")
    logger.info(f"Command line arguments: {args}")
    if args.config_file:
        logger.info(f"Config file {args.config_file}")
    # The recipe survives in log.txt as well as in config.yaml, as Detectron2 keeps it.
    logger.info(f"Running with full config:\n{cfg.dump()}")
    if comm.is_main_process():
        with open(folder.config_file, "w") as f:
            f.write(cfg.dump())
        with open(folder.env_file, "w") as f:
            f.write(collect_env_info() + "\n")
        logger.info(f"Full config saved to {folder.config_file}")
    setup_cpu(cfg)
    if get_device(cfg).type == "cpu":
        logger.info(f"{torch.get_num_threads()} CPU threads in this process (CPU_THREADS)")
    # Same seed on every rank: models start identical and the global-batch draws (augmentation,
    # negatives) agree, so N processes reproduce one process over the same global batch.
    seed_all(cfg.SEED)
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK


def setup_cpu(cfg: CfgNode) -> None:
    """The config's process-wide CPU settings: torch's threads (``CPU_THREADS``) and the C
    allocator's keeping of freed memory (``CPU_KEEP_FREED_MEMORY``). The training setup applies
    them, and so do the benchmarks, which time a Trainer as ``train_net.py`` runs it."""
    if cfg.CPU_THREADS > 0:
        torch.set_num_threads(cfg.CPU_THREADS)
    if cfg.CPU_KEEP_FREED_MEMORY:
        kept = keep_freed_memory()
        logging.getLogger("kdzoo").info(
            "Freed host memory is kept for reuse (CPU_KEEP_FREED_MEMORY)"
            if kept
            else "CPU_KEEP_FREED_MEMORY: the C library is not glibc; its allocator is left as is"
        )


def get_device(cfg: CfgNode) -> torch.device:
    """This process's device: ``cpu``, or ``cuda:<local rank>``."""
    if cfg.MODEL.DEVICE == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("MODEL.DEVICE is 'cuda' but no CUDA device is available")
        return torch.device("cuda", comm.get_local_rank())
    return torch.device("cpu")
