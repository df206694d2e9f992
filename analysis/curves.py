"""Whole loss curves as a table, with the learning rate's history at every point.

One row per evaluation of a run: `run`, `seed`, `N`, `D` (the run's budget), `lr_peak`, `step`,
`tokens`, `lr`, `loss`, and the two areas of the schedule that annealing-aware laws read
(Tissue et al. 2024, "Scaling law with learning rate annealing"):

- `lr_area` (S1): the summed learning rate up to the point, relative to the run's peak and
  counted in tokens, sum_i (lr_i / lr_peak) x tokens per step; a constant rate gives the tokens;
- `anneal_area` (S2): the annealing momentum summed the same way, m_i = LAMBDA m_(i-1) +
  max(lr_(i-1) - lr_i, 0) / lr_peak; it grows while the rate falls (a warmup's rise counts
  nothing), and forgets a fall after about 1 / (1 - LAMBDA) = 20 steps.

Own runs give their rate at every step from their schedule (`scalelab.platform.schedule`, the
function training used), so the areas are exact. A foreign table gives the rate only at its rows;
`with_areas` takes the rate as linear between them, exact where a row is every step.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy.signal import lfilter

from scalelab.schedule import lr_multiplier
from scalelab.record import RecordError, find, read

from .errors import AnalysisError
from .table import parse_map, warn

# The annealing momentum's decay per step. Tissue et al. use 0.999 on runs of 10^4-10^5 steps; on
# runs of 10^2-10^3 steps that makes a cooldown's gain grow with its length, which it does not:
# the backtest (`benchmarks/backtest.py`) chose 0.95 of 0.95, 0.98, 0.99, 0.995, 0.999.
LAMBDA = 0.95
COLUMNS = ("run", "seed", "N", "D", "lr_peak", "step", "tokens", "lr", "loss", "lr_area", "anneal_area")


def areas(multipliers: np.ndarray, tokens_per_step: float, lam: float = LAMBDA) -> tuple[np.ndarray, np.ndarray]:
    """(S1, S2) after each step of a rate given per step (as a share of the peak): element k is
    the areas over steps 0..k-1, the state of the model that step k's evaluation sees."""
    eta = np.asarray(multipliers, float)
    drop = np.concatenate([[0.0], np.maximum(eta[:-1] - eta[1:], 0.0)])  # a warmup's rise anneals nothing
    m = lfilter([1.0], [1.0, -lam], drop)  # m_i = lam m_(i-1) + drop_i
    s1 = np.concatenate([[0.0], np.cumsum(eta)]) * tokens_per_step
    s2 = np.concatenate([[0.0], np.cumsum(m)]) * tokens_per_step
    return s1, s2


def rates(schedule: dict[str, Any], steps: int) -> np.ndarray:
    """The schedule's multiplier of the peak rate at each of a run's `steps` steps."""
    rate = lr_multiplier(OmegaConf.create(schedule), steps)
    return np.array([rate(i) for i in range(steps)])


def _record_rows(record: dict[str, Any], lam: float) -> list[dict[str, Any]]:
    metrics, config = record["metrics"], record["config"]
    steps = int(metrics["steps"] or 0)
    if record["status"] != "completed" or steps < 1 or not record.get("curve") or not config.get("schedule"):
        return []  # no curve, or no schedule to read its rate from
    tokens_per_step = metrics["tokens_seen"] / steps
    eta = rates(config["schedule"], steps)
    s1, s2 = areas(eta, tokens_per_step, lam)
    peak = float(record["hparams"]["lr"])
    shared = (record.get("branch") or {}).get("fork_step", -1)  # a branch's points up to its fork are its parent's
    rows = []
    for point in record["curve"]:
        step = int(point["step"])
        if step <= shared:
            continue
        rows.append({"run": record["run_id"], "seed": config["train"]["seed"], "N": record["scale"]["N"], "D": record["scale"]["D"],
                     "lr_peak": peak, "step": step, "tokens": point["tokens"],
                     "lr": peak * eta[min(step, steps - 1)], "loss": point["val_loss"],
                     "lr_area": s1[step], "anneal_area": s2[step]})
    return rows


def curve_rows(records: Iterable[dict[str, Any]], lam: float = LAMBDA) -> pd.DataFrame:
    """The curve table of run records (completed runs with a curve; the others have none).
    `attrs["schedule"]`: the schedule the runs share (budgets aside), None where they differ."""
    records = list(records)
    table = pd.DataFrame([row for record in records for row in _record_rows(record, lam)], columns=list(COLUMNS))
    schedules = {json.dumps({k: v for k, v in r["config"]["schedule"].items() if k != "branches"}, sort_keys=True)
                 for r in records if r["status"] == "completed" and r["config"].get("schedule")}
    table.attrs["schedule"] = json.loads(schedules.pop()) if len(schedules) == 1 else None
    return table


def load_curves(source: str | Path, mapping=None) -> pd.DataFrame:
    """The curve table of a folder of runs, or of a .csv/.parquet file (columns named by
    `mapping`, {"N": "params", ...}, where they differ), areas added where it lacks them."""
    path = Path(source)
    if not path.exists():
        raise AnalysisError(f"source {source} does not exist")
    if path.is_dir():
        records = []
        for found in find(path):
            try:
                records.append(read(found))
            except RecordError as e:
                warn(f"skipped: {e}")
        table = curve_rows(records)
        if table.empty:
            raise AnalysisError(f"no completed run with a loss curve below {source}")
        return table
    if path.suffix not in (".csv", ".parquet"):
        raise AnalysisError(f"{source}: a curve table is a run folder, a .csv or a .parquet file")
    raw = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    renames = {column: field for field, column in parse_map(mapping).items()}
    missing = [column for column in renames if column not in raw.columns]
    if missing:
        raise AnalysisError(f"{source}: no column {missing[0]!r} (named in --map); columns are: {', '.join(raw.columns)}")
    return with_areas(raw.rename(columns=renames))


def with_areas(table: pd.DataFrame, lam: float = LAMBDA) -> pd.DataFrame:
    """A foreign curve table (run, N, step or tokens, lr, loss) with `lr_area` and
    `anneal_area` added where it lacks them: the rate between rows taken as linear."""
    need = {"run", "N", "lr", "loss"} - set(table.columns)
    if need or not {"step", "tokens"} & set(table.columns):
        raise AnalysisError(f"a curve table needs columns run, N, step or tokens, lr, loss; missing: "
                            f"{', '.join(sorted(need)) or 'step or tokens'}")
    if {"lr_area", "anneal_area"} <= set(table.columns):
        return table
    parts = []
    for _, run in table.sort_values(["run", "step" if "step" in table else "tokens"]).groupby("run", sort=False):
        run = run.copy()
        x = run["step"].to_numpy(float) if "step" in run else run["tokens"].to_numpy(float)
        per_step = run["tokens"].to_numpy(float) / np.maximum(x, 1) if {"step", "tokens"} <= set(run.columns) else None
        grid = np.arange(0, int(x.max()) + 1)
        peak = float(run["lr"].max())
        eta = np.interp(grid, x, run["lr"].to_numpy(float) / peak)
        s1, s2 = areas(eta, 1.0, lam)
        scale = float(np.nanmedian(per_step[x > 0])) if per_step is not None and (x > 0).any() else 1.0
        idx = x.astype(int)
        run["lr_peak"] = peak
        run["lr_area"], run["anneal_area"] = s1[idx] * scale, s2[idx] * scale
        parts.append(run)
    return pd.concat(parts, ignore_index=True)
