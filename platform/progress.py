"""Progress over the whole run (Lightning's own bar restarts at every epoch, and our epochs are
evaluation intervals): a bar on a terminal, after two seconds; elsewhere (CI, a Slurm log, output
redirected to a file) a log line every `train.progress_seconds`, so a long run is never silent."""
from __future__ import annotations

import logging
import os
import sys
import time

import lightning as L
from tqdm import tqdm

log = logging.getLogger(__name__)


def wants_progress_bar() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def _val_loss(trainer) -> float | None:
    value = trainer.callback_metrics.get("val_loss")
    return None if value is None else float(value)


class RunProgressBar(L.Callback):
    def __init__(self, total_steps: int):
        self.total_steps = total_steps
        self.bar: tqdm | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.bar = tqdm(total=self.total_steps, initial=trainer.global_step, unit="step", delay=2.0,
                        dynamic_ncols=True, file=sys.stderr)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.bar.update(trainer.global_step - self.bar.n)

    def on_validation_end(self, trainer, pl_module) -> None:
        loss = _val_loss(trainer)
        if self.bar is not None and loss is not None:
            self.bar.set_postfix(val_loss=f"{loss:.4f}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.bar.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressLog(L.Callback):
    """One log line every `seconds`: the step, the last validation loss, the rate, the time left."""

    def __init__(self, total_steps: int, seconds: float):
        self.total_steps, self.seconds = total_steps, seconds
        self.started = self.last = 0.0
        self.first_step = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = self.last = time.monotonic()
        self.first_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self.last < self.seconds or not trainer.is_global_zero:
            return
        self.last = now
        step = trainer.global_step
        rate = (step - self.first_step) / (now - self.started)
        left = (self.total_steps - step) / rate if rate > 0 else float("nan")
        loss = _val_loss(trainer)
        log.info("step %d/%d (%.0f%%), val_loss %s, %.3g steps/s, about %.0f s left", step, self.total_steps,
                 100 * step / self.total_steps, "-" if loss is None else f"{loss:.4f}", rate, left)
