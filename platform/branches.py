"""WSD cooldown branches: many token budgets from one run (Hägele et al. 2024, "Scaling Laws and
Compute-Optimal Training Beyond Fixed Training Durations").

Under a warmup-stable-decay schedule, runs of one model to different budgets D_k share their
stable phase; only the cooldown differs. So `schedule=wsd schedule.branches=[...]` trains the
run to `train.tokens` as usual and, as it passes each fork step (1 - decay_fraction) x the
budget's steps, copies its checkpoint into `branches/D=<D_k>/` (atomically, before going on).
After the run, each branch resumes there as a run of its own with `train.tokens=D_k`: its
cooldown to D_k, its evaluations, its record (`branch`: the parent run id and the fork step).
Up to the fork a branch is the dedicated run to D_k step for step: the same batches (a function
of seed and step), and the same schedule, since the warmup is a step count, not a fraction of
the run. A kill anywhere resumes: the trunk from its checkpoint, a branch from its own; a branch
with a record is not trained again. The parent's record says what the family cost (`family`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf

from scalelab.platform.errors import ConfigError
from scalelab.platform.run_folder import CHECKPOINT, remember_config, resolved

FOLDER = "branches"


@dataclass(frozen=True)
class Branch:
    tokens: int  # D_k: whole steps
    steps: int
    fork_step: int  # where its cooldown starts: the last step it shares with the trunk

    @property
    def name(self) -> str:
        return f"D={self.tokens}"


def check_branch_schedule(schedule: DictConfig) -> None:
    """Branches fork off a stable phase that runs of every budget share: schedule=wsd, its warmup
    a step count."""
    name = getattr(schedule.name, "value", schedule.name)
    if name != "wsd":
        raise ConfigError(f"schedule.branches needs schedule=wsd (cooldowns fork off a stable phase); "
                          f"the schedule is {name}")
    if 0 < schedule.warmup < 1:
        raise ConfigError(f"schedule.branches needs schedule.warmup as a step count (or 0), not a fraction "
                          f"({schedule.warmup:g}) of a run, which differs from budget to budget")


def plan_branches(schedule: DictConfig, total_steps: int, tokens_per_step: int) -> list[Branch]:
    """The branches of a run of `total_steps`, checked; [] without `schedule.branches`."""
    if not schedule.branches:
        return []
    check_branch_schedule(schedule)
    branches = {}
    for value in schedule.branches:
        if not value > 0:
            raise ConfigError(f"schedule.branches: {value} is no token budget; give tokens, or fractions of train.tokens")
        tokens = value * total_steps * tokens_per_step if value <= 1 else value  # a fraction of train.tokens
        steps = int(tokens // tokens_per_step)
        if steps >= total_steps:
            continue  # the run itself
        fork = int(round((1 - schedule.decay_fraction) * steps))
        if steps < 1 or fork < max(1, schedule.warmup):
            raise ConfigError(f"schedule.branches: {value:g} gives {steps} steps, whose cooldown would start at step "
                              f"{fork}, before the warmup ends (schedule.warmup={schedule.warmup:g})")
        branches[steps] = Branch(steps * tokens_per_step, steps, fork)
    return [branches[s] for s in sorted(branches)]


def branch_cfg(cfg: DictConfig, branch: Branch) -> DictConfig:
    """A branch's config: the parent's with its own budget, no branches, outside any trial, and
    never a fresh start (which would discard the fork it resumes from)."""
    return OmegaConf.merge(cfg, {"train": {"tokens": branch.tokens, "tokens_per_param": None, "fresh_start": False},
                                 "schedule": {"branches": None}, "trial": {"number": None, "storage": None}})


class Forks(L.Callback):
    """Copies the run's checkpoint into each branch's folder as the run passes its fork step.
    Runs after `ResumeCheckpoint` (put it later in the callbacks), which writes the checkpoint at
    that epoch end: the fork steps are epoch ends (`RunSetup.evaluations`)."""

    def __init__(self, run_dir: Path, cfg: DictConfig, branches: list[Branch]):
        self.run_dir, self.cfg = run_dir, cfg
        self.at = {b.fork_step: b for b in branches}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        branch = self.at.get(trainer.global_step)
        if branch is None or trainer.should_stop or not trainer.is_global_zero:
            return
        folder = self.run_dir / FOLDER / branch.name
        if (folder / CHECKPOINT).exists():
            return  # forked before a restart
        (folder / CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
        remember_config(folder, resolved(branch_cfg(self.cfg, branch)))
        tmp = folder / CHECKPOINT.with_name(CHECKPOINT.name + ".tmp")
        shutil.copyfile(self.run_dir / CHECKPOINT, tmp)
        os.replace(tmp, folder / CHECKPOINT)


def train_branches(cfg: DictConfig, run_dir: Path, record: dict, train) -> dict | None:
    """Train the branches the finished run forked (each resumes from its fork, or is left alone
    when it has a record); the family's summary for the parent's record, None without branches."""
    steps, tokens_per_step = record["metrics"]["steps"], cfg.train.batch_size * cfg.model.context
    branches = plan_branches(cfg.schedule, steps, tokens_per_step) if record["status"] == "completed" else []
    if not branches:
        return None
    flops_per_token = record["scale"]["flops_per_token"]
    compute = record["scale"]["C"]
    for branch in branches:
        folder = run_dir / FOLDER / branch.name
        train(branch_cfg(cfg, branch), run_dir=folder,
              parent={"parent": record["run_id"], "fork_step": branch.fork_step,
                      "fork_tokens": branch.fork_step * tokens_per_step})
        compute += (branch.steps - branch.fork_step) * tokens_per_step * flops_per_token
    return {"budgets": [b.tokens for b in branches] + [record["scale"]["D"]],
            "folders": [f"{FOLDER}/{b.name}" for b in branches], "compute": compute}
