"""Loss along whole training curves, the schedule in it, across model sizes:

    L(N, S1, S2) = E + A / N^alpha + B / S1^beta - C * S2

Tissue et al. 2024 ("Scaling law with learning rate annealing") fit L0 + A S1^-alpha - C S2 to
the curves of one model; the constant L0 is here Chinchilla's E + A / N^alpha, so one fit spans
sizes. S1 is the learning rate's area up to a point (in tokens: the tokens under a constant
rate), S2 the annealing area (`scalelab.analysis.curves`). Every evaluation of every run is a
point, so a run gives its whole curve instead of its last value, and a fit knows what a cooldown
does: it predicts the final loss of a budget and schedule nobody ran.

The first part of each curve, the transient, follows other dynamics and is left out: points
before `skip` x the longest run's tokens of that size (the rule `benchmarks/backtest.py` chose).

Fit: for fixed exponents the law is linear in (E, A, B, C) >= 0, so a grid over (alpha, beta)
solves non-negative least squares on relative error at each node; the best nodes are polished
on all six parameters by a Huber loss on log loss (scipy's least_squares, bounded).
Bootstrap refits resample whole runs within each size (a run's points are not independent).
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, nnls

from ..curves import areas, rates, with_areas
from ..errors import AnalysisError
from ..sanity import require_loss_falls, require_varying
from .base import Law, interval, register, require_scales

DELTA = 1e-3  # Huber threshold on log loss, Hoffmann et al.'s
SKIP = 0.05
EXPONENTS = np.linspace(0.05, 1.5, 30)
NAMES = ("E", "A", "alpha", "B", "beta", "C")


def _predict(p: np.ndarray, n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    E, A, alpha, B, beta, C = p
    with np.errstate(divide="ignore", over="ignore"):
        return E + A * n ** -alpha + B * s1 ** -beta - C * s2


def _fit(n, s1, s2, loss, starts: Optional[list[np.ndarray]] = None) -> tuple[np.ndarray, float]:
    """Best (E, A, alpha, B, beta, C) in the scaled units, and its Huber objective."""
    if starts is None:
        nodes = []
        w = 1.0 / loss
        for alpha in EXPONENTS:
            for beta in EXPONENTS:
                X = np.column_stack([np.ones_like(n), n ** -alpha, s1 ** -beta, -s2]) * w[:, None]
                coef, res = nnls(X, np.ones_like(loss))
                nodes.append((res, np.array([coef[0], coef[1], alpha, coef[2], beta, coef[3]])))
        nodes.sort(key=lambda t: t[0])
        starts = [p for _, p in nodes[:4]]
    log_loss = np.log(loss)

    def residual(p):
        return np.log(np.maximum(_predict(p, n, s1, s2), 1e-9)) - log_loss

    lower, upper = [0, 0, 0, 0, 0, 0], [np.inf, np.inf, 3, np.inf, 3, np.inf]
    best = None
    for p0 in starts:
        r = least_squares(residual, np.clip(p0, 1e-12, None), bounds=(lower, upper), loss="huber", f_scale=DELTA,
                          x_scale="jac", max_nfev=400)
        if best is None or r.cost < best.cost:
            best = r
    return best.x, float(best.cost)


@register
class CurveLaw(Law):
    """L = E + A/N^alpha + B/S1^beta - C S2 through every point of every run's curve."""

    name: ClassVar[str] = "curve"
    form: ClassVar[str] = "L = E + A/N^alpha + B/S1^beta - C*S2"

    def __init__(self, skip: float = SKIP) -> None:
        super().__init__()
        self.skip = skip

    def _set_options(self, inputs) -> None:
        self.skip = inputs.get("skip", SKIP)

    def points(self, table: pd.DataFrame) -> pd.DataFrame:
        """The table's curve points past the transient, with their areas."""
        table = with_areas(table)
        values = table[["N", "loss"]].apply(pd.to_numeric, errors="coerce")
        bad = ~(np.isfinite(values).all(axis=1) & (values > 0).all(axis=1))
        if bad.any():
            first = table[bad].iloc[0]
            raise AnalysisError(f"the curve table has {int(bad.sum())} row(s) whose N or loss is not a positive number "
                                f"(the first: run {first['run']}, N={first['N']}, loss={first['loss']})")
        longest = table.groupby("N")["tokens"].transform("max")
        return table[(table["tokens"] >= self.skip * longest) & (table["lr_area"] > 0)]

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> "CurveLaw":
        points = self.points(table)
        require_scales(points, self.name, len(NAMES), by="N")
        n, s1, s2, loss = (points[c].to_numpy(float) for c in ("N", "lr_area", "anneal_area", "loss"))
        require_varying(loss)
        self._units = (float(np.exp(np.mean(np.log(n)))), float(np.exp(np.mean(np.log(s1)))))
        p, cost = _fit(n / self._units[0], s1 / self._units[1], s2 / self._units[1], loss)
        self.params_ = self._to_params(p)
        require_loss_falls(self.name, self.params_, {"alpha": "N", "beta": "the tokens trained (S1)"})
        r = np.log(self.predict_points(points)) - np.log(loss)
        self.n_points_ = len(points)
        self.metrics_ = {"huber": cost, "rmse_log": float(np.sqrt(np.mean(r ** 2))), "runs": int(points["run"].nunique())}
        self._set_inputs(table, skip=self.skip, columns=["run", "N", "tokens", "lr", "loss"],
                         N_range=[float(points.N.min()), float(points.N.max())],
                         D_range=[float(points.tokens.min()), float(points.tokens.max())],
                         tokens_per_step=_tokens_per_step(table), schedule=_schedule(table))
        if bootstrap:
            runs, sizes = dict(iter(points.groupby("run"))), points.groupby("N")["run"].unique()
            self._bootstrap(bootstrap, seed, level, lambda rng: self._refit(runs, sizes, p, rng))
        return self

    def _to_params(self, p: np.ndarray) -> dict[str, float]:
        """Scaled-unit parameters -> the law in N and tokens."""
        (n0, s0), (E, A, alpha, B, beta, C) = self._units, p
        return {"E": float(E), "A": float(A * n0 ** alpha), "alpha": float(alpha),
                "B": float(B * s0 ** beta), "beta": float(beta), "C": float(C / s0)}

    def _refit(self, runs: dict, sizes: pd.Series, p: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        """One bootstrap refit: whole runs (`runs`: run -> its points) drawn with replacement
        within each size (`sizes`: N -> its runs)."""
        sample = pd.concat([runs[run] for size in sizes for run in rng.choice(size, size=len(size))])
        n, s1, s2, loss = (sample[c].to_numpy(float) for c in ("N", "lr_area", "anneal_area", "loss"))
        q, _ = _fit(n / self._units[0], s1 / self._units[1], s2 / self._units[1], loss, starts=[p])
        return self._to_params(q)

    def predict_points(self, points: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        P = params or self.params_
        p = np.array([P[k] for k in NAMES])
        return _predict(p, points["N"].to_numpy(float), points["lr_area"].to_numpy(float),
                        points["anneal_area"].to_numpy(float))

    def set_schedule(self, changes: dict | None = None, tokens_per_step: float | None = None) -> None:
        """Predict for this schedule: `changes` over the fitted runs' schedule (all of one, for a
        table that had none), and tokens per optimizer step."""
        schedule = {"name": "constant", "warmup": 0, "min_lr_ratio": 0.0, "decay_fraction": 0.0}
        if changes:
            self.inputs_["schedule"] = {**(self.inputs_.get("schedule") or schedule), **changes}
        if tokens_per_step:
            self.inputs_["tokens_per_step"] = float(tokens_per_step)

    def final_areas(self, D: float, schedule: dict | None = None, tokens_per_step: float | None = None):
        """(S1, S2) at the end of a run of D tokens under a schedule (the fitted runs' by default)."""
        schedule = schedule or self.inputs_.get("schedule")
        tokens_per_step = tokens_per_step or self.inputs_.get("tokens_per_step")
        if not schedule or not tokens_per_step:
            raise AnalysisError("the curve law predicts a run's final loss for a schedule: the fitted table had "
                                "no single schedule, so give one (--schedule name=wsd,warmup=30,decay_fraction=0.2 "
                                "and --tokens-per-step)")
        s1, s2 = areas(rates(schedule, max(1, int(D // tokens_per_step))), tokens_per_step)
        return float(s1[-1]), float(s2[-1])

    def final_points(self, N, D, schedule: dict | None = None, tokens_per_step: float | None = None) -> pd.DataFrame:
        """N and the final areas of runs of N parameters and D tokens under the schedule."""
        N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
        s = [self.final_areas(d, schedule, tokens_per_step) for d in D.ravel()]
        return pd.DataFrame({"N": N.ravel(), "lr_area": [a for a, _ in s], "anneal_area": [b for _, b in s]})

    def predict(self, N, D, params: dict | None = None, schedule: dict | None = None,
                tokens_per_step: float | None = None) -> np.ndarray:
        """The final loss of runs of N parameters and D tokens under the schedule."""
        shape = np.broadcast_shapes(np.shape(N), np.shape(D))
        return self.predict_points(self.final_points(N, D, schedule, tokens_per_step), params).reshape(shape)

    def predict_interval(self, N, D, level: float = 0.95) -> list[float]:
        """The interval of one run's final loss (the areas computed once, not per bootstrap draw)."""
        return self.points_interval(self.final_points(N, D), level)[0]

    def points_interval(self, points: pd.DataFrame, level: float = 0.95) -> list[list[float]]:
        """The interval of each point's loss (N and its areas given)."""
        draws = self._draws(lambda P: self.predict_points(points, P))
        return [interval(draws[:, i], self.metrics_.get("rmse_log", 0.0), level) for i in range(len(points))]


def _tokens_per_step(table: pd.DataFrame) -> Optional[float]:
    if not {"step", "tokens"} <= set(table.columns):
        return None
    ratio = (table["tokens"] / table["step"]).replace(np.inf, np.nan).dropna().round(6).unique()
    return float(ratio[0]) if len(ratio) == 1 else None


def _schedule(table: pd.DataFrame) -> Optional[dict[str, Any]]:
    """The runs' schedule where they all share one (the table's attrs, from run records)."""
    return table.attrs.get("schedule")
