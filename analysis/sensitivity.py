"""How much the settings matter, per scale: Optuna importances and learning-rate sensitivity.

- `importance_by_scale`: per (N, D) cell, the runs become trials of an in-memory Optuna study and
  Optuna's PED-ANOVA and fANOVA evaluators rank the hyperparameters. Optuna's fANOVA fits a
  scikit-learn random forest, so scikit-learn is a dependency of this module though nothing here
  imports it.
- `lr_sensitivity`: Wortsman et al. (2023): per scale, the mean over the learning-rate grid of
  min(loss, initial loss) minus the best loss. For each learning rate the best run over the other
  settings is taken (the lr profile). A diverged run counts as the initial loss. When no initial
  loss is recorded, the worst finite loss of the scale's grid stands in (`initial_loss_source`
  says so). Also the basin width: the span in log10(lr) of the runs within 1% of the best loss.
"""
from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import optuna
import optuna.distributions as od
import pandas as pd

from .errors import AnalysisError
from .table import hparam_columns

EVALUATORS = ("ped-anova", "fanova")
STANDIN = "worst finite loss (no initial loss recorded)"


def capped_loss(cell: pd.DataFrame) -> tuple[np.ndarray, float, str]:
    """Loss with divergence and blow-ups capped at the initial loss, Wortsman-style."""
    y = cell["loss"].to_numpy(float).copy()
    finite = np.isfinite(y)
    l0 = np.nan
    if "initial_loss" in cell.columns and cell["initial_loss"].notna().any():
        l0 = float(np.nanmedian(cell["initial_loss"].to_numpy(float)))
    source = "recorded"
    if not np.isfinite(l0):
        if not finite.any():
            where = ", ".join(f"{c}={cell[c].iloc[0]:g}" for c in ("N", "D") if c in cell.columns)
            raise AnalysisError(f"the scale {where} has no finite loss and no initial loss")
        l0, source = float(np.max(y[finite])), STANDIN
    y[~finite] = l0
    if "status" in cell.columns:
        y[(cell["status"] == "diverged").to_numpy()] = l0
    return np.minimum(y, l0), l0, source


def lr_sensitivity(table: pd.DataFrame, basin: float = 0.01) -> pd.DataFrame:
    """Per (N, D): LR sensitivity, basin width and the best learning rate."""
    if "lr" not in table.columns or len(table) == 0:
        raise AnalysisError("learning-rate sensitivity needs runs with an lr column")
    rows = []
    for (N, D), cell in table.groupby(["N", "D"], sort=True):
        y, l0, source = capped_loss(cell)
        lr = cell["lr"].to_numpy(float)
        profile = pd.Series(y).groupby(lr).min()
        best = float(y.min())
        near = lr[y <= best * (1 + basin)]
        rows.append({"N": float(N), "D": float(D), "C": float(cell["C"].iloc[0]) if "C" in cell else np.nan,
                     "runs": int(len(cell)), "lr_values": int(profile.size),
                     "best_loss": best, "best_lr": float(lr[int(np.argmin(y))]),
                     "initial_loss": l0, "initial_loss_source": source,
                     "lr_sensitivity": float(profile.mean() - best),
                     "basin_width_log10": float(np.log10(near.max()) - np.log10(near.min()))})
    return pd.DataFrame(rows)


def _distribution(values: pd.Series):
    v = values.dropna()
    if v.map(lambda x: isinstance(x, (int, float, np.integer, np.floating))).all():
        x = v.to_numpy(float)
        lo, hi = float(x.min()), float(x.max())
        log = lo > 0 and hi / lo > 10
        if np.all(x == np.round(x)):
            return od.IntDistribution(int(lo), int(hi), log=log), int
        return od.FloatDistribution(lo, hi, log=log), float
    return od.CategoricalDistribution(sorted(map(str, v.unique()))), str


def importance_by_scale(table: pd.DataFrame, params: list[str] | None = None,
                        evaluators=EVALUATORS, seed: int = 0, min_runs: int = 8) -> pd.DataFrame:
    """Long table: N, D, evaluator, param, importance (one block per (N, D) cell)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = list(params or hparam_columns(table))
    if not params:
        raise AnalysisError("no hyperparameter varies in the table; nothing to rank")
    missing = [p for p in params if p not in table.columns]
    if missing:
        raise AnalysisError(f"hyperparameter column(s) {', '.join(missing)} do not exist")
    if "fanova" in evaluators and find_spec("sklearn") is None:
        raise AnalysisError("the fanova importance needs scikit-learn (Optuna fits a random "
                            "forest with it), which is not installed")
    dists = {p: _distribution(table[p]) for p in params}
    makers = {"ped-anova": lambda: optuna.importance.PedAnovaImportanceEvaluator(),
              "fanova": lambda: optuna.importance.FanovaImportanceEvaluator(seed=seed)}
    rows = []
    for (N, D), cell in table.groupby(["N", "D"], sort=True):
        y, _, _ = capped_loss(cell)
        varying = [p for p in params if cell[p].nunique() > 1]
        if len(cell) < min_runs or not varying:
            continue
        study = optuna.create_study(direction="minimize")
        trials = []
        for i in range(len(cell)):
            r = cell.iloc[i]
            ps = {p: dists[p][1](r[p]) for p in varying if pd.notna(r[p])}
            if len(ps) != len(varying):
                continue
            trials.append(optuna.trial.create_trial(
                params=ps, distributions={p: dists[p][0] for p in varying}, value=float(y[i])))
        study.add_trials(trials)
        for ev in evaluators:
            try:
                imp = optuna.importance.get_param_importances(study, evaluator=makers[ev](),
                                                              normalize=True)
            except (RuntimeError, ValueError) as e:  # too few trials for this evaluator
                imp = {p: np.nan for p in varying}
                rows.append({"N": float(N), "D": float(D), "evaluator": ev, "param": "_error",
                             "importance": np.nan, "note": str(e)})
            for p in varying:
                rows.append({"N": float(N), "D": float(D), "evaluator": ev, "param": p,
                             "importance": float(imp.get(p, 0.0))})
    if not rows:
        raise AnalysisError(f"no scale has {min_runs} or more runs with varying hyperparameters")
    return pd.DataFrame(rows)


def importance_table(long: pd.DataFrame, evaluator: str = "ped-anova") -> pd.DataFrame:
    """Wide view: one row per scale, one column per hyperparameter."""
    sub = long[(long["evaluator"] == evaluator) & (long["param"] != "_error")]
    return sub.pivot_table(index=["N", "D"], columns="param", values="importance").reset_index()
