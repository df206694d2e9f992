"""One training run: `scalelab train [overrides]`.

Hydra composes the config, `train(cfg)` checks it, builds the data, model and Lightning trainer
from it, trains (resuming the run folder's checkpoint, see `run_folder`) and writes `run.json`
whatever the ending. `hydra_task` is the function Hydra runs, once per job.
"""
from __future__ import annotations

import logging
import math
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from scalelab import record as rec
from scalelab.conf.schema import MAX_TOKENS, out_of_range, register_schema
from scalelab.messages import first_line
from scalelab.platform import wandb_run
from scalelab.platform.branches import Branch, Forks, plan_branches, train_branches
from scalelab.platform.checkpoint import ResumeCheckpoint
from scalelab.platform.cluster import check_launch, cluster_plugins
from scalelab.platform.data import Corpus, HeldOut, TrainBatches, load_corpus
from scalelab.platform.errors import ConfigError
from scalelab.platform.interrupt import StopOnCtrlC, ask_about_sigterm_every, exit_status, stop_cause
from scalelab.platform.mfu import mfu, peak_flops
from scalelab.platform.model import GPT, GPTShape, count_parameters
from scalelab.platform.module import LanguageModelTask
from scalelab.platform.progress import ProgressLog, RunProgressBar, Speed, wants_progress_bar
from scalelab.platform.pruning import TrialPruning
from scalelab.platform.run_folder import CHECKPOINT, open_run_folder, remember_config, resolved, run_id_for
from scalelab.platform.schedule import check_schedule
from scalelab.platform.threads import thread_count

