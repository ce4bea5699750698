"""What every kdzoo script shares: the argument parser, setup of a run, and the :class:`Trainer`
that builds a whole run (models, data, optimizer, hooks) from a config."""

import argparse
import contextlib
import inspect
import os
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kdzoo.checkpoint import (
    LAST_CHECKPOINT,
    Checkpointer,
    is_torchvision_weight_name,
    load_backbone_weights,
    load_file,
)
from kdzoo.config import CfgNode, get_cfg, require_choice
from kdzoo.data import BatchAugmentation, TrainLoader, build_dataset, iterate_test_batches
from kdzoo.distillers import DISTILLER_REGISTRY, build_distiller
from kdzoo.evaluation import evaluate_classifier
from kdzoo.modeling import build_backbone, convert_sync_batchnorm
from kdzoo.solver import build_lr_scheduler, build_optimizer
from kdzoo.utils import comm
from kdzoo.utils.env import collect_env_info, get_rng_state, seed_all, set_rng_state
from kdzoo.utils.errors import CheckpointError, ConfigError, KdzooError
from kdzoo.utils.events import ConsoleWriter, JSONWriter, TensorboardWriter, drop_metrics_after
from kdzoo.utils.file_io import remove_interrupted_writes
from kdzoo.utils.logger import setup_logger
from kdzoo.utils.registry import lookup

from . import hooks
from .train_loop import DistillTrainer

_AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def default_argument_parser(description: str = "kdzoo training") -> argparse.ArgumentParser:
    """The command line of ``tools/train_net.py`` (Detectron2's flags, ``--config`` first)."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Trailing KEY VALUE pairs override config keys, e.g. SOLVER.MAX_ITER 100",
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
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides"
    )
    return parser


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """Defaults, then ``--config``, then the ``KEY VALUE`` overrides; frozen."""
    cfg = get_cfg()
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if cfg.SEED < 0:
        cfg.SEED = _draw_shared_seed()
    require_choice("SOLVER.AMP.DTYPE", cfg.SOLVER.AMP.DTYPE, sorted(_AMP_DTYPES))
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
    """Prepare the output folder, the logger and the seeds; record the config and environment.

    A fresh training run refuses an OUTPUT_DIR that already holds a run, so nothing is overwritten;
    ``--resume`` continues it instead.
    """
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process():
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as e:
            raise KdzooError(f"cannot create OUTPUT_DIR {output_dir!r}: {e.strerror}") from None
        if not os.access(output_dir, os.W_OK):
            raise KdzooError(f"OUTPUT_DIR {output_dir!r} is not writable")
        if (
            not args.resume
            and not args.eval_only
            and os.path.exists(os.path.join(output_dir, "last_checkpoint"))
        ):
            raise KdzooError(
                f"OUTPUT_DIR {output_dir!r} already holds a run; pass --resume to continue it "
                "or choose another OUTPUT_DIR"
            )
    comm.synchronize()
    logger = setup_logger(output_dir, rank=rank)
    logger.info(f"Rank {rank} of {comm.get_world_size()}\n{collect_env_info()}")
    if args.config_file:
        logger.info(f"Config file {args.config_file}")
    if comm.is_main_process():
        with open(os.path.join(output_dir, "config.yaml"), "w") as f:
            f.write(cfg.dump())
        with open(os.path.join(output_dir, "env.txt"), "w") as f:
            f.write(collect_env_info() + "\n")
        logger.info(f"Full config saved to {os.path.join(output_dir, 'config.yaml')}")
    # Same seed on every rank: models start identical and the global-batch draws (augmentation,
    # negatives) agree, so N processes reproduce one process over the same global batch.
    seed_all(cfg.SEED)
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK


def get_device(cfg: CfgNode) -> torch.device:
    """This process's device: ``cpu``, or ``cuda:<local rank>``."""
    if cfg.MODEL.DEVICE == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("MODEL.DEVICE is 'cuda' but no CUDA device is available")
        return torch.device("cuda", comm.get_local_rank())
    return torch.device("cpu")


