"""Pruning a training run that is a trial of a sweep.

After every evaluation the validation loss is reported to the run's Optuna trial against the
tokens seen so far (Optuna's "step"), and the run stops when the study's pruner says so: trials
of different batch sizes are compared after the same number of tokens, not of optimizer steps
(`train.eval_every_tokens` puts their evaluations on the same token counts). With several processes (data parallelism) only the first
one reports and asks the pruner; its decision is broadcast, so every process stops at the same
step and none waits forever for the others (as optuna-integration's Lightning callback does).
"""
from __future__ import annotations

import lightning as L
import optuna

from scalelab.sweeps.reporting import TrialReporter


class TrialPruning(L.Callback):
    def __init__(self, study_name: str, storage: str, number: int, tokens_per_step: int,
                 monitor: str = "val_loss") -> None:
        self.reporter = TrialReporter(study_name, storage, number)
        self.tokens_per_step, self.monitor = tokens_per_step, monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        tokens = trainer.global_step * self.tokens_per_step
        prune = self.reporter.report(float(value), tokens) if trainer.is_global_zero else False
        if trainer.strategy.broadcast(prune, src=0):
            raise optuna.TrialPruned(f"trial {self.reporter.number} pruned after {tokens} tokens (step "
                                     f"{trainer.global_step}, val_loss={float(value):.4g})")
