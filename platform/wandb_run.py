"""The W&B mirror of a training run: one W&B run per job, offline unless `logger.mode=online`,
logging what `scalelab.wandb_keys` names, so that a scaling dashboard plots without editing.
Tags: N, D, C, the role, and the model preset's name only when the model is that preset unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from scalelab import conf
from scalelab import record as rec
from scalelab.conf.schema import ModelConfig
from scalelab.schedule import lr_multiplier
from scalelab.wandb_keys import BY_TOKENS, LOSSES, SCALE, TRAIN_JOB, X_AXIS

PRESETS = Path(conf.__file__).parent / "model"


def is_preset(model: DictConfig) -> bool:
    """Whether the model is its preset (`conf/model/<name>.yaml`) with nothing overridden."""
    path = PRESETS / f"{model.name}.yaml"
    return path.is_file() and OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path)) == model


def tags(cfg: DictConfig, scale: dict) -> list[str]:
    out = [f"N={scale['N']:.3g}", f"D={scale['D']:.3g}", f"C={scale['C']:.2g}"]
    if cfg.trial.role:
        out.append(f"role={cfg.trial.role}")
    if is_preset(cfg.model):
        out.append(cfg.model.name)
    return out


def open_run(cfg: DictConfig, run_dir: Path, run_id: str, config: dict, scale: dict, where: dict):
    """The job's W&B run, started now (its start-up is then not counted as training); None on
    processes other than the first, and with another logger. `where`: the run's place (`placement`)."""
    if cfg.logger.kind != "wandb" or rank_zero_only.rank != 0:
        return None
    # Imported here: wandb takes about a second to import, and only this logger needs it.
    import wandb

    run = wandb.init(
        project=cfg.logger.project, entity=cfg.logger.entity, dir=str(run_dir), id=run_id,
        name=run_dir.name if where["trial"] is None else f"{where['study']}#{where['trial']}",
        group=where["study"] or run_dir.name, job_type=TRAIN_JOB, tags=tags(cfg, scale),
        config=rec.flatten(config) | {k: scale[k] for k in (*SCALE, *rec.MOE_SCALE) if k in scale} | where,
        mode=os.environ.get("WANDB_MODE", cfg.logger.mode.value), resume="allow",
        settings=wandb.Settings(silent=True),  # where the files went is the run folder's `wandb/`
    )
    run.define_metric(X_AXIS)
    run.define_metric("flops")
    for name in BY_TOKENS:
        run.define_metric(name, step_metric=X_AXIS, summary="min,last" if name in LOSSES else None)
    return run


class WandbLog(L.Callback):
    """Logs the run's curve point by point as the module records it, and the training loss."""

    def __init__(self, run, cfg: DictConfig, tokens_per_step: int, flops_per_token: float, total_steps: int):
        self.run, self.tokens_per_step, self.flops_per_token = run, tokens_per_step, flops_per_token
        self.lr, self.multiplier = cfg.optim.lr, lr_multiplier(cfg.schedule, total_steps)
        self.log_every = cfg.train.log_every
        self.logged = -1  # the last curve step logged

    def _log(self, step: int, values: dict) -> None:
        tokens = step * self.tokens_per_step
        self.run.log({**values, "tokens": tokens, "flops": tokens * self.flops_per_token}, step=step)

    def _log_curve(self, module) -> None:
        for point in module.curve:
            if point["step"] > self.logged:
                # eval_tokens: the held-out tokens this point was scored on (part of the set; the
                # summary's final_val_loss is on all of it), so a reader in W&B sees why they differ
                self._log(point["step"], {"val_loss": point["val_loss"], "eval_tokens": point.get("eval_tokens")})
                self.logged = point["step"]

    def on_train_start(self, trainer, pl_module) -> None:
        self.logged = trainer.global_step - 1  # a resumed run logged the points before it
        self._log_curve(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if outputs is not None and step % self.log_every == 0:  # None: a skipped (diverged) step
            # the rate that made this step's update: the schedule's value at the step before it
            # an MoE's router losses and expert load too (`record.MOE_METRICS`)
            self._log(step, {"train_loss": pl_module.train_loss, "lr": self.lr * self.multiplier(step - 1),
                             **pl_module.router_metrics})

    def on_validation_end(self, trainer, pl_module) -> None:
        self._log_curve(pl_module)


def finish(run, status: str, metrics: dict) -> None:
    """Finish the W&B run in every case, with the record's final metrics in its summary."""
    if run is None:
        return
    run.summary.update({k: v for k, v in metrics.items() if v is not None} | {"status": status})
    run.finish(exit_code=0 if status in ("completed", "diverged", "pruned") else 1)
