"""A tiny Hydra app standing in for `scalelab train`: writes a run.json-shaped record and
returns a loss computed from its params; it can raise, return NaN, diverge, be pruned, or
leave neither a record nor a value (`mode=norecord`).

Its config is typed, as the training run's is (a structured-config schema). It also keeps what a
job sees of the sweeper: the trials running at once (in the record) and the command line as
W&B would record it (`argv.json`, written as it is: the record's writer redacts URLs itself)."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import hydra
import optuna
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from scalelab.messages import redact_url
from scalelab.record import write
from hydra_plugins.scalelab_sweeper import register
from scalelab.sweeps.reporting import TrialReporter

register()


@dataclass
class ToyTrial:
    study_name: Optional[str] = None
    storage: Optional[str] = None
    number: Optional[int] = None
    searched: Optional[List[str]] = None


@dataclass
class ToySchema:
    x: float = 0.0
    lr: float = 0.01
    width: int = 16
    steps: int = 8
    sleep: float = 0.0
    mode: str = "ok"
    crash_above: float = 1e9
    nan_above: float = 1e9
    diverge_above: float = 1e9
    on_interrupt: str = "raise"  # raise | exit: sys.exit(1) on Ctrl-C, as Lightning's Trainer does
    trial: ToyTrial = field(default_factory=ToyTrial)


ConfigStore.instance().store(name="toy_schema", node=ToySchema)


def task(cfg: DictConfig) -> float:
    out = HydraConfig.get().runtime.output_dir
    lr, x = float(cfg.lr), float(cfg.x)
    target = (math.log10(lr) + 2.0) ** 2 + (x - 0.3) ** 2 + 1.0 + 10.0 / cfg.width
    initial = 5.0
    record = {"status": "completed", "error": None,
              "study": cfg.trial.study_name, "trial": cfg.trial.number,
              "storage": redact_url(cfg.trial.storage),
              "searched": OmegaConf.to_container(cfg.trial.searched) if cfg.trial.searched is not None else None,
              "metrics": {"initial_loss": initial}, "scale": {"N": cfg.width, "C": cfg.width * 100.0},
              "parallel_trials": os.environ.get("SCALELAB_PARALLEL_TRIALS")}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "argv.json").write_text(json.dumps(sys.argv))
    reporter = None
    if cfg.trial.number is not None:
        reporter = TrialReporter(cfg.trial.study_name, cfg.trial.storage, cfg.trial.number)
    mode = cfg.mode
    if x > cfg.crash_above:
        mode = "crash"
    if x > cfg.nan_above:
        mode = "nanloss"
    if x > cfg.diverge_above:
        mode = "diverge"
    loss = initial
    try:
        for step in range(1, cfg.steps + 1):
            if cfg.sleep:
                time.sleep(cfg.sleep)
            loss = target + (initial - target) * math.exp(-step / 2)
            if mode == "crash" and step == 2:
                raise RuntimeError("toy crash at step 2")
            if reporter is not None and reporter.report(loss, step):
                raise optuna.TrialPruned(f"pruned at step {step}")
    except KeyboardInterrupt:
        if cfg.on_interrupt == "exit":
            sys.exit(1)
        raise
    except optuna.TrialPruned:
        record["status"] = "pruned"
        record["metrics"].update(final_val_loss=loss, steps_done=step)
        write(out, record)
        return loss
    except Exception as e:
        record["status"] = "failed"
        record["error"] = f"{type(e).__name__}: {e}"
        write(out, record)
        raise
    record["metrics"].update(final_val_loss=loss, steps_done=cfg.steps)
    if mode == "nanloss":
        record["metrics"]["final_val_loss"] = float("nan")
        loss = float("nan")
    if mode == "diverge":
        record["status"] = "diverged"
        record["metrics"]["final_val_loss"] = float("nan")
        loss = float("nan")
    if mode == "fail":
        record["status"] = "failed"
        record["error"] = "toy failure"
    if mode == "norecord":
        return None  # neither a record nor a value: nothing to tell
    write(out, record)
    return loss


@hydra.main(version_base="1.3", config_path="toy_conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return task(cfg)


if __name__ == "__main__":
    main()