register_schema()
# Lightning's banners (accelerators, tips, checkpoint notes) say nothing about the run.
for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.trainer.connectors.checkpoint_connector"):
    logging.getLogger(name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Everything decided before training starts; building it validates the config."""

    corpus: Corpus
    model: GPT
    n_params: int
    n_total: int
    total_steps: int
    tokens_per_step: int
    evaluations: list[int]  # the steps evaluated after step 0, the last step the last: the epoch ends
    branches: list[Branch]
    flops_per_token: float
    held_out: HeldOut

    def scale(self, model_name: str) -> dict:
        tokens = self.total_steps * self.tokens_per_step
        return {"N": self.n_params, "N_total": self.n_total, "D": tokens,
                "C": self.flops_per_token * tokens, "flops_per_token": self.flops_per_token,
                "model": model_name}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def plan_run(cfg: DictConfig) -> Plan:
    m, t = cfg.model, cfg.train
    problems = out_of_range(cfg)
    _require(not problems, "; ".join(problems))
    _require(m.width % m.heads == 0, f"model.width={m.width} must be divisible by model.heads={m.heads}")
    devices, nodes = cfg.trainer.devices, cfg.trainer.num_nodes
    if isinstance(devices, int) and devices * nodes > 1:  # the world size: every process takes a share
        _require(t.batch_size % (devices * nodes) == 0,
                 f"train.batch_size={t.batch_size} must be divisible by trainer.devices={devices}"
                 + (f" x trainer.num_nodes={nodes} = {devices * nodes}" if nodes != 1 else "")
                 + " (each device takes an equal share of the batch)")
    _require(not (cfg.schedule.branches and isinstance(devices, int) and devices * nodes > 1),
             "schedule.branches trains its branches in one process after the run; a data-parallel run "
             f"(trainer.devices={devices} trainer.num_nodes={nodes}) cannot branch yet")
    _require(len(cfg.optim.betas) == 2 and all(0 <= b < 1 for b in cfg.optim.betas),
             f"optim.betas={list(cfg.optim.betas)} must be two numbers in [0, 1)")
    _require(not (cfg.optim.fused and precision(cfg) == "16-mixed"),
             "optim.fused=true cannot train with train.precision=16-mixed: the fused optimizer unscales the "
             "gradients itself, after they are clipped; use bf16-mixed or optim.fused=false")
    _require(cfg.trainer.accelerator not in ("gpu", "cuda") or torch.cuda.is_available(),
             f"trainer.accelerator={cfg.trainer.accelerator} but no CUDA device is visible here; use trainer=cpu")

    corpus = load_corpus(cfg.data)
    for split, tokens in (("training", corpus.train), ("validation", corpus.val)):
        _require(len(tokens) > m.context + 1,
                 f"model.context={m.context} needs more than {m.context + 1} tokens per split; "
                 f"the {split} split holds {len(tokens)}")
    tokens_per_step = t.batch_size * m.context
    _require(tokens_per_step <= len(corpus.train),
             f"train.batch_size={t.batch_size} x model.context={m.context} = {tokens_per_step} tokens per step "
             f"is larger than the training split ({len(corpus.train)} tokens)")
    top = int(max(corpus.val.max(), corpus.train[: 1 << 20].max()))
    _require(top < corpus.vocab_size, f"data.vocab_size={corpus.vocab_size} is too small: the data holds token id {top}")

    _require(m.parametrization == "sp" or m.base_width is not None,
             "model.parametrization=mup needs model.base_width, the width at which it equals sp")
    shape = GPTShape(m.width, m.depth, m.heads, m.context, corpus.vocab_size, init_std=m.init_std,
                     parametrization=m.parametrization.value, base_width=m.base_width)
    L.seed_everything(t.seed, verbose=False)
    model = GPT(shape)
    n_params, n_total = count_parameters(model)
    if t.tokens_per_param is not None:
        tokens = t.tokens_per_param * n_params
        setting = f"train.tokens_per_param={t.tokens_per_param} (D={tokens:.4g})"
        _require(tokens <= MAX_TOKENS, f"{setting} must be at most {MAX_TOKENS:g} tokens (more is beyond any "
                                       "plausible run)")
    else:
        tokens = t.tokens
        setting = f"train.tokens={tokens:g}"
    total_steps = int(tokens // tokens_per_step)
    _require(total_steps >= 1, f"{setting} is smaller than one step: train.batch_size x model.context = "
                               f"{tokens_per_step} tokens")
    check_schedule(cfg.schedule, total_steps)
    if t.eval_every_tokens is not None:
        eval_every = int(t.eval_every_tokens // tokens_per_step)
        _require(eval_every * tokens_per_step == t.eval_every_tokens,
                 f"train.eval_every_tokens={t.eval_every_tokens:g} must be a multiple of the tokens per step, "
                 f"train.batch_size x model.context = {tokens_per_step}")
    else:
        eval_every = t.eval_every or math.ceil(total_steps / t.evals)
    branches = plan_branches(cfg.schedule, total_steps, tokens_per_step)
    # a branch forks at an epoch end, where the checkpoint is
    evaluations = sorted({*range(eval_every, total_steps, eval_every), total_steps, *(b.fork_step for b in branches)})
    between = len(evaluations) - 1  # evaluations between the first and the final
    held_out = HeldOut(corpus.val, t.eval_tokens, curve_eval_tokens(t, total_steps * tokens_per_step, between),
                       m.context, t.batch_size)
    return Plan(corpus, model, n_params, n_total, total_steps, tokens_per_step, evaluations, branches,
                rec.flops_per_token(n_params, m.depth, m.context, m.width), held_out)


def curve_eval_tokens(t: DictConfig, tokens: float, between: int) -> int:
    """Held-out tokens of the loss curve: as many as `train.eval_share` of the training FLOPs
    pays for at each of the `between` evaluations between the first and the final one (a forward
    pass costs a third of a training step per token), at most `train.eval_tokens`."""
    return int(min(t.eval_tokens, 3 * t.eval_share * tokens / max(between, 1)))


def summarize(module: LanguageModelTask | None, plan: Plan | None) -> dict:
    metrics = dict.fromkeys(("final_val_loss", "best_val_loss", "initial_loss", "steps", "tokens_seen",
                             "tokens_per_second", "mfu", "compile_seconds"))
    if module is None or plan is None:
        return metrics
    steps = module.steps_done if module._trainer is not None else 0
    module.stop_timer()
    losses = [p["val_loss"] for p in module.curve if p["val_loss"] is not None and math.isfinite(p["val_loss"])]
    metrics.update(
        # on the whole held-out set; a run stopped early (pruned, interrupted): its last curve point
        final_val_loss=module.final_loss if module.final_loss is not None else
        module.curve[-1]["val_loss"] if len(module.curve) > 1 else None,
        best_val_loss=min(losses) if losses else None,
        initial_loss=module.initial_loss,
        steps=steps,
        tokens_seen=steps * plan.tokens_per_step,
        tokens_per_second=module.timed_steps * plan.tokens_per_step / module.timed_seconds
        if module.timed_steps > 0 else None,
        compile_seconds=module.first_step_seconds if module.compiled else None,
    )
    return metrics


def precision(cfg: DictConfig) -> str:
    """`train.precision`, `auto` resolved: bf16-mixed on a GPU that has bf16, 16-mixed on an older
    GPU, full 32-bit on a CPU."""
    chosen = cfg.train.precision.value
    if chosen != "auto":
        return chosen
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        # (a GPU asked for where none is visible is refused by plan_run, which names it)
        return "16-mixed" if torch.cuda.is_available() and not torch.cuda.is_bf16_supported() else "bf16-mixed"
    return "32-true"


def csv_logger(cfg: DictConfig, run_dir: Path) -> CSVLogger | None:
    """Lightning's CSV logger with `logger=csv`; W&B is `wandb_run`'s, outside Lightning, so that
    its steps are the record's."""
    return CSVLogger(save_dir=str(run_dir), name="csv", version="") if cfg.logger.kind == "csv" else None


def build_trainer(cfg: DictConfig, plan: Plan, run_dir: Path, logger, callbacks: list) -> L.Trainer:
    """The Lightning trainer; `trainer.*` values Lightning rejects are a ConfigError naming them."""
    try:
        trainer = L.Trainer(
            accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, strategy=cfg.trainer.strategy,
            num_nodes=cfg.trainer.num_nodes, plugins=cluster_plugins(cfg.trainer.devices, cfg.trainer.num_nodes),
            precision=precision(cfg), max_steps=plan.total_steps, max_epochs=-1,
            logger=logger or False, callbacks=callbacks, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
            default_root_dir=str(run_dir), gradient_clip_val=cfg.optim.grad_clip or None,
            log_every_n_steps=cfg.train.log_every,
            use_distributed_sampler=False,  # training batches are shared out by TrainBatches; every
        )                                   # process evaluates the whole held-out set
        check_launch(trainer)
        ask_about_sigterm_every(trainer, cfg.train.log_every)
        return trainer
    except (ValueError, TypeError, MisconfigurationException) as e:  # Lightning checks the trainer.* values
        t = cfg.trainer
        nodes = f" trainer.num_nodes={t.num_nodes}" if t.num_nodes != 1 else ""
        raise ConfigError(f"trainer.accelerator={t.accelerator} trainer.devices={t.devices}{nodes} "
                          f"trainer.strategy={t.strategy}: {first_line(str(e))}") from None


def train(cfg: DictConfig, run_dir: str | Path | None = None, parent: dict | None = None) -> float | None:
    """Train one run and write its record; returns the final validation loss.

    `run_dir` defaults to Hydra's output folder. A ConfigError (bad input) or any exception is
    recorded as status `failed` and raised again; a pruned trial is recorded and returns. A
    folder whose run already finished is not trained again: its recorded loss is returned.
    With `schedule.branches`, the branches are trained after the run (`branches`); `parent`
    is what a branch records of its fork."""
    started_wall, started_at = time.perf_counter(), rec.now()
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    run_dir = Path(run_dir or hydra_cfg.runtime.output_dir)
    config = resolved(cfg)
    finished = open_run_folder(run_dir, config, precision(cfg), cfg.train.fresh_start)
    if finished is not None:
        log.info("%s already holds a %s run (record: %s); nothing to do (train.fresh_start=true trains it again)",
                 run_dir, finished["status"], run_dir / rec.FILE_NAME)
        _train_branches(cfg, run_dir, finished)
        return rec.get(finished, "metrics.final_val_loss")
    run_id = run_id_for(run_dir)
    where = placement(cfg, hydra_cfg)
    status, error = "failed", None
    plan = module = wandb = peak = None
    try:
        plan = plan_run(cfg)
        remember_config(run_dir, config)
        module = LanguageModelTask(plan.model, TrainBatches(plan.corpus.train, cfg.train.batch_size,
                                                            cfg.model.context, cfg.train.seed, plan.evaluations),
                                   plan.held_out, cfg, plan.total_steps)
        wandb = wandb_run.open_run(cfg, run_dir, run_id, config, plan.scale(cfg.model.name), where)
        checkpoint = run_dir / CHECKPOINT
        callbacks = [ResumeCheckpoint(checkpoint, cfg.train.keep_checkpoint), Forks(run_dir, cfg, plan.branches), StopOnCtrlC()]
        if cfg.trial.number is not None:
            callbacks.append(TrialPruning(cfg.trial.study_name, cfg.trial.storage, cfg.trial.number,
                                          plan.tokens_per_step))
        if wandb is not None:
            callbacks.append(wandb_run.WandbLog(wandb, cfg, plan.tokens_per_step, plan.flops_per_token,
                                                plan.total_steps))
        trainer = build_trainer(cfg, plan, run_dir, csv_logger(cfg, run_dir), callbacks)
        peak = peak_flops(device_name(trainer.strategy.root_device), cfg.trainer.peak_flops)
        speed = Speed(plan.tokens_per_step, plan.flops_per_token, peak, trainer.world_size)
        trainer.callbacks.append(RunProgressBar(plan.total_steps, speed) if wants_progress_bar() else
                                 ProgressLog(plan.total_steps, cfg.train.progress_seconds, speed))
        torch.set_num_threads(thread_count(cfg.trainer.threads, trainer.num_devices))
        resume = checkpoint.exists() and not cfg.train.fresh_start  # another process may not have removed it yet
        if resume:
            log.info("resuming %s from %s", run_dir, checkpoint)
        trainer.fit(module, ckpt_path=checkpoint if resume else None)
        status = "diverged" if module.diverged_at is not None else "completed"
    except optuna.TrialPruned:  # raised by TrialPruning alone, so only a trial of a sweep ends here
        status = "pruned"
    except ConfigError as e:
        error = str(e)
        raise
    except BaseException as e:
        if isinstance(e, Exception):
            error = traceback.format_exc()
            raise
        error = f"interrupted ({stop_cause(e)})"
        code = exit_status(e)
        if code is not None:
            raise SystemExit(code) from e
        raise
    finally:
        # Only a preempted run needs the checkpoint. One process removes it: with several, another
        # one may still be writing into the folder.
        if status != "failed" and not cfg.train.keep_checkpoint and _is_global_zero(module):
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        metrics = summarize(module, plan)
        if plan is not None and module is not None and module._trainer is not None:
            metrics["mfu"] = mfu(metrics["tokens_per_second"], plan.flops_per_token, peak, module.trainer.world_size)
        metrics["wall_seconds"] = time.perf_counter() - started_wall
        record = {
            "run_id": run_id,
            "study": cfg.trial.study_name, "ladder": where["ladder"], "trial": cfg.trial.number,
            "status": status, "error": error, "config": config,
            "overrides": list(hydra_cfg.overrides.task) if hydra_cfg and parent is None else [],
            "scale": plan.scale(cfg.model.name) if plan else None,
            "hparams": hparams(cfg),
            "metrics": metrics,
            "curve": module.curve if module else [],
            "environment": {**rec.environment(cfg.train.seed, _device(module)), "threads": torch.get_num_threads(),
                            "precision": module.trainer.precision if module and module._trainer else None},
            "started_at": started_at, "ended_at": rec.now(),
            "branch": parent,
        }
        if _is_global_zero(module):  # one record per run, whatever the number of processes
            path = rec.write(run_dir, record)
            wandb_run.finish(wandb, status, metrics)
            log.info("%s, final validation loss %s; record: %s", status, metrics["final_val_loss"], path)
    if _is_global_zero(module):
        _train_branches(cfg, run_dir, record)
    return metrics["final_val_loss"]


def _train_branches(cfg: DictConfig, run_dir: Path, record: dict) -> None:
    """A run's cooldown branches, then what the family cost, into the run's record."""
    family = train_branches(cfg, run_dir, record, train)
    if family is not None and record.get("family") != family:
        rec.write(run_dir, {**record, "family": family})


def placement(cfg: DictConfig, hydra_cfg: Any) -> dict[str, Any]:
    """Where a run belongs. A sweep's scales are studies `<ladder>/<scale>`, the ladder being the
    sweeper's `study_name`; a run outside a sweep belongs to none."""
    study = cfg.trial.study_name
    ladder = OmegaConf.select(hydra_cfg, "sweeper.study_name") if hydra_cfg is not None and study else None
    scale = study[len(ladder) + 1:] if ladder and study.startswith(f"{ladder}/") else None
    return {"study": study, "ladder": ladder or study, "scale": scale, "trial": cfg.trial.number,
            "role": cfg.trial.role, "searched": list(cfg.trial.searched or [])}


def hparams(cfg: DictConfig) -> dict:
    """The hyperparameters the analysis reads, plus every value the sweeper searched, by config path."""
    values = {}
    for name, path in [*rec.HPARAMS.items(), *((path, path) for path in cfg.trial.searched or [])]:
        value = OmegaConf.select(cfg, path)
        values[name] = value.value if isinstance(value, Enum) else value
    return values


def _is_global_zero(module) -> bool:
    return module is None or module._trainer is None or module.trainer.is_global_zero


def _device(module) -> str:
    """The device the run trained on (the model itself is back on the CPU after training)."""
    return device_name(module.trainer.strategy.root_device) if module is not None and module._trainer else "cpu"


def device_name(device: torch.device) -> str:
    """As the record names a device: `cpu`, or `cuda (NVIDIA H100 80GB HBM3)`."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def hydra_task(cfg: DictConfig) -> float | None:
    """What Hydra runs for each job of `scalelab train [-m]`: bad input is one line and exit 2."""
    try:
        return train(cfg)
    except ConfigError as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the failed trial and goes on
        print(f"scalelab: error: {e}", file=sys.stderr)
        sys.exit(2)
