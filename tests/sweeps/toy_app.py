"""A tiny Hydra app standing in for `scalelab train`: writes a run.json-shaped record and
returns a loss computed from its params; it can raise, return NaN, diverge or be pruned."""
from __future__ import annotations

import math
import time

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from scalelab.messages import redact_url
from scalelab.record import finite_or_none, write
from scalelab.sweeps.registration import register
from scalelab.sweeps.reporting import TrialReporter

register()


def _write(out: str, record: dict) -> None:
    metrics = {k: finite_or_none(v) for k, v in record["metrics"].items()}
    write(out, {**record, "metrics": metrics})


def task(cfg: DictConfig) -> float:
    out = HydraConfig.get().runtime.output_dir
    lr, x = float(cfg.lr), float(cfg.x)
    target = (math.log10(lr) + 2.0) ** 2 + (x - 0.3) ** 2 + 1.0 + 10.0 / cfg.width
    initial = 5.0
    record = {"status": "completed", "error": None,
              "study": cfg.trial.study_name, "trial": cfg.trial.number,
              "storage": redact_url(cfg.trial.storage),
              "searched": OmegaConf.to_container(cfg.trial.searched) if cfg.trial.searched is not None else None,
              "metrics": {"initial_loss": initial}, "scale": {"N": cfg.width, "C": cfg.width * 100.0}}
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
    except optuna.TrialPruned:
        record["status"] = "pruned"
        record["metrics"].update(final_val_loss=loss, steps_done=step)
        _write(out, record)
        return loss
    except Exception as e:
        record["status"] = "failed"
        record["error"] = f"{type(e).__name__}: {e}"
        _write(out, record)
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
    if mode != "norecord":
        _write(out, record)
    return loss


@hydra.main(version_base="1.3", config_path="toy_conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return task(cfg)


if __name__ == "__main__":
    main()
