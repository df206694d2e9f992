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

from scalelab.platform.mfu import mfu

log = logging.getLogger(__name__)


def wants_progress_bar() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def _val_loss(trainer) -> float | None:
    value = trainer.callback_metrics.get("val_loss")
    return None if value is None else float(value)


class Speed:
    """Tokens per second and, where the devices' peak is known, MFU, from a rate in steps per second."""

    def __init__(self, tokens_per_step: int, flops_per_token: float, peak_flops: float | None, devices: int):
        self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
        self.peak_flops, self.devices = peak_flops, devices

    def __call__(self, steps_per_second: float | None) -> dict[str, str]:
        if not steps_per_second:
            return {}
        tokens = steps_per_second * self.tokens_per_step
        utilisation = mfu(tokens, self.flops_per_token, self.peak_flops, self.devices)
        return {"tok/s": f"{tokens:.3g}", **({} if utilisation is None else {"mfu": f"{utilisation:.1%}"})}


class RunProgressBar(L.Callback):
    def __init__(self, total_steps: int, speed: Speed):
        self.total_steps, self.speed = total_steps, speed
        self.bar: tqdm | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.bar = tqdm(total=self.total_steps, initial=trainer.global_step, unit="step", delay=2.0,
                        dynamic_ncols=True, file=sys.stderr)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.bar.update(trainer.global_step - self.bar.n)
        if trainer.global_step % pl_module.log_every == 0:
            self._show(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self._show(trainer)

    def _show(self, trainer) -> None:
        loss = _val_loss(trainer)
        postfix = {} if loss is None else {"val_loss": f"{loss:.4f}"}
        self.bar.set_postfix(postfix | self.speed(self.bar.format_dict["rate"]), refresh=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self.bar.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressLog(L.Callback):
    """One log line every `seconds`: the step, the last validation loss, the rate, the time left."""

    def __init__(self, total_steps: int, seconds: float, speed: Speed):
        self.total_steps, self.seconds, self.speed = total_steps, seconds, speed
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
        speed = "".join(f", {value} {name}" for name, value in self.speed(rate).items())
        log.info("step %d/%d (%.0f%%), val_loss %s, %.3g steps/s%s, about %.0f s left", step, self.total_steps,
                 100 * step / self.total_steps, "-" if loss is None else f"{loss:.4f}", rate, speed, left)
