"""Run in each process of a multi-process test: train, then dump this rank's distiller state."""

import gc

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from kdzoo.engine import Trainer, default_argument_parser, default_setup, setup_cfg
from kdzoo.utils import comm
from kdzoo_testing import toy_distillers


def train_and_dump(argv: list[str], dump_dir: str) -> None:
    toy_distillers.register()
    args = default_argument_parser().parse_args(argv)
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    torch.save(trainer.distiller.state_dict(), f"{dump_dir}/rank{comm.get_rank()}.pth")


def train_dump_and_watch_teardown(argv: list[str], dump_dir: str) -> None:
    """:func:`train_and_dump`, and record how many DDP modules (each holding the process group)
    are still alive when the launcher destroys the process group."""
    destroy = dist.destroy_process_group

    def counting_destroy(*args, **kwargs):
        alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
        with open(f"{dump_dir}/ddp_alive_at_teardown{comm.get_rank()}.txt", "w") as f:
            f.write(str(alive))
        destroy(*args, **kwargs)

    dist.destroy_process_group = counting_destroy  # this spawned process only
    train_and_dump(argv, dump_dir)


def setup_and_dump_seed(argv: list[str], dump_dir: str) -> None:
    """Set a run up (as train_net does in each process) and record the seed it resolved."""
    args = default_argument_parser().parse_args(argv)
    cfg = setup_cfg(args)
    with open(f"{dump_dir}/seed{comm.get_rank()}.txt", "w") as f:
        f.write(str(cfg.SEED))
