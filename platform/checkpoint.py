"""The checkpoint a preempted run resumes from: one file, rewritten atomically at every epoch end
(every evaluation), so a kill at any moment leaves the previous complete one."""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L


class ResumeCheckpoint(L.Callback):
    def __init__(self, path: Path, keep_final: bool):
        self.path, self.keep_final = Path(path), keep_final

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.should_stop:  # a diverged or pruned run is not resumed
            return
        if trainer.global_step >= trainer.max_steps and not self.keep_final:
            return  # the run is over and its record comes next: nothing would resume from it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)  # every process takes part; the first one writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
