"""The :class:`Trainer`: a whole training run (model, data, optimizer, hooks) built from a config,
Detectron2's ``DefaultTrainer``."""

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from kdzoo.checkpoint import Checkpointer, RunFolder
from kdzoo.config import CfgNode
from kdzoo.data import (
    BatchAugmentation,
    TestLoader,
    TrainLoader,
    build_augmentation,
    build_test_loader,
    build_train_loader,
)
from kdzoo.distillers import Distiller, build_distiller
from kdzoo.evaluation import evaluate_classifier
from kdzoo.modeling import Classifier, convert_sync_batchnorm
from kdzoo.solver import amp_dtype, build_lr_scheduler, build_optimizer
from kdzoo.utils import comm
from kdzoo.utils.env import GlobalRNG
from kdzoo.utils.events import ConsoleWriter, EventWriter, JSONWriter, TensorboardWriter

from . import hooks
from .ddp import create_ddp_model
from .defaults import get_device
from .train_loop import DistillStep, TrainerBase


class Trainer(TrainerBase):
    """A whole training run built from a config, as Detectron2's ``DefaultTrainer``::

        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()

    It holds one :class:`DistillStep` and calls it every iteration. Each part is built by an
    overridable ``build_*`` method (model, loaders, augmentation, optimizer, lr schedule, hooks,
    writers), so a project changes one part by subclassing, without copying the rest.
    """

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__()
        self.cfg = cfg
        self.device = get_device(cfg)
        self.folder = RunFolder(cfg.OUTPUT_DIR)
        data_loader = self.build_train_loader(cfg, self.device)
        distiller = self.build_model(cfg, data_loader.dataset.labels, self.device)
        self.test_loader = self.build_test_loader(cfg, self.device)
        optimizer = self.build_optimizer(cfg, distiller)
        model, self._synced_buffers = create_ddp_model(distiller, self.device)
        augmentation = self.build_augmentation(cfg, self.device)
        self._step = DistillStep(
            model,
            distiller,
            data_loader,
            augmentation,
            optimizer,
            amp_dtype=amp_dtype(cfg, self.device),
            clip_grad_norm=cfg.SOLVER.CLIP_GRAD_NORM,
        )
        self.iters_per_epoch = data_loader.iters_per_epoch
        self.max_iter = cfg.SOLVER.MAX_ITER or cfg.SOLVER.MAX_EPOCHS * self.iters_per_epoch
        self.scheduler = self.build_lr_scheduler(
            cfg, optimizer, self.iters_per_epoch, self.max_iter
        )
        checkpointables = {"optimizer": optimizer, "scheduler": self.scheduler, "data": data_loader}
        if self._step.grad_scaler is not None:
            checkpointables["grad_scaler"] = self._step.grad_scaler
        self.checkpointer = Checkpointer(
            distiller,
            self.folder,
            checkpointables,
            rng={"global": GlobalRNG(self.device), "augmentation": augmentation},
            keep=cfg.SOLVER.CHECKPOINT_KEEP,
        )
        self.register_hooks(self.build_hooks())

    # The parts the step holds, read through it so there is one place that holds them.
    @property
    def model(self) -> nn.Module:
        """The distiller as trained: wrapped in DistributedDataParallel under several processes."""
        return self._step.model

    @property
    def distiller(self) -> Distiller:
        return self._step.distiller

    @property
    def data_loader(self) -> TrainLoader:
        return self._step.data_loader

    @property
    def augmentation(self) -> BatchAugmentation:
        return self._step.augmentation

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._step.optimizer

    @classmethod
    def build_model(
        cls, cfg: CfgNode, train_labels: torch.Tensor, device: torch.device
    ) -> Distiller:
        """The configured distiller (:func:`~kdzoo.distillers.build_distiller`) on ``device``,
        with its BatchNorm layers synchronised across processes if ``MODEL.SYNC_BN``."""
        distiller = build_distiller(cfg, train_labels).to(device)
        if cfg.MODEL.CHANNELS_LAST:
            distiller.to(memory_format=torch.channels_last)
        if cfg.MODEL.SYNC_BN and comm.get_world_size() > 1:
            # Everything that normalises training batches: student, heads, moving averages. The
            # teacher stays in eval mode and normalises with its running statistics.
            for name, child in distiller.named_children():
                if child is not distiller.teacher:
                    setattr(distiller, name, convert_sync_batchnorm(child))
        return distiller

    @classmethod
    def build_train_loader(cls, cfg: CfgNode, device: torch.device) -> TrainLoader:
        """An endless, resumable stream of ``{"image", "label", "index", "epoch"}`` batches on
        ``device`` with ``dataset.labels`` ``[N]``, ``iters_per_epoch`` and ``state_dict`` /
        ``load_state_dict`` (its position, saved in checkpoints), as :class:`TrainLoader`."""
        return build_train_loader(cfg, device)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, device: torch.device) -> TestLoader:
        return build_test_loader(cfg, device)

    @classmethod
    def build_augmentation(cls, cfg: CfgNode, device: torch.device) -> BatchAugmentation:
        return build_augmentation(cfg, device)

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(
        cls, cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int, max_iter: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        return build_lr_scheduler(cfg, optimizer, iters_per_epoch, max_iter)

    def build_writers(self) -> list[EventWriter]:
        """Console, ``metrics.json`` and (if installed) TensorBoard, on the main process."""
        if not comm.is_main_process():
            return []
        writers = [
            ConsoleWriter(self.max_iter, self.cfg.SOLVER.IMS_PER_BATCH, self.iters_per_epoch),
            JSONWriter(self.folder.metrics_file),
        ]
        with contextlib.suppress(ImportError):  # TensorBoard is optional
            writers.append(TensorboardWriter(self.cfg.OUTPUT_DIR))
        return writers

    def build_hooks(self) -> list[hooks.HookBase | None]:
        """The standard hooks, in the order that matters: buffers, moving averages and memory
        commits complete the step; then the lr, evaluation, and the metrics before the
        checkpoint."""
        cfg = self.cfg
        return [
            hooks.IterationTimer(),
            hooks.BroadcastBuffers(self._synced_buffers) if self._synced_buffers else None,
            hooks.EMAHook(self.distiller),
            hooks.MemoryCommitHook(self.distiller),
            hooks.LRScheduler(self.optimizer, self.scheduler),
            hooks.EvalHook(
                cfg.TEST.EVAL_PERIOD or self.iters_per_epoch,
                self.evaluate,
                self.checkpointer if cfg.TEST.SAVE_BEST else None,
            ),
            # Metrics before the checkpoint: a run killed between the two resumes from the
            # previous checkpoint, drops the lines past it and writes them again. The other order
            # would lose the line of a checkpointed iteration.
            hooks.PeriodicWriter(self.build_writers(), cfg.LOG_PERIOD),
            hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD),
        ]

    @classmethod
    def test(
        cls,
        cfg: CfgNode,
        model: nn.Module,
        device: torch.device,
        test_loader: TestLoader | None = None,
        preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, float]:
        """Top-1/top-5 (%) of ``model`` (images -> logits) on the test set, each rank evaluating
        its share, with the test-time normalisation (``preprocess``, by default
        :meth:`build_augmentation`'s) and precision of ``cfg``."""
        loader = test_loader or cls.build_test_loader(cfg, device)
        normalize = preprocess or cls.build_augmentation(cfg, device).normalize
        return evaluate_classifier(model, loader, normalize, amp_dtype(cfg, device))

    def evaluate(self) -> dict[str, float]:
        """:meth:`test` of the student being trained."""
        student = Classifier(self.distiller.student)
        normalize = self.augmentation.normalize
        return self.test(self.cfg, student, self.device, self.test_loader, normalize)

    def run_step(self) -> None:
        self._step(self.storage, self.after_backward)

    def check_finite(self) -> None:
        self._step.check_finite(self.iter)

    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume``, restore OUTPUT_DIR's last checkpoint and continue after its iteration;
        otherwise (or if there is none) start at iteration 0 from the initial weights."""
        extra = self.checkpointer.resume() if resume else None
        if extra is None and resume:
            self.logger.warning(f"--resume: no checkpoint in {self.cfg.OUTPUT_DIR}; starting fresh")
        self.start_iter = 0 if extra is None else extra["iteration"] + 1
        if comm.is_main_process():
            # Iterations after the checkpoint (all of them, without one) are redone: a run killed
            # after logging them must not leave them twice in metrics.json.
            self.folder.trim_metrics(self.start_iter - 1)
            if resume:
                removed = self.folder.remove_interrupted_writes()
                if removed:
                    self.logger.info(f"Removed files of interrupted writes: {', '.join(removed)}")
        if extra is not None:
            self.load_hooks_state_dict(extra["hooks"])

    def train(self) -> None:  # type: ignore[override]
        """Train from ``start_iter`` to ``max_iter`` (the final model is evaluated and saved)."""
        if self.start_iter >= self.max_iter:
            self.logger.info(f"Already trained {self.max_iter} iterations; nothing to do")
            return
        super().train(self.start_iter, self.max_iter)
