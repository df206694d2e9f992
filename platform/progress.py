"""One progress bar over the whole run (Lightning's own restarts at every epoch, and our epochs
are evaluation intervals). It appears only on a terminal, after two seconds, and never under CI."""
from __future__ import annotations

import os
import sys

import lightning as L
from tqdm import tqdm


def wants_progress_bar() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


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
        if self.bar is not None and "val_loss" in trainer.callback_metrics:
            self.bar.set_postfix(val_loss=f"{float(trainer.callback_metrics['val_loss']):.4f}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.bar.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.bar is not None:
            self.bar.close()