def build_network(name: str, weights: str, num_classes: int) -> nn.Module:
    """A backbone from the registry with its initial weights (a file or a torchvision name)."""
    if weights and is_torchvision_weight_name(weights):
        return build_backbone(name, num_classes, weights=weights)
    model = build_backbone(name, num_classes)
    if weights:
        load_backbone_weights(model, weights)
    return model


def build_models(cfg: CfgNode) -> tuple[nn.Module, nn.Module | None]:
    """The student and, if the distiller needs one, the teacher with its weights."""
    student = build_network(
        cfg.MODEL.STUDENT.NAME, cfg.MODEL.STUDENT.WEIGHTS, cfg.MODEL.NUM_CLASSES
    )
    distiller_cls = lookup(DISTILLER_REGISTRY, cfg.DISTILLER.NAME)
    if not getattr(distiller_cls, "needs_teacher", True):
        return student, None
    if not cfg.MODEL.TEACHER.NAME:
        raise ConfigError(f"distiller {cfg.DISTILLER.NAME!r} needs MODEL.TEACHER.NAME")
    if not cfg.MODEL.TEACHER.WEIGHTS:
        raise ConfigError(
            f"distiller {cfg.DISTILLER.NAME!r} needs MODEL.TEACHER.WEIGHTS (a trained teacher); "
            "train one with configs/<dataset>/vanilla/<arch>.yaml"
        )
    teacher = build_network(
        cfg.MODEL.TEACHER.NAME, cfg.MODEL.TEACHER.WEIGHTS, cfg.MODEL.NUM_CLASSES
    )
    return student, teacher


def build_augmentation(cfg: CfgNode, device: torch.device) -> BatchAugmentation:
    return BatchAugmentation(
        size=cfg.INPUT.SIZE,
        padding=cfg.INPUT.CROP_PADDING,
        hflip=cfg.INPUT.HFLIP,
        mean=list(cfg.INPUT.PIXEL_MEAN),
        std=list(cfg.INPUT.PIXEL_STD),
        device=device,
        seed=cfg.SEED,
        memory_format=torch.channels_last if cfg.MODEL.CHANNELS_LAST else torch.contiguous_format,
    )


def evaluate(cfg: CfgNode, model: nn.Module, test_set, augmentation: BatchAugmentation) -> dict:
    """Top-1/top-5 (%) of ``model`` (a distiller in eval mode returns student logits) on the test
    set, each rank evaluating its share."""
    amp = cfg.SOLVER.AMP.ENABLED
    was_training = model.training
    model.eval()

    def predict(batch: dict) -> torch.Tensor:
        with torch.autocast(
            augmentation.device.type, dtype=_AMP_DTYPES[cfg.SOLVER.AMP.DTYPE], enabled=amp
        ):
            return model({"views": [augmentation.normalize(batch["image"])]}).float()

    batches = iterate_test_batches(
        test_set, cfg.TEST.IMS_PER_BATCH, augmentation.device, cfg.DATALOADER.NUM_WORKERS
    )
    try:
        return evaluate_classifier(predict, batches)
    finally:
        model.train(was_training)


