"""The best learning rate and batch size as laws of scale (Step Law / DeepSeek forms).

Two steps. First, per (N, D) cell, an estimate of where the optimum lies:
- `near-best` (Step Law's recipe): every run within 0.25% of the cell's best loss;
- `surface`: a cubic surface of loss in (log lr, log batch size), fitted by weighted least
  squares to the cell's runs within 1% of its best, and its minimum within those runs' range;
- `profile` (few runs per cell, as a ladder's search leaves): for lr and batch size apart, the
  lower envelope of loss over the values tried, and the vertex of the parabola (in log value)
  through its best point and that point's two neighbours. An optimum at the smallest or largest
  value tried is an *edge*: the true optimum may lie beyond it. Edges are flagged
  (`metrics_["edges"]`) and left out of that quantity's fit.
- `weighted` (near-best for a few runs per cell): for lr and batch size apart, on the same
  envelope, the weighted geometric mean of every value whose loss is within `near_tol` of the
  cell's best (at least the best two values), each weighted by how close its loss comes to the
  best; edges as for `profile` (a weighted mean of values that stop at the best one would sit
  inside the range while the optimum lies beyond it).
Second, ordinary least squares in log space:
- `steplaw`:  lr* = a N^alpha D^beta,  bs* = b D^gamma
- `deepseek`: lr* = a C^alpha,         bs* = b C^beta
- `constant`: lr* = a,                 bs* = b  (the null model: no trend with scale)
Batch size is in tokens when the table has `batch_tokens`, else in sequences (see `inputs`).
The built-in check (`leave_one_n_out`) refits without one model size and scores the regret of
the nearest grid run to each prediction for that size. Bootstrap refits resample the runs; with
`profile` or `weighted` optima they resample the cells' optima instead (each is one observation
of the law; a few runs resampled would mostly lose the neighbours that place a cell's optimum).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..sanity import require_varying
from .base import Law, interval, register, require_columns, require_scales

NEAR_BEST = 0.0025
OPTIMA = ("near-best", "surface", "profile", "weighted")
PER_CELL = ("profile", "weighted")  # one optimum per cell, with edges: bootstrap resamples cells
EDGE_COLUMNS = {"lr": "lr_edge", "bs": "bs_edge"}
FORMS = {
    "steplaw": {"lr": ("N", "D"), "bs": ("D",), "text": "lr* = a N^alpha D^beta; bs* = b D^gamma",
                "names": (("a", "alpha", "beta"), ("b", "gamma"))},
    "deepseek": {"lr": ("C",), "bs": ("C",), "text": "lr* = a C^alpha; bs* = b C^beta",
                 "names": (("a", "alpha"), ("b", "beta"))},
    "constant": {"lr": (), "bs": (), "text": "lr* = a; bs* = b", "names": (("a",), ("b",))},
}


def _cells(table: pd.DataFrame):
    return table.groupby(["N", "D"], sort=True)


def near_best_points(table: pd.DataFrame, bs_col: str, tol: float = NEAR_BEST) -> pd.DataFrame:
    """Every run within `tol` of its cell's best loss (Step Law keeps them all, not a mean)."""
    best = _cells(table)["loss"].transform("min")
    kept = table[table["loss"] <= best * (1 + tol)]
    return pd.DataFrame({"N": kept["N"], "D": kept["D"], "C": kept["C"], "lr": kept["lr"],
                         "bs": kept[bs_col]}).reset_index(drop=True)


