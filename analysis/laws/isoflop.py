"""Chinchilla's approach 2: per compute budget, a parabola of loss in log N; then N_opt(C), D_opt(C).

Runs are grouped into budgets by C (a new budget starts where sorted log10 C jumps by more than
`gap`, so a recorded C that includes the attention term still groups with its nominal budget).
D_opt is read from the budget's own runs (a straight line of log D against log N, evaluated at
N_opt), so the FLOP convention of the records is kept as is; the fit records that convention
(`inputs["flops"]`), by which a query given N and D is turned into its budget C.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from .base import Law, interval, register, require_columns


def budgets(C: np.ndarray, gap: float = 0.05) -> np.ndarray:
    """Budget label per run: consecutive sorted log10 C closer than `gap` share one."""
    lc = np.log10(C)
    order = np.argsort(lc)
    labels = np.empty(len(C), dtype=int)
    g = 0
    for j, i in enumerate(order):
        if j and lc[i] - lc[order[j - 1]] > gap:
            g += 1
        labels[i] = g
    return labels


@register
class IsoflopLaw(Law):
    name: ClassVar[str] = "isoflop"

    def __init__(self, gap: float = 0.05) -> None:
        super().__init__()
        self.gap = gap

    def _set_options(self, inputs) -> None:
        self.gap = inputs.get("gap", 0.05)

    @property
    def form(self) -> str:
        return "N_opt = k_N * C^a; D_opt = k_D * C^b (parabola of loss in log N per budget)"

    def optima(self, table: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for g, grp in table.groupby(budgets(table["C"].to_numpy(float), self.gap)):
            if grp["N"].nunique() < 3:
                continue
            x = np.log(grp["N"].to_numpy(float))
            y = grp["loss"].to_numpy(float)
            c2, c1, c0 = np.polyfit(x, y, 2)
            if c2 <= 0:
                continue  # no minimum: this budget's runs do not bracket the optimum
            xo = -c1 / (2 * c2)
            if xo < x.min() or xo > x.max():
                continue
            ld = np.polyfit(x, np.log(grp["D"].to_numpy(float)), 1)
            rows.append({"C": float(np.exp(np.mean(np.log(grp["C"])))), "N_opt": float(np.exp(xo)),
                         "D_opt": float(np.exp(np.polyval(ld, xo))),
                         "L_opt": float(c0 + c1 * xo + c2 * xo * xo), "runs": len(grp)})
        return pd.DataFrame(rows)

    def _fit_optima(self, opt: pd.DataFrame) -> dict:
        lc = np.log(opt["C"].to_numpy(float))
        a, kn = np.polyfit(lc, np.log(opt["N_opt"].to_numpy(float)), 1)
        b, kd = np.polyfit(lc, np.log(opt["D_opt"].to_numpy(float)), 1)
        return {"k_N": float(np.exp(kn)), "a": float(a), "k_D": float(np.exp(kd)), "b": float(b)}

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0,
            level: float = 0.95) -> "IsoflopLaw":
        require_columns(table, "isoflop", ("N", "D", "C", "loss"))
        if len(table) == 0:
            raise AnalysisError("the isoflop law got an empty table")
        opt = self.optima(table)
        if len(opt) < 2:
            raise AnalysisError(f"the isoflop law needs at least two compute budgets with a "
                                f"minimum inside >= 3 model sizes; found {len(opt)}")
        self.params_ = self._fit_optima(opt)
        self.n_points_ = len(table)
        n_fit, d_fit = self.predict(opt["C"])
        rn = np.log(n_fit / opt["N_opt"])
        rd = np.log(d_fit / opt["D_opt"])
        self.metrics_ = {"budgets": opt.to_dict(orient="records"),
                         "N_resid_sd_log": float(np.sqrt(np.mean(rn ** 2))),
                         "D_resid_sd_log": float(np.sqrt(np.mean(rd ** 2)))}
        self._set_inputs(table, gap=self.gap)
        labels = budgets(table["C"].to_numpy(float), self.gap)

        def refit(rng):  # resample runs within each budget
            idx = np.concatenate([rng.choice(np.flatnonzero(labels == g), (labels == g).sum())
                                  for g in np.unique(labels)])
            o = self.optima(table.iloc[idx])
            return self._fit_optima(o) if len(o) >= 2 else None

        self._bootstrap(bootstrap, seed, level, refit)
        return self

    def predict(self, C, params: dict | None = None):
        """(N_opt, D_opt) for budget C."""
        P = params or self.params_
        C = np.asarray(C, float)
        return P["k_N"] * C ** P["a"], P["k_D"] * C ** P["b"]

    compute_optimal = predict

    def compute_optimal_interval(self, C, level: float = 0.95):
        d = self._draws(lambda P: self.predict(C, P)).reshape(-1, 2)
        return (interval(d[:, 0], self.metrics_.get("N_resid_sd_log", 0.0), level),
                interval(d[:, 1], self.metrics_.get("D_resid_sd_log", 0.0), level))
