"""The LightningModule: one GPT trained on a token stream, evaluated on a fixed held-out set."""
from __future__ import annotations

import math
import time

import lightning as L
import torch
from torch.utils.data import DataLoader

from scalelab.platform.data import TrainBatches
from scalelab.platform.model import GPT
from scalelab.platform.schedule import lr_multiplier


class LanguageModelTask(L.LightningModule):
    """Each Lightning epoch is one evaluation interval (`eval_every` steps), so validation and the
    resumable checkpoint both fall on epoch ends, and the last, shorter epoch ends the run."""

    def __init__(self, model: GPT, train_batches: TrainBatches, val_set: list, cfg, total_steps: int):
        super().__init__()
        self.model = model
        self.train_batches = train_batches
        self.val_set = val_set
        self.optim, self.schedule = cfg.optim, cfg.schedule
        self.divergence_factor = cfg.train.divergence_factor
        self.tokens_per_step = cfg.train.batch_size * cfg.model.context
        self.total_steps = total_steps
        self.initial_loss: float | None = None
        self.curve: list[dict] = []
        self.diverged_at: int | None = None
        self.start_step = 0  # where this process began: above 0 when resumed
        self.eval_seconds = 0.0  # this process's time in evaluation, to leave out of throughput
        self._val_sum = self._val_count = 0.0

    # -- data ---------------------------------------------------------------------------------
    def train_dataloader(self):
        self.train_batches.current_step = lambda: self.trainer.global_step
        self.train_batches.rank, self.train_batches.world_size = self.trainer.global_rank, self.trainer.world_size
        return DataLoader(self.train_batches, batch_size=None)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=None)

    # -- training -----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.initial_loss is None:  # a resumed run restores it from the checkpoint
            started = time.perf_counter()
            self.initial_loss = self.evaluate()
            self.eval_seconds += time.perf_counter() - started
            self.curve.append({"step": 0, "tokens": 0, "val_loss": self.initial_loss})

    def on_train_start(self) -> None:
        self.start_step = self.trainer.global_step

    def training_step(self, batch, batch_idx):
        loss = self.model.loss(*batch)
        # The mean over processes (itself on one device): every process must take the same
        # decision below, or data-parallel training would wait forever for a skipped step.
        value = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean").item()
        if not math.isfinite(value) or value > self.divergence_factor * self.initial_loss:
            # Divergence is a result (this learning rate is unstable), not a crash: stop cleanly.
            self.diverged_at = self.trainer.global_step
            self.trainer.should_stop = True
            return None  # skip the update, keep the weights finite
        if batch_idx % 10 == 0:
            self.log("train_loss", value, on_step=True, prog_bar=True)
        return loss

    def configure_optimizers(self):
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.optim.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=self.optim.lr, betas=tuple(self.optim.betas), eps=self.optim.eps,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(self.schedule, self.total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float:
        was_training = self.model.training
        self.model.eval()
        total = sum(self.model.loss(x.to(self.device), y.to(self.device)).item() * len(x) for x, y in self.val_set)
        self.model.train(was_training)
        return total / sum(len(x) for x, _ in self.val_set)

    def on_validation_epoch_start(self) -> None:
        self._val_started = time.perf_counter()
        self._val_sum = self._val_count = 0.0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._val_sum += self.model.loss(x, y).item() * len(x)
        self._val_count += len(x)

    def on_validation_epoch_end(self) -> None:
        val_loss = self._val_sum / self._val_count
        step = self.trainer.global_step
        if not self.curve or self.curve[-1]["step"] != step:
            self.curve.append({"step": step, "tokens": step * self.tokens_per_step, "val_loss": val_loss})
        self.log("val_loss", val_loss, prog_bar=True, sync_dist=True)
        self.eval_seconds += time.perf_counter() - self._val_started

    # -- checkpoint ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["scalelab"] = {"initial_loss": self.initial_loss, "curve": self.curve}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["scalelab"]
        self.initial_loss, self.curve = state["initial_loss"], state["curve"]
