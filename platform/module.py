"""The LightningModule: one GPT trained on a token stream, evaluated on a fixed held-out set."""
from __future__ import annotations

import inspect

import lightning as L
import torch
from torch.utils.data import DataLoader

from scalelab.platform.data import HeldOut, TrainBatches
from scalelab.platform.divergence import DivergenceCheck
from scalelab.platform.model import GPT
from scalelab.schedule import lr_multiplier


class LanguageModelTask(L.LightningModule):
    """Each Lightning epoch runs up to the next evaluation (`RunSetup.evaluations`), so validation and the
    resumable checkpoint both fall on epoch ends, and the last, shorter epoch ends the run.
    The curve's points are measured on the curve part of the held-out set, the initial and final
    loss on all of it (see `HeldOut`); each point says how many tokens it was measured on.
    A mixture-of-experts model is trained on its loss plus the routers' auxiliary loss; the
    logged training loss is the language-model loss alone, comparable with a dense model's."""

    def __init__(self, model: GPT, train_batches: TrainBatches, held_out: HeldOut, cfg, total_steps: int):
        super().__init__()
        self.model = model
        self.compiled = cfg.train.compile
        if self.compiled:
            # The limit on recompilations counts per function across a process's runs (a sweep's
            # trials in one process): each run compiles afresh.
            torch._dynamo.reset()
            model.compile()  # in place: its state dict, so its checkpoints, stay those of the model
        self.train_batches = train_batches
        self.held_out = held_out
        self.log_every = cfg.train.log_every
        self.optim, self.schedule = cfg.optim, cfg.schedule
        self.divergence_factor = cfg.train.divergence_factor
        self.tokens_per_step = cfg.train.batch_size * cfg.model.context
        self.total_steps = total_steps
        self.initial_loss: float | None = None
        self.final_loss: float | None = None  # on the whole held-out set, at the final evaluation
        self.curve: list[dict] = []
        self.fused = cfg.optim.fused  # null: on a GPU, unless with 16-bit loss scaling
        self.divergence: DivergenceCheck | None = None
        self.diverged_at: int | None = None
        self.train_loss: float | None = None  # of the last logged step
        self._epoch_loss: float | None = None  # the same, while the loggers are still sent it (see on_train_batch_end)
        self.router_metrics: dict[str, float] = {}  # an MoE's, of the last logged step (GPT.router_metrics)
        self.clipped: list[torch.nn.Parameter] = []  # the parameters whose gradients are clipped (configure_optimizers)
        self._sums = torch.zeros(4)  # of the evaluation under way: loss sum and windows, all and curve part

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets `_current_fx_name` around every hook it calls, dozens of times a step;
        # nn.Module's __setattr__ (which looks for parameters, buffers, submodules) costs ~1 us
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # -- data ---------------------------------------------------------------------------------
    def train_dataloader(self):
        self.train_batches.current_step = lambda: self.trainer.global_step
        self.train_batches.rank, self.train_batches.world_size = self.trainer.global_rank, self.trainer.world_size
        # pinned batches go to the GPU without a synchronisation (they are copied non-blocking)
        self.train_batches.pin = self.device.type == "cuda"
        return self.train_batches  # itself: a DataLoader around it would only add host work per step

    def val_dataloader(self):
        self.held_out.final = lambda: self.trainer.global_step >= self.total_steps or self.trainer.should_stop
        return DataLoader(self.held_out, batch_size=None)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Batches are tensors made on the CPU: Lightning's walk through any collection costs more
        # than their copies. Non-blocking as Lightning copies, but to MPS (a race there).
        if device.type == "cpu":
            return batch
        return [t.to(device, non_blocking=device.type != "mps") for t in batch]

    # -- training -----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.initial_loss is None:  # a resumed run restores it from the checkpoint
            self.initial_loss, curve_loss = self.evaluate()
            self._add_point(curve_loss)

    def on_train_start(self) -> None:
        self.divergence = DivergenceCheck(self.trainer.optimizers[0], self.divergence_factor * self.initial_loss,
                                          self.device, loss_scaling=self.trainer.precision == "16-mixed")

    def steps_done(self, global_step: int) -> int:
        """Optimizer steps taken by the trainer's `global_step`, the diverging one included (a
        check read later skipped the rest)."""
        return global_step if self.diverged_at is None else self.diverged_at + 1

    def training_step(self, batch, batch_idx):
        step = self.trainer.global_step
        loss = self.model.loss(*batch)
        optimized = loss + self.model.router_loss() if self.model.moe_layers else loss
        # The mean over processes (itself on one device): every process takes the same decision,
        # or data-parallel training would wait forever for a skipped step.
        mean = self.trainer.strategy.reduce(loss.detach(), reduce_op="mean")
        self.divergence.observe(mean, step)
        if not self.divergence.must_read(step, self.train_batches.epoch_ends, self.log_every):
            return optimized
        diverged_at = self.divergence.diverged_at()
        if diverged_at is not None:
            self.diverged_at = diverged_at
            self.trainer.should_stop = True
            return None  # skip the update, keep the weights finite
        if (step + 1) % self.log_every == 0:  # the step this update makes
            self.train_loss = mean.item()
            self._epoch_loss = torch.tensor(self.train_loss).item()  # as `self.log` kept it: of the default dtype
            self.router_metrics = self.model.router_metrics()
        return optimized

    # The training loss goes to the loggers as `self.log("train_loss", ..., on_step=True)` sent
    # it, without that machinery's host work at every step: Lightning's logger connector sends
    # the epoch's last logged value every `train.log_every` batches that stepped and when the run
    # stops (at a divergence: the value already sent, again), under its count of those batches
    # (in a resumed run one ahead of the global step, so each value goes out later and relabelled).
    def on_train_epoch_start(self) -> None:
        self._epoch_loss = None  # the connector forgets its values at each epoch's end

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        stepped = self.trainer.fit_loop.epoch_loop._batches_that_stepped
        if self._epoch_loss is not None and ((stepped + 1) % self.log_every == 0 or self.trainer.should_stop):
            for logger in self.loggers:
                logger.log_metrics({"train_loss": self._epoch_loss, "epoch": self.current_epoch, **self.router_metrics},
                                   step=stepped)
                logger.save()

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # Lightning's own clipping refuses a fused optimizer, which unscales 16-bit gradients
        # itself; none is used with 16-bit loss scaling (see `set_up_run`), so the gradients here are unscaled.
        if gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(self.clipped, gradient_clip_val)

    def configure_optimizers(self):
        # listed once, on the device: walking the module tree at every step costs more than clipping
        self.clipped = list(self.model.parameters())
        groups = [{**g, "lr": self.optim.lr * g["lr_scale"]} for g in self.model.optimizer_groups(self.optim.weight_decay)]
        fused = self.fused if self.fused is not None else (self.device.type == "cuda"
                                                          and self.trainer.precision != "16-mixed")
        optimizer = torch.optim.AdamW(groups, lr=self.optim.lr, betas=tuple(self.optim.betas), eps=self.optim.eps,
                                      fused=fused)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(self.schedule, self.total_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- evaluation ---------------------------------------------------------------------------
    def _window_sums(self, x: torch.Tensor, y: torch.Tensor, in_curve: torch.Tensor) -> torch.Tensor:
        """(loss sum, windows) of the batch, then of its windows in the curve part."""
        losses = self.model.sequence_losses(x, y)
        return torch.stack([losses.sum(), torch.tensor(len(x), device=losses.device),
                            losses[in_curve].sum(), in_curve.sum()])

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """(loss on the whole held-out set, loss on its curve part), outside Lightning's loop."""
        was_training = self.model.training
        self.model.eval()
        sums = sum(self._window_sums(*(t.to(self.device) for t in batch)) for batch in self.held_out.full)
        self.model.train(was_training)
        return (sums[0] / sums[1]).item(), (sums[2] / sums[3]).item()

    def _add_point(self, val_loss: float) -> None:
        step = self.steps_done(self.trainer.global_step)
        if not self.curve or self.curve[-1]["step"] != step:
            self.curve.append({"step": step, "tokens": step * self.tokens_per_step, "val_loss": val_loss,
                               "eval_tokens": self.held_out.curve_tokens})

    def on_validation_epoch_start(self) -> None:
        self._sums = torch.zeros(4, device=self.device)

    def validation_step(self, batch, batch_idx):
        self._sums += self._window_sums(*batch)

    def on_validation_epoch_end(self) -> None:
        loss_all, windows_all, loss_curve, windows_curve = self._sums.tolist()
        if self.held_out.final():
            self.final_loss = loss_all / windows_all
        val_loss = loss_curve / windows_curve
        self._add_point(val_loss)
        self.log("val_loss", val_loss, prog_bar=True, sync_dist=True)

    # -- checkpoint ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["scalelab"] = {"initial_loss": self.initial_loss, "final_loss": self.final_loss, "curve": self.curve}
        if self.router_metrics:
            checkpoint["scalelab"]["router_metrics"] = self.router_metrics

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["scalelab"]
        self.initial_loss, self.final_loss, self.curve = state["initial_loss"], state.get("final_loss"), state["curve"]
        self.router_metrics = state.get("router_metrics", {})


# Lightning reads `training_step`'s signature at every step (does it take `batch_idx`?); a signature
# kept on the function spares building it each time (inspect returns `__signature__` as it is).
LanguageModelTask.training_step.__signature__ = inspect.signature(LanguageModelTask.training_step)
