"""One training run: `scalelab train [overrides]`.

Hydra composes the config; `train(cfg)` sets the run up from it (checking it), builds the
LightningModule and the trainer, trains (resuming the run folder's checkpoint, see `run_folder`),
then builds `run.json` from what those steps made, whatever the ending, and writes it.
`hydra_task` is the function Hydra runs, once per job.
"""
from __future__ import annotations

import logging
import math
import shutil
import signal
import tempfile
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
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from scalelab import record as rec
from scalelab.conf.schema import register_schema
from scalelab.messages import first_line
from scalelab.platform import wandb_run
from scalelab.platform.branches import Forks, train_branches
from scalelab.platform.checkpoint import ResumeCheckpoint
from scalelab.platform.cluster import check_launch, cluster_plugins
from scalelab.platform.data import TrainBatches
from scalelab.platform.errors import ConfigError, RunFolderError
from scalelab.platform.folder_owner import own_folder
from scalelab.platform.interrupt import StopOnCtrlC, ask_about_sigterm_every, exit_status, stop_cause
from scalelab.platform.lean import QuietProfiler, skip_idle_step_hooks
from scalelab.platform.mfu import mfu, peak_flops
from scalelab.platform.module import LanguageModelTask
from scalelab.platform.progress import ProgressLog, RunProgressBar, Speed, wants_progress_bar
from scalelab.platform.pruning import TrialPruning
from scalelab.platform.run_folder import CHECKPOINT, open_run_folder, remember_config, resolved, run_id_for
from scalelab.platform.setup import RunSetup, precision, set_up_run
from scalelab.platform.threads import thread_count
from scalelab.platform.timer import ThroughputTimer