def _surface_optimum(cell: pd.DataFrame, bs_col: str, tol: float):
    """Minimum of a weighted cubic in (log lr, log bs) fitted to the runs near the best.

    A cubic rather than a quadratic: the basin can be lopsided (loss tends to climb faster past
    the best lr, towards divergence, than below it), which pulls a quadratic's minimum aside.
    The minimum is searched on a fine grid inside the box of the runs fitted, so it never
    leaves the data's range.
    """
    u = np.log(cell["lr"].to_numpy(float))
    v = np.log(cell[bs_col].to_numpy(float))
    rel = cell["loss"].to_numpy(float)
    rel = rel / rel.min() - 1
    sel = rel <= tol
    # 10 coefficients: keep at least twice as many runs, over enough distinct lr and bs values
    if sel.sum() < 20 or np.unique(u[sel]).size < 4 or np.unique(v[sel]).size < 4:
        sel = np.isin(np.arange(len(rel)), np.argsort(rel)[:20])
    u, v, rel = u[sel], v[sel], rel[sel]
    u0, v0 = u.mean(), v.mean()
    terms = lambda a, b: np.column_stack([a ** i * b ** j for i in range(4)  # noqa: E731
                                          for j in range(4 - i)])
    w = np.sqrt(1.0 / (1.0 + (rel / max(tol, 1e-12)) ** 2))  # the best runs count most
    coef = np.linalg.lstsq(terms(u - u0, v - v0) * w[:, None], rel * w, rcond=None)[0]
    gu, gv = np.meshgrid(np.linspace(u.min(), u.max(), 81), np.linspace(v.min(), v.max(), 81))
    k = int(np.argmin(terms(gu.ravel() - u0, gv.ravel() - v0) @ coef))
    return float(np.exp(gu.ravel()[k])), float(np.exp(gv.ravel()[k]))


# The 1% window was chosen once, as one global setting, among the variants compared on the whole
# Step Law leave-one-N-out table (README, Analysis); it holds 21-52 runs per cell there.
def surface_points(table: pd.DataFrame, bs_col: str, tol: float = 0.01) -> pd.DataFrame:
    rows = []
    for (N, D), cell in _cells(table):
        lr, bs = _surface_optimum(cell, bs_col, tol)
        rows.append({"N": N, "D": D, "C": float(cell["C"].iloc[0]), "lr": lr, "bs": bs})
    return pd.DataFrame(rows)


def profile_optimum(values, losses) -> tuple[float, str | None]:
    """(optimum, edge) of loss over one hyperparameter from a few runs: the vertex of the parabola
    in log value through the best value tried and its two neighbours (the lower envelope: the best
    loss per value). `edge` is "low" or "high" when the best is the smallest or largest value
    tried (the optimum may lie beyond), else None."""
    frame = pd.DataFrame({"x": np.asarray(values, float), "y": np.asarray(losses, float)})
    envelope = frame.groupby("x")["y"].min().sort_index()
    x, y = np.log(envelope.index.to_numpy(float)), envelope.to_numpy(float)
    k = int(np.argmin(y))
    if len(x) == 1:
        return float(np.exp(x[0])), None
    if k == 0 or k == len(x) - 1:
        return float(np.exp(x[k])), "low" if k == 0 else "high"
    (x0, x1, x2), (y0, y1, y2) = x[k - 1:k + 2], y[k - 1:k + 2]
    # vertex of the parabola through three points; it lies between x0 and x2 since y1 is lowest
    num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    vertex = x1 - 0.5 * num / den if den != 0 else x1
    return float(np.exp(np.clip(vertex, x0, x2))), None


def weighted_optimum(values, losses, tol: float = NEAR_BEST) -> tuple[float, str | None]:
    """(optimum, edge) of loss over one hyperparameter from a few runs: on the lower envelope (the
    best loss per value), the mean in log value of the values within `tol` (relative) of the best
    loss, weighted exp(-2 (gap / window)^2). The window is `tol`, or the gap of the second-best
    value where that is larger: a few coarse runs must not leave the best one alone. `edge` as in
    `profile_optimum`."""
    frame = pd.DataFrame({"x": np.asarray(values, float), "y": np.asarray(losses, float)})
    envelope = frame.groupby("x")["y"].min().sort_index()
    x, y = np.log(envelope.index.to_numpy(float)), envelope.to_numpy(float)
    k = int(np.argmin(y))
    if len(x) > 1 and k in (0, len(x) - 1):
        return float(np.exp(x[k])), "low" if k == 0 else "high"
    gap = y / y[k] - 1
    window = max(tol, float(np.sort(gap)[1])) if len(x) > 1 else tol
    w = np.where(gap <= window, np.exp(-2 * (gap / max(window, 1e-12)) ** 2), 0.0)
    return float(np.exp(w @ x / w.sum())), None


