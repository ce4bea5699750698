"""Metric storage and writers.

The trainer puts scalars (often device tensors) into an :class:`EventStorage` every step; nothing
is copied to the host then. At each log period the :class:`~kdzoo.engine.hooks.PeriodicWriter`
calls :meth:`EventStorage.flush`, which averages each metric over the steps since the last flush
with a single device-to-host copy, and hands the result to the writers below.
"""

import datetime
import json
import logging
import os
from collections import defaultdict

import torch


class EventStorage:
    """Scalars of the running training loop, averaged over each logging window."""

    def __init__(self, start_iter: int = 0) -> None:
        self.iter = start_iter
        self._window: dict[str, list] = defaultdict(list)
        self.write_requested = False

    def put_scalar(self, name: str, value: float | torch.Tensor, smooth: bool = True) -> None:
        """Record ``value`` (a number or a 0-d tensor, which is detached, not synchronised).

        Smoothed scalars are averaged over the window; others (the lr) report their latest value.
        """
        value = value.detach() if torch.is_tensor(value) else float(value)
        if smooth:
            self._window[name].append(value)
        else:
            self._window[name] = [value]

    def put_scalars(self, write_now: bool = False, **values: float | torch.Tensor) -> None:
        """Record several scalars; ``write_now`` asks the writers to write after this step."""
        for name, value in values.items():
            self.put_scalar(name, value)
        self.write_requested |= write_now

    def flush(self) -> dict[str, float]:
        """Mean of each scalar over the window, and start a new window. One host sync at most."""
        tensors = [v for values in self._window.values() for v in values if torch.is_tensor(v)]
        on_host = []
        if tensors:
            device = tensors[0].device
            on_host = torch.stack([t.float().reshape(()).to(device) for t in tensors]).tolist()
        host_values = iter(on_host)
        means = {}
        for name, values in self._window.items():
            numbers = [next(host_values) if torch.is_tensor(v) else v for v in values]
            means[name] = sum(numbers) / len(numbers)
        self._window.clear()
        self.write_requested = False
        return means


class EventWriter:
    """Writes one flushed window of metrics."""

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JSONWriter(EventWriter):
    """Appends one JSON object per write to ``metrics.json``: ``{"iteration": i, name: value}``.

    The file is opened at the first write, so a resumed run can first drop the lines of the
    iterations it is about to redo (:meth:`~kdzoo.checkpoint.RunFolder.trim_metrics`).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = None

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        if self._file is None:
            self._file = open(self.path, "a")  # noqa: SIM115 (kept open for the whole run)
        self._file.write(json.dumps({"iteration": iteration, **metrics}, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class TensorboardWriter(EventWriter):
    """Writes every metric as a TensorBoard scalar (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir)

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, iteration)

    def close(self) -> None:
        self._writer.close()


class ConsoleWriter(EventWriter):
    """Logs one line: ETA, epoch (given ``iters_per_epoch``), iteration, losses, lr, throughput
    and data time."""

    def __init__(self, max_iter: int, ims_per_batch: int, iters_per_epoch: int = 0) -> None:
        self._max_iter = max_iter
        self._ims_per_batch = ims_per_batch
        self._iters_per_epoch = iters_per_epoch
        self._logger = logging.getLogger("kdzoo")

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        parts = [f"iter: {iteration + 1}/{self._max_iter}"]
        if self._iters_per_epoch:
            epochs = -(-self._max_iter // self._iters_per_epoch)  # the last may be partial
            parts.insert(0, f"epoch: {iteration // self._iters_per_epoch + 1}/{epochs}")
        step_time = metrics.get("time")
        if step_time:
            eta = datetime.timedelta(seconds=int(step_time * (self._max_iter - iteration - 1)))
            parts.insert(0, f"eta: {eta}")
        losses = {k: v for k, v in metrics.items() if "loss" in k}
        parts += [f"{k}: {v:.4g}" for k, v in sorted(losses.items())]
        parts += [f"{k}: {v:.2f}" for k, v in sorted(metrics.items()) if k.startswith("test/")]
        if step_time:
            parts.append(f"time: {step_time:.4f}  img/s: {self._ims_per_batch / step_time:.1f}")
        if "data_time" in metrics:
            parts.append(f"data_time: {metrics['data_time']:.4f}")
        if "lr" in metrics:
            parts.append(f"lr: {metrics['lr']:.5g}")
        self._logger.info("  ".join(parts))