register_schema()
# Lightning's banners (accelerators, tips, checkpoint notes) say nothing about the run.
for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.trainer.connectors.checkpoint_connector"):
    logging.getLogger(name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")

log = logging.getLogger(__name__)


def csv_logger(cfg: DictConfig, run_dir: Path) -> CSVLogger | None:
    """Lightning's CSV logger with `logger=csv`; W&B is `wandb_run`'s, outside Lightning, so that
    its steps are the record's."""
    return CSVLogger(save_dir=str(run_dir), name="csv", version="") if cfg.logger.kind == "csv" else None


def build_trainer(cfg: DictConfig, setup: RunSetup, run_dir: Path, logger, callbacks: list) -> L.Trainer:
    """The Lightning trainer; `trainer.*` values Lightning rejects are a ConfigError naming them."""
    try:
        trainer = L.Trainer(
            accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices, strategy=cfg.trainer.strategy,
            num_nodes=cfg.trainer.num_nodes, plugins=cluster_plugins(cfg.trainer.devices, cfg.trainer.num_nodes),
            precision=precision(cfg), max_steps=setup.total_steps, max_epochs=-1,
            logger=logger or False, callbacks=callbacks, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
            default_root_dir=str(run_dir), gradient_clip_val=cfg.optim.grad_clip or None,
            log_every_n_steps=cfg.train.log_every, profiler=QuietProfiler(),
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


@dataclass
class Run:
    """One run as `train` builds it: where and when it started, then what each step made, as far
    as the steps got (a step that failed leaves its part and the later ones None). Its record is
    built from it."""

    dir: Path
    id: str
    where: dict[str, Any]  # see `placement`
    started_at: str
    started_wall: float
    setup: RunSetup | None = None
    module: LanguageModelTask | None = None
    wandb: Any = None  # the W&B run, with `logger=wandb` on the first process
    trainer: L.Trainer | None = None
    peak_flops: float | None = None  # one device's, where known: the progress line's MFU and the record's
    timer: ThroughputTimer | None = None

    @property
    def is_global_zero(self) -> bool:
        """Whether this process speaks for the run: one record per run, whatever the number of processes."""
        return self.trainer is None or self.trainer.is_global_zero


@dataclass
class Ending:
    """How a run ended: its record's status and error text, and what `train` raises again once
    the record is written (nothing for a completed, diverged or pruned run)."""

    status: str
    error: str | None = None
    exception: BaseException | None = None

    @classmethod
    def of(cls, e: BaseException) -> Ending:
        if isinstance(e, optuna.TrialPruned):  # raised by TrialPruning alone, so only a trial of a sweep ends here
            return cls("pruned")
        if isinstance(e, ConfigError):
            return cls("failed", str(e), e)
        if isinstance(e, Exception):
            return cls("failed", "".join(traceback.format_exception(e)), e)
        return cls("failed", f"interrupted ({stop_cause(e)})", e)

    def raise_again(self, run: Run) -> None:
        """Raise what ended the run; a stop by Ctrl-C or SIGTERM as the exit status a shell expects,
        the first process's Ctrl-C as a KeyboardInterrupt saying what is left, which `scalelab.cli`
        prints in one line (exit status 130)."""
        e = self.exception
        if e is None:
            return
        code = None if isinstance(e, Exception) else exit_status(e)
        if code == 128 + signal.SIGINT and run.is_global_zero:
            then = "resumes it from its checkpoint" if (run.dir / CHECKPOINT).exists() else "starts it again"
            raise KeyboardInterrupt(f"{run.dir / rec.FILE_NAME} records the run; the same command {then}") from e
        if code is not None:
            raise SystemExit(code) from e
        raise e


def train(cfg: DictConfig, run_dir: str | Path | None = None, parent: dict | None = None) -> float | None:
    """Train one run and write its record; returns the final validation loss.

    `run_dir` defaults to Hydra's output folder. A ConfigError (bad input) or any exception is
    recorded as status `failed` and raised again; a pruned trial is recorded and returns. A
    folder whose run already finished is not trained again: its recorded loss is returned.
    With `schedule.branches`, the branches are trained after the run (`branches`); `parent`
    is what a branch records of its fork. One run at a time holds its folder (`folder_owner`)."""
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    run_dir = Path(run_dir or hydra_cfg.runtime.output_dir)
    with own_folder(run_dir):
        return train_in(cfg, run_dir, hydra_cfg, parent)


def train_in(cfg: DictConfig, run_dir: Path, hydra_cfg: Any, parent: dict | None) -> float | None:
    """`train` in the folder it holds."""
    started_at, started_wall = rec.now(), time.perf_counter()
    config = resolved(cfg)
    finished = open_run_folder(run_dir, config, precision(cfg), cfg.train.fresh_start)
    if finished is not None:
        return already_trained(cfg, run_dir, finished)
    run = Run(run_dir, run_id_for(run_dir), placement(cfg, hydra_cfg), started_at, started_wall)
    try:
        run.setup = set_up_run(cfg)
        remember_config(run_dir, config)
        run.module = build_module(cfg, run.setup)
        run.wandb = wandb_run.open_run(cfg, run_dir, run.id, config, run.setup.scale(cfg.model.name), run.where)
        run.timer = ThroughputTimer()
        run.trainer = build_trainer(cfg, run.setup, run_dir, csv_logger(cfg, run_dir),
                                    callbacks(cfg, run_dir, run.setup, run.wandb))
        run.peak_flops = peak(cfg, run.trainer)
        run.trainer.callbacks += [progress(cfg, run.setup, run.trainer, run.peak_flops), run.timer]  # the timer last
        skip_idle_step_hooks([*run.trainer.callbacks, run.module])
        fit(cfg, run.trainer, run.module, run_dir)
        ending = Ending("diverged" if run.module.diverged_at is not None else "completed")
    except BaseException as e:
        ending = Ending.of(e)
    if ending.status != "failed":
        remove_checkpoint(cfg, run)
    record = run_record(cfg, config, run, ending, hydra_cfg, parent)
    if run.is_global_zero:
        write_record(run, record)
    ending.raise_again(run)
    if run.is_global_zero:
        _train_branches(cfg, run_dir, record)
    return record["metrics"]["final_val_loss"]


def already_trained(cfg: DictConfig, run_dir: Path, finished: dict) -> float | None:
    """A folder whose run has a record: its branches, if any are left, and its recorded loss."""
    log.info("%s already holds a %s run (record: %s); nothing to do (train.fresh_start=true trains it again)",
             run_dir, finished["status"], run_dir / rec.FILE_NAME)
    _train_branches(cfg, run_dir, finished)
    return rec.get(finished, "metrics.final_val_loss")


def build_module(cfg: DictConfig, setup: RunSetup) -> LanguageModelTask:
    batches = TrainBatches(setup.corpus.train, cfg.train.batch_size, cfg.model.context, cfg.train.seed,
                           setup.evaluations)
    return LanguageModelTask(setup.model, batches, setup.held_out, cfg, setup.total_steps)


def callbacks(cfg: DictConfig, run_dir: Path, setup: RunSetup, wandb: Any) -> list[L.Callback]:
    """The checkpoint to resume from (before the forks, which copy it), the branches' forks,
    Ctrl-C; in a sweep's trial, pruning; with `logger=wandb`, the W&B mirror."""
    out = [ResumeCheckpoint(run_dir / CHECKPOINT, cfg.train.keep_checkpoint), Forks(run_dir, cfg, setup.branches),
           StopOnCtrlC()]
    if cfg.trial.number is not None:
        out.append(TrialPruning(cfg.trial.study_name, cfg.trial.storage, cfg.trial.number, setup.tokens_per_step))
    if wandb is not None:
        out.append(wandb_run.WandbLog(wandb, cfg, setup.tokens_per_step, setup.flops_per_token, setup.total_steps))
    return out


def progress(cfg: DictConfig, setup: RunSetup, trainer: L.Trainer, peak_flops: float | None) -> L.Callback:
    """A progress bar on a terminal, else a log line every `train.progress_seconds`."""
    speed = Speed(setup.tokens_per_step, setup.flops_per_token, peak_flops, trainer.world_size)
    return (RunProgressBar(setup.total_steps, speed) if wants_progress_bar() else
            ProgressLog(setup.total_steps, cfg.train.progress_seconds, speed))


def fit(cfg: DictConfig, trainer: L.Trainer, module: LanguageModelTask, run_dir: Path) -> None:
    """Train with this process's share of the cores, from the run folder's checkpoint if it holds one."""
    torch.set_num_threads(thread_count(cfg.trainer.threads, trainer.num_devices))
    checkpoint = run_dir / CHECKPOINT
    resume = checkpoint.exists() and not cfg.train.fresh_start  # another process may not have removed it yet
    if resume:
        log.info("resuming %s from %s", run_dir, checkpoint)
    trainer.fit(module, ckpt_path=checkpoint if resume else None)


def remove_checkpoint(cfg: DictConfig, run: Run) -> None:
    """Only a preempted run needs the checkpoint. One process removes it: with several, another
    one may still be writing into the folder."""
    if not cfg.train.keep_checkpoint and run.is_global_zero:
        shutil.rmtree(run.dir / "checkpoints", ignore_errors=True)


def run_record(cfg: DictConfig, config: dict, run: Run, ending: Ending, hydra_cfg: Any, parent: dict | None) -> dict:
    """The run's record (`scalelab.record`) from what its steps made, however far they got. A
    branch records its fork (`parent`) instead of the command line's overrides."""
    trainer = run.trainer
    device = device_name(trainer.strategy.root_device) if trainer else "cpu"
    metrics = summarize(cfg, run)
    metrics["wall_seconds"] = time.perf_counter() - run.started_wall
    return {
        "run_id": run.id,
        "study": cfg.trial.study_name, "ladder": run.where["ladder"], "ladder_id": run.where["ladder_id"],
        "trial": cfg.trial.number,
        "status": ending.status, "error": ending.error, "config": config,
        "overrides": list(hydra_cfg.overrides.task) if hydra_cfg and parent is None else [],
        "scale": run.setup.scale(cfg.model.name) if run.setup else None,
        "hparams": hparams(cfg),
        "metrics": metrics,
        "curve": run.module.curve if run.module else [],
        "environment": {**rec.environment(cfg.train.seed, device), "threads": torch.get_num_threads(),
                        "precision": trainer.precision if trainer else None},
        "started_at": run.started_at, "ended_at": rec.now(),
        "branch": parent,
    }


def summarize(cfg: DictConfig, run: Run) -> dict:
    """The record's metrics but the wall time: the losses, how far the run got, how fast."""
    metrics = dict.fromkeys(("final_val_loss", "best_val_loss", "initial_loss", "steps", "tokens_seen",
                             "tokens_per_second", "mfu", "compile_seconds"))
    module, setup, trainer, timer = run.module, run.setup, run.trainer, run.timer
    if module is None:
        return metrics
    steps = module.steps_done(trainer.global_step) if trainer is not None else 0
    losses = [p["val_loss"] for p in module.curve if p["val_loss"] is not None and math.isfinite(p["val_loss"])]
    tokens_per_second = timer.tokens_per_second(setup.tokens_per_step) if timer is not None else None
    metrics.update(
        # on the whole held-out set; a run stopped early (pruned, interrupted): its last curve point
        final_val_loss=module.final_loss if module.final_loss is not None else
        module.curve[-1]["val_loss"] if len(module.curve) > 1 else None,
        best_val_loss=min(losses) if losses else None,
        initial_loss=module.initial_loss,
        steps=steps,
        tokens_seen=steps * setup.tokens_per_step,
        tokens_per_second=tokens_per_second,
        mfu=mfu(tokens_per_second, setup.flops_per_token, run.peak_flops, trainer.world_size) if trainer else None,
        compile_seconds=timer.first_step_seconds if cfg.train.compile and timer is not None else None,
    )
    metrics.update(module.router_metrics)  # an MoE's, of its last logged step (record.MOE_METRICS); none for dense
    return metrics


def write_record(run: Run, record: dict) -> None:
    """Write the record and finish the W&B run with its metrics. A folder that cannot take the
    record any more (made read-only while the run trained) does not lose it: it goes to a
    temporary folder, named in the RunFolderError raised then."""
    try:
        path, error = rec.write(run.dir, record), None
    except OSError as e:
        path, error = rec.write(tempfile.mkdtemp(prefix=f"scalelab-record-{run.id}-"), record), e
    wandb_run.finish(run.wandb, record["status"], record["metrics"])
    log.info("%s, final validation loss %s; record: %s", record["status"], record["metrics"]["final_val_loss"], path)
    if error is not None:
        raise RunFolderError(f"cannot write {run.dir / rec.FILE_NAME} ({error.strerror or error}); the run's record "
                             f"({record['status']}) is {path} instead: move it there once the folder takes files")


def _train_branches(cfg: DictConfig, run_dir: Path, record: dict) -> None:
    """A run's cooldown branches, then what the family cost, into the run's record."""
    family = train_branches(cfg, run_dir, record, train)
    if family is not None and record.get("family") != family:
        rec.write(run_dir, {**record, "family": family})


def placement(cfg: DictConfig, hydra_cfg: Any) -> dict[str, Any]:
    """Where a run belongs. A sweep's scales are studies `<ladder>/<scale>`, the ladder being the
    sweeper's `study_name`, told apart from another sweep of that name by its `ladder_id`; a run
    outside a sweep belongs to none."""
    study = cfg.trial.study_name
    ladder = OmegaConf.select(hydra_cfg, "sweeper.study_name") if hydra_cfg is not None and study else None
    scale = study[len(ladder) + 1:] if ladder and study.startswith(f"{ladder}/") else None
    return {"study": study, "ladder": ladder or study, "ladder_id": OmegaConf.select(cfg, "trial.ladder_id") if study else None,
            "scale": scale, "trial": cfg.trial.number,
            "role": cfg.trial.role, "searched": list(cfg.trial.searched or [])}


def hparams(cfg: DictConfig) -> dict:
    """The hyperparameters the analysis reads, plus every value the sweeper searched, by config path."""
    values = {}
    for name, path in [*rec.HPARAMS.items(), *((path, path) for path in cfg.trial.searched or [])]:
        value = OmegaConf.select(cfg, path)
        values[name] = value.value if isinstance(value, Enum) else value
    return values


def device_name(device: torch.device) -> str:
    """As the record names a device: `cpu`, or `cuda (NVIDIA H100 80GB HBM3)`."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def peak(cfg: DictConfig, trainer: L.Trainer) -> float | None:
    """The peak FLOP/s of one of the trainer's devices (`mfu`), None where unknown."""
    return peak_flops(device_name(trainer.strategy.root_device), cfg.trainer.peak_flops)


def hydra_task(cfg: DictConfig) -> float | None:
    """What Hydra runs for each job of `scalelab train [-m]`. Bad input (a ConfigError) goes up,
    recorded: in a single run to `scalelab.cli.main`, which prints it in one line (exit 2); in a
    multirun through the launcher to the sweeper, which fails that trial and goes on."""
    return train(cfg)