def profile_points(table: pd.DataFrame, bs_col: str, near_tol: float | None = None) -> pd.DataFrame:
    """One row per cell: the `profile` optimum, or with `near_tol` the `weighted` one, and edges."""
    optimum = profile_optimum if near_tol is None else \
        (lambda values, losses: weighted_optimum(values, losses, near_tol))
    rows = []
    for (N, D), cell in _cells(table):
        lr, lr_edge = optimum(cell["lr"], cell["loss"])
        bs, bs_edge = optimum(cell[bs_col], cell["loss"])
        rows.append({"N": N, "D": D, "C": float(cell["C"].iloc[0]), "lr": lr, "bs": bs,
                     "lr_edge": lr_edge, "bs_edge": bs_edge,
                     "lr_tried": [float(cell["lr"].min()), float(cell["lr"].max())],
                     "loss": float(cell["loss"].min()), "runs": int(len(cell))})
    return pd.DataFrame(rows)


@register
class HparamsLaw(Law):
    """lr*(scale) and bs*(scale) from per-cell optima; see the module docstring."""

    name: ClassVar[str] = "hparams"

    def __init__(self, form: str = "steplaw", optimum: str = "near-best",
                 surface_tol: float = 0.01, near_tol: float = NEAR_BEST) -> None:
        super().__init__()
        if form not in FORMS:
            raise AnalysisError(f"unknown hparams form {form!r}; known: {', '.join(FORMS)}")
        if optimum not in OPTIMA:
            raise AnalysisError(f"unknown optimum {optimum!r}; known: {', '.join(OPTIMA)}")
        self.law_form, self.optimum, self.surface_tol, self.near_tol = form, optimum, surface_tol, near_tol
        self.bs_varied = True  # False: the fitted runs share one batch size, and there is no law of it

    def _set_options(self, inputs) -> None:
        self.law_form = inputs.get("form", "steplaw")
        self.optimum = inputs.get("optimum", "near-best")
        self.surface_tol = inputs.get("surface_tol", 0.01)
        self.near_tol = inputs.get("near_tol", NEAR_BEST)
        self.bs_varied = inputs.get("batch_size_varied", True)

    @property
    def form(self) -> str:
        return FORMS[self.law_form]["text"]

    @staticmethod
    def _bs_col(table: pd.DataFrame) -> str:
        if "batch_tokens" in table.columns and table["batch_tokens"].notna().all():
            return "batch_tokens"
        if "batch_size" in table.columns:
            return "batch_size"
        raise AnalysisError("the hparams law needs a batch_size column (--map batch_size=COLUMN)")

    def optima(self, table: pd.DataFrame) -> pd.DataFrame:
        """The per-cell optimum estimates the law is fitted to."""
        bs_col = self._bs_col(table)
        if self.optimum == "near-best":
            return near_best_points(table, bs_col)
        if self.optimum == "profile":
            return profile_points(table, bs_col)
        if self.optimum == "weighted":
            return profile_points(table, bs_col, self.near_tol)
        return surface_points(table, bs_col, self.surface_tol)

    def _check(self, table: pd.DataFrame) -> None:
        require_columns(table, "hparams", ("N", "D", "C", "loss", "lr"))
        # the steplaw form needs distinct sizes N, the deepseek one distinct budgets C
        require_scales(table, self.name, 5, by="N" if self.law_form == "steplaw" else "C")
        require_varying(table["loss"])

    def fit_points(self, pts: pd.DataFrame) -> tuple[dict, dict]:
        """Ordinary least squares in log space, one point per estimate of an optimum; a profile
        optimum at the edge of what was tried is left out of its quantity's fit."""
        spec = FORMS[self.law_form]
        params: dict = {}
        sds: dict = {}
        for quantity, names in zip(("lr", "bs"), spec["names"]):
            if quantity == "bs" and not self.bs_varied:
                continue
            inside = pts[pts[EDGE_COLUMNS[quantity]].isna()] if EDGE_COLUMNS[quantity] in pts else pts
            columns = spec[quantity]
            if len(inside) < len(columns) + 1:
                raise AnalysisError(
                    f"{quantity}*: {len(inside)} of {len(pts)} cells have an optimum inside the range "
                    f"they tried; the form needs {len(columns) + 1}")
            y = np.log(inside[quantity].to_numpy(float))
            X = np.column_stack([np.ones(len(inside))] + [np.log(inside[c].to_numpy(float)) for c in columns])
            coef = np.linalg.lstsq(X, y, rcond=None)[0]
            r = y - X @ coef
            sds[f"{quantity}_resid_sd_log"] = float(np.sqrt(r @ r / max(len(r) - X.shape[1], 1)))
            params[names[0]] = float(np.exp(coef[0]))
            params.update({n: float(c) for n, c in zip(names[1:], coef[1:])})
        return params, sds

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0, level: float = 0.95,
            evaluate: bool = True) -> "HparamsLaw":
        self._check(table)
        bs_col = self._bs_col(table)
        self.bs_varied = varies(table[bs_col])
        pts = self.optima(table)
        self.params_, sds = self.fit_points(pts)
        self.n_points_ = len(pts)
        self.metrics_ = dict(sds)
        if "lr_edge" in pts:
            self.metrics_["edges"] = [
                {"N": float(p.N), "D": float(p.D), "C": float(p.C), "quantity": q, "side": getattr(p, col),
                 "value": float(getattr(p, q)), "loss": float(p.loss)}
                for p in pts.itertuples(index=False) for q, col in EDGE_COLUMNS.items()
                if isinstance(getattr(p, col), str)]
        self._set_inputs(table, form=self.law_form, optimum=self.optimum,
                         surface_tol=self.surface_tol, near_tol=self.near_tol,
                         batch_unit="tokens" if bs_col == "batch_tokens" else "sequences",
                         batch_size_varied=self.bs_varied,
                         n_runs=int(len(table)), n_cells=int(_cells(table).ngroups),
                         N_range=[float(table.N.min()), float(table.N.max())],
                         D_range=[float(table.D.min()), float(table.D.max())])
        if not self.bs_varied:  # in the fit file's notes, and printed by `fit`
            self.inputs_["notes"].append(
                f"batch size not varied: every run at {table[bs_col].iloc[0]:g} {self.inputs_['batch_unit']}; "
                "no batch-size law is fitted, the lr law is that of this batch size")
        if "context" in table.columns and table["context"].nunique() == 1:
            self.inputs_["context"] = float(table["context"].iloc[0])
        if evaluate and table["N"].nunique() >= 3:
            try:
                lono = self.leave_one_n_out(table)
                self.metrics_["leave_one_n_out"] = lono.to_dict(orient="records")
            except AnalysisError as e:  # too few cells inside their ranges once a size is out
                self.metrics_["leave_one_n_out"] = f"not computed: {e}"
        if self.optimum in PER_CELL:
            self._bootstrap(bootstrap, seed, level, lambda rng: self._refit(pts.iloc[_draw(pts, rng)]))
        else:
            self._bootstrap(bootstrap, seed, level,
                            lambda rng: self._refit(self.optima(table.iloc[_draw(table, rng)])))
        return self

    def _refit(self, pts: pd.DataFrame) -> dict | None:
        """The parameters fitted to resampled optima; None where they cannot be fitted, or where
        the resampled cells do not determine the lr form's exponents apart (a resample of a few
        cells may repeat one cell throughout, or keep only cells of one budget)."""
        inside = pts[pts["lr_edge"].isna()] if "lr_edge" in pts else pts
        X = np.column_stack([np.ones(len(inside))] +
                            [np.log(inside[c].to_numpy(float)) for c in FORMS[self.law_form]["lr"]])
        if np.linalg.matrix_rank(X) < X.shape[1]:  # lstsq would split the slope arbitrarily
            return None
        try:
            return self.fit_points(pts)[0]
        except AnalysisError:
            return None

    def predict(self, N=None, D=None, C=None, params: dict | None = None):
        """(lr*, bs*) at the given scale; a missing C or D comes from the law's FLOP convention.

        The deepseek form is in terms of the fitted table's C, which for run records includes
        the attention term: a query by N and D must count C the same way, not as 6ND.
        """
        P = params or self.params_
        # Without a batch-size law (one batch size fitted), bs* is NaN: b NaN, its exponent 0.
        P = {**dict.fromkeys(FORMS[self.law_form]["names"][1], 0.0), "b": np.nan, **P}
        N, D, C = self.complete_scale(N, D, C)
        if self.law_form == "constant":
            size = np.ones(np.broadcast_shapes(*(np.shape(x) for x in (N, D, C) if x is not None)))
            return P["a"] * size, P["b"] * size
        if self.law_form == "steplaw":
            if N is None or D is None:
                raise AnalysisError("the steplaw form needs N and D (or N and C)")
            N, D = np.asarray(N, float), np.asarray(D, float)
            return P["a"] * N ** P["alpha"] * D ** P["beta"], P["b"] * D ** P["gamma"]
        if C is None:
            raise AnalysisError("the deepseek form needs C (or N and D)")
        C = np.asarray(C, float)
        return P["a"] * C ** P["alpha"], P["b"] * C ** P["beta"]

    def predict_interval(self, N=None, D=None, C=None, level: float = 0.95):
        d = self._draws(lambda P: self.predict(N, D, C, P)).reshape(-1, 2)
        return (interval(d[:, 0], self.metrics_.get("lr_resid_sd_log", 0.0), level),
                interval(d[:, 1], self.metrics_.get("bs_resid_sd_log", 0.0), level))

    def leave_one_n_out(self, table: pd.DataFrame) -> pd.DataFrame:
        """Per held-out model size: mean and max regret of the grid run nearest the prediction."""
        bs_col = self._bs_col(table)
        rows = []
        for n_out in sorted(table["N"].unique()):
            train = table[table["N"] != n_out]
            law = HparamsLaw(self.law_form, self.optimum, self.surface_tol, self.near_tol)
            law.bs_varied = varies(table[bs_col])
            law.params_, _ = law.fit_points(law.optima(train))
            law.flops_ = self.flops_
            regrets = []
            for D, cell in table[table["N"] == n_out].groupby("D"):
                lr, bs = law.predict(N=n_out, D=D, C=float(cell["C"].iloc[0]))
                regrets.append(regret(cell, float(lr), float(bs), bs_col))
            rows.append({"N": float(n_out), "cells": len(regrets),
                         "mean_regret": float(np.mean(regrets)),
                         "max_regret": float(np.max(regrets))})
        return pd.DataFrame(rows)


def varies(column: pd.Series) -> bool:
    """Whether the runs tried more than one value: a sweep of lr alone has no batch-size law."""
    return column.nunique() > 1


def _draw(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, len(frame), len(frame))


def regret(cell: pd.DataFrame, lr: float, bs: float, bs_col: str) -> float:
    """Relative loss gap to the cell's best of the grid run nearest (lr, bs) in log space; by lr
    alone where there is no batch-size law (bs NaN: the runs share one batch size)."""
    d = (np.log(cell["lr"].to_numpy(float)) - np.log(lr)) ** 2
    if np.isfinite(bs):
        d = d + (np.log(cell[bs_col].to_numpy(float)) - np.log(bs)) ** 2
    y = cell["loss"].to_numpy(float)
    return float(y[int(np.argmin(d))] / y.min() - 1)
