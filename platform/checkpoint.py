"""The checkpoint a preempted run resumes from: one file, rewritten atomically at every epoch end
(every evaluation), so a kill at any moment leaves the previous complete one."""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch

from scalelab.platform.errors import RunFolderError


class ResumeCheckpoint(L.Callback):
    def __init__(self, path: Path, keep_final: bool):
        self.path, self.keep_final = Path(path), keep_final

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.should_stop:  # a diverged or pruned run is not resumed
            return
        if trainer.global_step >= trainer.max_steps and not self.keep_final:
            return  # the run is over and its record comes next: nothing would resume from it
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if trainer.is_global_zero:
                tmp.touch()  # Lightning's save passes over a PermissionError, leaving no file and no error
            trainer.save_checkpoint(tmp)  # every process takes part; the first one writes
            if trainer.is_global_zero:
                os.replace(tmp, self.path)
        except OSError as e:  # the folder made read-only, or full, while the run trains
            raise RunFolderError(f"cannot write the checkpoint {self.path} at step {trainer.global_step} "
                                 f"({e.strerror or e}); make {self.path.parent} writable, then the same command "
                                 "resumes from the last checkpoint") from e


def check_readable(path: Path) -> None:
    """Refuse a checkpoint that cannot be loaded (truncated, or no checkpoint at all) before the
    run is set up: Lightning would fail on it at every rerun. Memory-mapped, so only its index
    is read."""
    try:
        torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception:  # noqa: BLE001 - whatever the reader says, the file cannot be resumed from
        raise RunFolderError(f"{path} cannot be read: the checkpoint is truncated or not a checkpoint; add "
                             "train.fresh_start=true to discard it and start the run over") from None