class Trainer(DistillTrainer):
    """A whole training run built from a config, as Detectron2's ``DefaultTrainer``::

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    """

    def __init__(self, cfg: CfgNode) -> None:
        self.cfg = cfg
        device = get_device(cfg)
        student, teacher = build_models(cfg)
        train_set = build_dataset(cfg, train=True)
        distiller = build_distiller(cfg, student, teacher)
        distiller.bind_dataset(train_set.labels)
        distiller.to(device)
        if cfg.MODEL.CHANNELS_LAST:
            distiller.to(memory_format=torch.channels_last)
        if cfg.MODEL.SYNC_BN and comm.get_world_size() > 1:
            # Everything that normalises training batches: student, heads, moving averages. The
            # teacher stays in eval mode and normalises with its running statistics.
            for name, child in distiller.named_children():
                if child is not distiller.teacher:
                    setattr(distiller, name, convert_sync_batchnorm(child))

        self.test_set = build_dataset(cfg, train=False)
        loader = TrainLoader(
            train_set, cfg.SOLVER.IMS_PER_BATCH, cfg.SEED, device, cfg.DATALOADER.NUM_WORKERS
        )
        optimizer = build_optimizer(cfg, distiller)
        model = self._wrap_ddp(distiller, device)
        amp_dtype = _AMP_DTYPES[cfg.SOLVER.AMP.DTYPE] if cfg.SOLVER.AMP.ENABLED else None
        if amp_dtype == torch.float16 and device.type != "cuda":
            raise ConfigError("SOLVER.AMP.DTYPE float16 needs a GPU; use bfloat16 on the CPU")
        super().__init__(
            model,
            distiller,
            loader,
            build_augmentation(cfg, device),
            optimizer,
            amp_dtype=amp_dtype,
            clip_grad_norm=cfg.SOLVER.CLIP_GRAD_NORM,
        )

        self.iters_per_epoch = loader.iters_per_epoch
        self.max_iter = cfg.SOLVER.MAX_ITER or cfg.SOLVER.MAX_EPOCHS * self.iters_per_epoch
        self.scheduler = build_lr_scheduler(cfg, optimizer, self.iters_per_epoch, self.max_iter)
        checkpointables = {"optimizer": optimizer, "scheduler": self.scheduler, "data": loader}
        if self.grad_scaler is not None:
            checkpointables["grad_scaler"] = self.grad_scaler
        self.checkpointer = Checkpointer(
            distiller, cfg.OUTPUT_DIR, comm.is_main_process(), **checkpointables
        )
        self.register_hooks(self.build_hooks())

    def _wrap_ddp(self, distiller: nn.Module, device: torch.device) -> nn.Module:
        if comm.get_world_size() == 1:
            self._synced_buffers = []
            return distiller
        # DDP would broadcast every buffer before every forward. Only the running statistics of
        # the trained normalisation layers differ between ranks; the BroadcastBuffers hook copies
        # rank 0's after every step, so all ranks agree whenever the model is evaluated or saved.
        # Memories stay equal through their own all-gather; the teacher never changes.
        frozen = set(distiller.teacher.modules()) if distiller.teacher is not None else set()
        self._synced_buffers = [
            b
            for m in distiller.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m not in frozen
            for b in m.buffers()
        ]
        device_ids = [device.index] if device.type == "cuda" else None
        # torch >= 2.14 renamed the switch; both leave the buffers to the hook above.
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
            no_sync = {"forward_sync_buffers": False}
        else:
            no_sync = {"broadcast_buffers": False}
        return DistributedDataParallel(distiller, device_ids=device_ids, **no_sync)

    def build_hooks(self) -> list[hooks.HookBase | None]:
        cfg = self.cfg
        eval_period = cfg.TEST.EVAL_PERIOD or self.iters_per_epoch
        writers = []
        if comm.is_main_process():
            writers = [
                ConsoleWriter(self.max_iter, cfg.SOLVER.IMS_PER_BATCH),
                JSONWriter(os.path.join(cfg.OUTPUT_DIR, "metrics.json")),
            ]
            with contextlib.suppress(ImportError):  # TensorBoard is optional
                writers.append(TensorboardWriter(cfg.OUTPUT_DIR))
        return [
            hooks.IterationTimer(),
            hooks.BroadcastBuffers(self._synced_buffers) if self._synced_buffers else None,
            hooks.EMAHook(self.distiller),
            hooks.QueueHook(self.distiller),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.EvalHook(eval_period, self.evaluate),
            # Metrics before the checkpoint: a run killed between the two resumes from the
            # previous checkpoint, drops the lines past it and writes them again. The other order
            # would lose the line of a checkpointed iteration.
            hooks.PeriodicWriter(writers, cfg.LOG_PERIOD),
            hooks.PeriodicCheckpointer(
                self.checkpointer,
                cfg.SOLVER.CHECKPOINT_PERIOD,
                cfg.SOLVER.CHECKPOINT_KEEP,
                self.extra_state,
            ),
        ]

    def evaluate(self) -> dict[str, float]:
        return evaluate(self.cfg, self.distiller, self.test_set, self.augmentation)

    def extra_state(self) -> dict:
        """The iteration, every rank's RNG states (gathered) and the hooks' states."""
        local = {
            "global": get_rng_state(self.device),
            "augmentation": self.augmentation.state_dict(),
        }
        per_rank = [None] * comm.get_world_size()
        if comm.get_world_size() > 1:
            torch.distributed.all_gather_object(per_rank, local)
        else:
            per_rank = [local]
        return {"iteration": self.iter, "rng": per_rank, "hooks": self.hooks_state_dict()}

    def _read_last_checkpoint(self) -> tuple[str | None, Any]:
        """The path and contents of the checkpoint ``last_checkpoint`` names (``(None, None)``
        without one). If it is missing or unreadable, the one-line error also names the other
        checkpoints a user could point ``last_checkpoint`` at."""
        try:
            path = self.checkpointer.last_checkpoint()
            return path, (load_file(path) if path is not None else None)
        except CheckpointError as e:
            marker = os.path.join(self.cfg.OUTPUT_DIR, LAST_CHECKPOINT)
            with open(marker) as f:
                named = f.read().strip()
            others = sorted(
                name
                for name in os.listdir(self.cfg.OUTPUT_DIR)
                if name.startswith("model_") and name.endswith(".pth") and name != named
            )
            hint = f"; to resume from another ({', '.join(others)}), write its name into {marker}"
            raise CheckpointError(f"{e}{hint if others else ''}") from None

    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume``, restore OUTPUT_DIR's last checkpoint and continue after its iteration;
        otherwise (or if there is none) start at iteration 0 from the initial weights."""
        path, data = self._read_last_checkpoint() if resume else (None, None)
        if path is None:
            if resume:
                self.logger.warning(
                    f"--resume: no checkpoint in {self.cfg.OUTPUT_DIR}; starting fresh"
                )
            self.start_iter, extra = 0, None
        else:
            extra = self.checkpointer.restore(data, path)
            self.start_iter = extra["iteration"] + 1
        if comm.is_main_process():
            # Iterations after the checkpoint (all of them, without one) are redone: a run killed
            # after logging them must not leave them twice in metrics.json.
            metrics_file = os.path.join(self.cfg.OUTPUT_DIR, "metrics.json")
            drop_metrics_after(metrics_file, self.start_iter - 1)
            if resume:
                removed = remove_interrupted_writes(self.cfg.OUTPUT_DIR)
                if removed:
                    self.logger.info(f"Removed files of interrupted writes: {', '.join(removed)}")
        if extra is None:
            return
        rng = extra["rng"]
        if len(rng) == comm.get_world_size():
            mine = rng[comm.get_rank()]
            set_rng_state(mine["global"], self.device)
            self.augmentation.load_state_dict(mine["augmentation"])
        else:
            self.logger.warning(
                f"checkpoint was written by {len(rng)} processes, this run has "
                f"{comm.get_world_size()}: RNG streams restart from rank 0's state"
            )
            set_rng_state(rng[0]["global"], self.device)
            self.augmentation.load_state_dict(rng[0]["augmentation"])
        self.load_hooks_state_dict(extra["hooks"])

    def train(self) -> None:  # type: ignore[override]
        """Train from ``start_iter`` to ``max_iter`` (the final model is evaluated and saved)."""
        if self.start_iter >= self.max_iter:
            self.logger.info(f"Already trained {self.max_iter} iterations; nothing to do")
            return
        super().train(self.start_iter, self.max_iter)
