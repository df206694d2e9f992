"""How fast a run trains: the record's `tokens_per_second` and `compile_seconds`.

Throughput is timed from the end of this process's first step, which holds the device's warm-up
and, with `train.compile`, the compilation (`first_step_seconds`), to the end of training, or to
the exception that stopped it (a pruned or interrupted run); evaluations are left out. A resumed
run times the steps of this process only.
"""
from __future__ import annotations

import time

import lightning as L
import torch


def synchronized(device: torch.device) -> float:
    """The time once the device has done the work queued so far. Used at the timer's ends and
    around an evaluation, which waits for its own result anyway: no cost."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class ThroughputTimer(L.Callback):
    """Put it last among the trainer's callbacks: it then times what the others do in a step as
    part of the step."""

    def __init__(self) -> None:
        self.first_step_seconds: float | None = None
        self.timed_steps, self.timed_seconds = 0, None
        self.eval_seconds = 0.0  # in evaluation since the first step, to leave out
        self._start_step = 0  # where this process began: above 0 when resumed
        self._started = self._timed_from = self._eval_started = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_step = trainer.global_step
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.first_step_seconds is None:
            self.first_step_seconds = synchronized(pl_module.device) - self._started
            self._timed_from, self.eval_seconds = time.perf_counter(), 0.0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_started = synchronized(pl_module.device)  # the steps queued before it are training time

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.eval_seconds += synchronized(pl_module.device) - self._eval_started

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        try:
            self._stop(trainer, pl_module)
        except RuntimeError:  # a device in error cannot be waited for: the run records no throughput
            pass

    def _stop(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.first_step_seconds is not None and self.timed_seconds is None:
            self.timed_steps = trainer.global_step - self._start_step - 1
            self.timed_seconds = synchronized(pl_module.device) - self._timed_from - self.eval_seconds

    def tokens_per_second(self, tokens_per_step: int) -> float | None:
        """Over the timed steps; None when no step after the first was timed."""
        return self.timed_steps * tokens_per_step / self.timed_seconds if self.timed_steps > 0 else None
