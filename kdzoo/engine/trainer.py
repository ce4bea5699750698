"""The :class:`Trainer`: a whole training run (model, data, optimizer, hooks) built from a config,
Detectron2's ``DefaultTrainer``."""

import contextlib
import weakref
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
from kdzoo.solver import (
    amp_dtype,
    build_lr_scheduler,
    build_optimizer,
    phase_starts,
    train_only,
)
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
        self.iters_per_epoch = data_loader.iters_per_epoch
        # The distiller's pre-training phases (those of 0 epochs skipped: INIT_EPOCHS 0 means
        # none), then its main one (SOLVER's length).
        pretraining = [phase for phase in distiller.pretraining_phases() if phase.epochs > 0]
        self.phases = [*pretraining, distiller.main_phase()]
        main_iters = cfg.SOLVER.MAX_ITER or cfg.SOLVER.MAX_EPOCHS * self.iters_per_epoch
        lengths = [phase.epochs * self.iters_per_epoch for phase in self.phases[:-1]]
        self._phase_starts = phase_starts([*lengths, main_iters])
        self.max_iter = self._phase_starts[-1]
        self._trainable = [p for p in distiller.parameters() if p.requires_grad]
        self.phase_index = 0
        optimizer, self.scheduler = self._build_phase(distiller, 0)
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
        # The optimizer and schedule are the current phase's, whichever that is when saved.
        checkpointables = {
            "optimizer": _Current(lambda: self.optimizer),
            "scheduler": _Current(lambda: self.scheduler),
            "data": data_loader,
        }
        if len(self.phases) > 1:
            # First: loading it enters the saved phase, whose optimizer the next entry fits.
            checkpointables = {"phase": _PhaseIndex(self), **checkpointables}
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

    def _build_phase(
        self, distiller: Distiller, index: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """Let exactly phase ``index``'s parameters require gradients, and build its optimizer and
        lr schedule (counted from the phase's first iteration)."""
        phase = self.phases[index]
        train_only(phase, self._trainable)
        optimizer = self.build_optimizer(self.cfg, distiller)
        if phase.base_lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = phase.base_lr
        if phase.constant_lr:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _constant)
        else:
            length = self._phase_starts[index + 1] - self._phase_starts[index]
            scheduler = self.build_lr_scheduler(self.cfg, optimizer, self.iters_per_epoch, length)
        distiller.phase = phase.name
        return optimizer, scheduler

    def enter_phase(self, index: int) -> None:
        """Switch training to phase ``index``: its parameters, a new optimizer and schedule (as
        RepDistiller builds a new SGD for its main phase), and a new DDP wrapper, since the set
        of parameters with gradients changed."""
        if index == self.phase_index:
            return
        optimizer, self.scheduler = self._build_phase(self.distiller, index)
        model, _ = create_ddp_model(self.distiller, self.device)
        first_epoch = sum(phase.epochs for phase in self.phases[:index])
        self._step.use(model, optimizer, first_epoch)
        self.phase_index = index

    def _log_phase(self) -> None:
        index = self.phase_index
        phase, start, end = self.phases[index], *self._phase_starts[index : index + 2]
        groups = self.optimizer.param_groups
        trained = sum(p.numel() for group in groups for p in group["params"])
        self.logger.info(
            f"Phase {index + 1}/{len(self.phases)} '{phase.name}': iterations {start}-{end - 1}, "
            f"{trained:,} trained parameters, lr {groups[0]['lr']:g}"
            + (" (constant)" if phase.constant_lr else "")
        )

    def before_step(self) -> None:
        next_phase = self.phase_index + 1
        if next_phase < len(self.phases) and self.iter == self._phase_starts[next_phase]:
            self.enter_phase(next_phase)
            self._log_phase()
        super().before_step()

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
            hooks.LRScheduler(),  # the current phase's optimizer and schedule
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
        if len(self.phases) > 1:
            self._log_phase()
        super().train(self.start_iter, self.max_iter)


def _constant(iteration: int) -> float:
    return 1.0


class _Current:
    """A checkpointable standing for whatever ``get()`` returns when it is saved or loaded: the
    current phase's optimizer or schedule."""

    def __init__(self, get: Callable[[], object]) -> None:
        self.get = get

    def state_dict(self) -> dict:
        return self.get().state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.get().load_state_dict(state)


class _PhaseIndex:
    """The phase a checkpoint was saved in; loading it enters that phase."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = weakref.proxy(trainer)

    def state_dict(self) -> dict:
        return {"index": self.trainer.phase_index}

    def load_state_dict(self, state: dict) -> None:
        self.trainer.enter_phase(int(state["index"]))
