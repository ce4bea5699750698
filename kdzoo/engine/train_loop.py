"""The training loop: :class:`TrainerBase` runs steps with hooks around them (Detectron2's
lifecycle), and :class:`DistillStep` is what one step of distillation does.

Hooks run in the order they were registered; :meth:`kdzoo.engine.Trainer.build_hooks` says why
that order.
"""

import logging
import time
import weakref
from collections.abc import Callable

import torch
from torch import nn

from kdzoo.data import BatchAugmentation
from kdzoo.utils import comm
from kdzoo.utils.errors import KdzooError
from kdzoo.utils.events import EventStorage


class NonFiniteLossError(KdzooError, FloatingPointError):
    """The training loss became NaN or Inf."""


class HookBase:
    """A hook on the training lifecycle. ``self.trainer`` is a weak proxy set on registration:
    the trainer owns its hooks, and a strong back-reference would keep both alive in a cycle."""

    trainer: "TrainerBase"

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_backward(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def state_dict(self) -> dict:
        """State to save in checkpoints (e.g. the best accuracy so far)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class TrainerBase:
    """Runs ``run_step`` from ``start_iter`` to ``max_iter`` with hooks around it.

    ``self.iter`` is the index of the running step; after the loop it equals ``max_iter``.
    """

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage: EventStorage
        self.logger = logging.getLogger("kdzoo")

    def register_hooks(self, hooks: list[HookBase | None]) -> None:
        for hook in hooks:
            if hook is None:
                continue
            hook.trainer = weakref.proxy(self)
            self._hooks.append(hook)

    def train(self, start_iter: int, max_iter: int) -> None:
        self.logger.info(f"Starting training from iteration {start_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        self.storage = EventStorage(start_iter)
        try:
            self.before_train()
            for self.iter in range(start_iter, max_iter):
                self.storage.iter = self.iter
                self.before_step()
                self.run_step()
                self.after_step()
            self.iter += 1  # the loop is done: iter == max_iter, as a restart would see it
        except KeyboardInterrupt:
            self.logger.warning(
                f"Interrupted during iteration {self.iter}; checkpoints written before it are kept"
            )
            raise
        finally:
            self.after_train()

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self) -> None:
        for h in self._hooks:
            h.before_step()

    def after_backward(self) -> None:
        for h in self._hooks:
            h.after_backward()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    def run_step(self) -> None:
        raise NotImplementedError

    def check_finite(self) -> None:
        """Raise if a loss so far was NaN or Inf; hooks call it before they write anything."""

    def hooks_state_dict(self) -> dict:
        return {type(h).__name__: h.state_dict() for h in self._hooks}

    def load_hooks_state_dict(self, state: dict) -> None:
        for h in self._hooks:
            if type(h).__name__ in state:
                h.load_state_dict(state[type(h).__name__])


class DistillStep:
    """One step of distillation: next uint8 batch -> ``num_views`` augmented views on the device
    -> the model's weighted losses -> their sum -> backward -> (clip) -> optimizer step.

    The :class:`~kdzoo.engine.Trainer` holds one and calls it every iteration, as Detectron2's
    ``DefaultTrainer`` holds its ``SimpleTrainer``.

    Args:
        model: the distiller, possibly wrapped in DistributedDataParallel.
        distiller: the same distiller unwrapped (its ``num_views``).
        data_loader: an iterable of ``{"image", "label", "index", "epoch"}`` batches on the device.
        augmentation: turns uint8 images into normalised views.
        optimizer: steps the trainable parameters.
        amp_dtype: autocast dtype (``torch.bfloat16`` or ``torch.float16``) or None for fp32.
        clip_grad_norm: max global gradient L2 norm; 0 disables clipping.
    """

    def __init__(
        self,
        model: nn.Module,
        distiller: nn.Module,
        data_loader,
        augmentation: BatchAugmentation,
        optimizer: torch.optim.Optimizer,
        amp_dtype: torch.dtype | None = None,
        clip_grad_norm: float = 0.0,
    ) -> None:
        self.distiller = distiller
        self.data_loader = data_loader
        self._data_iter = None
        self.augmentation = augmentation
        self.device = augmentation.device
        self.amp_dtype = amp_dtype
        # A grad scaler only matters for fp16, whose narrow range lets small gradients vanish.
        self.grad_scaler = (
            torch.amp.GradScaler(self.device.type) if amp_dtype == torch.float16 else None
        )
        self.clip_grad_norm = clip_grad_norm
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        self.use(model, optimizer)

    def use(self, model: nn.Module, optimizer: torch.optim.Optimizer, first_epoch: int = 0) -> None:
        """Train ``model`` with ``optimizer`` from now on (a new phase of training), counting the
        epochs the distiller sees (``batch["epoch"]``) from ``first_epoch`` of the loader's."""
        model.train()
        self.model = model
        self.optimizer = optimizer
        self.first_epoch = first_epoch
        self._params = [p for group in optimizer.param_groups for p in group["params"]]

    def __call__(self, storage: EventStorage, after_backward: Callable[[], None]) -> None:
        """Run one step, calling ``after_backward`` between backward and the optimizer step, and
        put its losses (the global batch's under DDP) into ``storage``."""
        start = time.perf_counter()
        if self._data_iter is None:
            self._data_iter = iter(self.data_loader)
        batch = next(self._data_iter)
        data_time = time.perf_counter() - start
        batch["views"] = self.augmentation(batch["image"], self.distiller.num_views)
        batch["epoch"] -= self.first_epoch  # counted within the phase

        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            loss_dict = self.model(batch)
        losses = sum(loss_dict.values())

        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
        else:
            losses.backward()
        after_backward()
        if self.clip_grad_norm > 0:
            if self.grad_scaler is not None:
                self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self._params, self.clip_grad_norm, foreach=True)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()

        metrics = {"total_loss": losses.detach(), **{k: v.detach() for k, v in loss_dict.items()}}
        world_size = comm.get_world_size()
        if world_size > 1:
            # Log the global batch's losses, not one rank's share: one small all-reduce, no host
            # sync on a GPU. Every rank then sees the same values, so a NaN stops all of them
            # at the same iteration.
            mean = comm.all_reduce_sum(torch.stack(list(metrics.values())).float()) / world_size
            metrics = dict(zip(metrics, mean, strict=True))
        # Checked lazily (check_finite) so the step never waits for the device.
        self._nonfinite |= ~torch.isfinite(metrics["total_loss"])
        storage.put_scalars(data_time=data_time, **metrics)

    def check_finite(self, iteration: int) -> None:
        """Raise :class:`NonFiniteLossError` if any step up to ``iteration`` had a NaN/Inf loss.

        Called at every log period and before every checkpoint, so a bad model is never saved.
        """
        if bool(self._nonfinite):
            raise NonFiniteLossError(
                f"the loss became NaN or Inf at or before iteration {iteration}; training stopped "
                "and no checkpoint was written after the last finite one (lower SOLVER.BASE_LR, "
                "enable SOLVER.CLIP_GRAD_NORM, or check the data)"
            )
