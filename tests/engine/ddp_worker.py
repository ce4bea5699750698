"""Run in each process of a multi-process test: train, then dump this rank's distiller state."""

import torch
import toy_distillers

from kdzoo.engine import Trainer, default_argument_parser, default_setup, setup_cfg
from kdzoo.utils import comm


def train_and_dump(argv: list[str], dump_dir: str) -> None:
    toy_distillers.register()
    args = default_argument_parser().parse_args(argv)
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    torch.save(trainer.distiller.state_dict(), f"{dump_dir}/rank{comm.get_rank()}.pth")


def setup_and_dump_seed(argv: list[str], dump_dir: str) -> None:
    """Set a run up (as train_net does in each process) and record the seed it resolved."""
    args = default_argument_parser().parse_args(argv)
    cfg = setup_cfg(args)
    with open(f"{dump_dir}/seed{comm.get_rank()}.txt", "w") as f:
        f.write(str(cfg.SEED))
