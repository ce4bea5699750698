"""The standard hooks; :meth:`kdzoo.engine.Trainer.build_hooks` registers them in the order that
matters and says why."""

import logging
import time
from collections.abc import Callable

import torch

from kdzoo.checkpoint import Checkpointer
from kdzoo.utils import comm
from kdzoo.utils.events import EventWriter

from .train_loop import HookBase


class IterationTimer(HookBase):
    """Puts the wall time of each step (``time``) into the storage and logs the total at the end."""

    def before_train(self) -> None:
        self._train_start = time.perf_counter()

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        self.trainer.storage.put_scalar("time", time.perf_counter() - self._step_start)

    def after_train(self) -> None:
        trainer = self.trainer
        steps = trainer.iter - trainer.start_iter
        total = time.perf_counter() - self._train_start
        if steps > 0:
            # A run stopped early (interrupted, or by an error) did not reach max_iter.
            done = "Trained" if trainer.iter == trainer.max_iter else "Stopped early after"
            logging.getLogger("kdzoo").info(
                f"{done} {steps} iterations in {total:.1f} s ({total / steps:.4f} s/it)"
            )


class BroadcastBuffers(HookBase):
    """Under DDP, copies rank 0's buffers (BN statistics) to every rank after each step, so all
    ranks evaluate and save the same model. One message per dtype."""

    def __init__(self, buffers: list[torch.Tensor]) -> None:
        self.buffers = buffers

    @torch.no_grad()
    def after_step(self) -> None:
        comm.broadcast_tensors(self.buffers)


class LRScheduler(HookBase):
    """Logs the lr of the step just taken, then steps the per-iteration schedule: the ones given,
    or else the trainer's ``optimizer`` and ``scheduler`` at each step (they change with the
    phase of training)."""

    def __init__(self, optimizer: torch.optim.Optimizer | None = None, scheduler=None) -> None:
        self._optimizer = optimizer
        self._scheduler = scheduler

    def after_step(self) -> None:
        optimizer = self._optimizer or self.trainer.optimizer
        scheduler = self._scheduler or self.trainer.scheduler
        self.trainer.storage.put_scalar("lr", optimizer.param_groups[0]["lr"], smooth=False)
        scheduler.step()


class EMAHook(HookBase):
    """Applies every :class:`~kdzoo.distillers.EMAPair` the distiller declares, after each step:
    ``target = m * target + (1 - m) * online`` over all parameters at once (fused foreach ops);
    buffers are copied or left to the target, as each pair says."""

    def __init__(self, distiller) -> None:
        self.distiller = distiller

    def before_train(self) -> None:
        self._groups = []
        for pair in self.distiller.ema_pairs():
            if pair.buffers not in ("copy", "own"):
                raise ValueError(f"EMAPair.buffers must be 'copy' or 'own', not {pair.buffers!r}")
            targets = list(pair.target.parameters())
            onlines = list(pair.online.parameters())
            if [t.shape for t in targets] != [o.shape for o in onlines]:
                raise ValueError("an EMA target must have the parameters of its online module")
            buffers = (
                (list(pair.target.buffers()), list(pair.online.buffers()))
                if pair.buffers == "copy"
                else None
            )
            self._groups.append((targets, onlines, pair.momentum, buffers))

    @torch.no_grad()
    def after_step(self) -> None:
        for targets, onlines, momentum, buffers in self._groups:
            if momentum < 1.0:
                torch._foreach_lerp_(targets, onlines, 1.0 - momentum)
            if buffers is not None:
                torch._foreach_copy_(*buffers)


class MemoryCommitHook(HookBase):
    """Commits what the distiller's memories (queues, banks) staged in this step, gathered over
    ranks: after the optimizer step, so the step's own keys never serve as its negatives."""

    def __init__(self, distiller) -> None:
        self.distiller = distiller

    def before_train(self) -> None:
        self._memories = self.distiller.memories()

    def after_step(self) -> None:
        for memory in self._memories:
            memory.commit()


class EvalHook(HookBase):
    """Runs ``eval_function() -> {"top1": .., "top5": ..}`` every ``period`` iterations and after
    the last one; records ``test/top1``, ``test/top5`` and the best top-1 so far. With a
    ``best_checkpointer``, a new best top-1 is saved as the ``best`` checkpoint."""

    def __init__(
        self,
        period: int,
        eval_function: Callable[[], dict[str, float]],
        best_checkpointer: Checkpointer | None = None,
    ) -> None:
        self.period = period
        self.eval_function = eval_function
        self.best_checkpointer = best_checkpointer
        self.best_top1 = float("-inf")

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if next_iter == self.trainer.max_iter or (self.period > 0 and next_iter % self.period == 0):
            self.evaluate()

    def evaluate(self) -> dict[str, float]:
        results = self.eval_function()
        improved = results["top1"] > self.best_top1
        self.best_top1 = max(self.best_top1, results["top1"])
        metrics = {f"test/{k}": v for k, v in results.items()}
        metrics["test/best_top1"] = self.best_top1
        self.trainer.storage.put_scalars(write_now=True, **metrics)
        logging.getLogger("kdzoo").info(
            f"Evaluation at iteration {self.trainer.iter + 1}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
        )
        if improved and self.best_checkpointer is not None:
            self.trainer.check_finite()  # never write a model that has seen a non-finite loss
            hooks = self.trainer.hooks_state_dict()
            self.best_checkpointer.save(self.trainer.iter, "best", hooks=hooks)
        return results

    def state_dict(self) -> dict:
        return {"best_top1": self.best_top1}

    def load_state_dict(self, state: dict) -> None:
        self.best_top1 = state["best_top1"]


class PeriodicCheckpointer(HookBase):
    """Asks the checkpointer for a checkpoint every ``period`` iterations (0: never) and after the
    last one, with the hooks' states. Runs on every rank: saving gathers each rank's random
    streams, though only the main rank writes."""

    def __init__(self, checkpointer: Checkpointer, period: int) -> None:
        self.checkpointer = checkpointer
        self.period = period

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        final = next_iter == self.trainer.max_iter
        if final or (self.period > 0 and next_iter % self.period == 0):
            self.trainer.check_finite()  # never write a model that has seen a non-finite loss
            kind = "final" if final else "periodic"
            self.checkpointer.save(self.trainer.iter, kind, hooks=self.trainer.hooks_state_dict())


class PeriodicWriter(HookBase):
    """Every ``period`` iterations, after the last one, and when a hook asks (evaluation), averages
    the window's metrics (one host sync) and hands them to the writers. The loss is checked for
    NaN/Inf at the same moments."""

    def __init__(self, writers: list[EventWriter], period: int) -> None:
        self.writers = writers
        self.period = period

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        storage = self.trainer.storage
        if (
            next_iter % self.period == 0
            or next_iter == self.trainer.max_iter
            or storage.write_requested
        ):
            self.trainer.check_finite()
            metrics = storage.flush()
            for writer in self.writers:
                writer.write(self.trainer.iter, metrics)

    def after_train(self) -> None:
        for writer in self.writers:
            writer.close()
