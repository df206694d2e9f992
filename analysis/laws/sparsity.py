"""L(N, D, G): the loss of mixture-of-experts runs across sparsity (issue 26).

N is the active non-embedding parameters per token (a dense model's N), D the tokens, and
G = 1/(1 - sparsity) = experts/top_k the expansion (1 for a dense model). Two forms:

- `chinchilla` (sparsity-aware Chinchilla, Frantar et al. 2023; Abnar et al. 2025):
  L = E + A/(N^alpha G^delta) + B/D^beta. More experts at equal active size lower the size term
  by the factor G^-delta, the same at every N.
- `bilinear` (Clark et al. 2022, "Unified scaling laws for routed language models": log loss
  bilinear in log N and log G): L = E + A exp(-alpha n - delta g + c n g) + B/D^beta, with
  n = ln(N/N0) and g = ln(G/G0) centred at the fitted table's geometric means N0, G0 (kept in
  the fit file, `inputs["centre"]`). Centred, alpha and delta are the exponents at the centre
  and c is not collinear with them; c > 0: the gain from experts shrinks as N grows (Clark et
  al.'s finding), the N exponent at G being alpha - c g. A is the size term at (N0, G0).
- `auto` (default): each form fitted on all but the largest active size (every sparsity) and
  scored by the RMSE of log loss there; the bilinear form, one parameter more, wins only where
  its held-out error is below the chinchilla form's by more than `MARGIN` (an extra parameter
  that extrapolates no better is noise); the winner is refitted on everything.

With a single D in the table, B/D^beta cannot be told from E: the term is dropped (noted) and
the law predicts at that D only. Fitted by Huber loss (scale 1e-3, as the Chinchilla law) on
log loss from a grid of starts, the best few polished; a sweep's cells (several runs per
(N, D, G), an lr search) are fitted by their best run. Bootstrap resamples whole cells.

`best_sparsity(C, memory)` answers: at compute C (FLOPs counted from the active parameters, the
fit's FLOP convention), which G gives the least loss when the total parameters must stay under
`memory`? N_total = N (1 + f (G - 1)) + e(N): f, the share of N in the routed experts, and e(N),
the embedding parameters run records count in N_total (a power law fitted to the dense rows'
N_total - N; none without dense rows, and f then holds them), are measured from the table.
A G beyond the fitted range is an extrapolation and is marked so (`scalelab.analysis.reach`).

`lr_against_dense(table)`: whether the best lr of MoE cells follows the dense lr law at equal
active parameters.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ..errors import AnalysisError
from ..reach import LIMIT, beyond, distrust
from ..sanity import CAUSES, require_loss_falls, require_varying
from ..table import best_per_cell, has_sweep
from .base import Law, interval, register, require_columns
from .chinchilla import DELTA, golden_section
from .hparams import NEAR_BEST, weighted_optimum

FORMS = {"chinchilla": "L = E + A/(N^alpha G^delta) + B/D^beta",
         "bilinear": "L = E + A exp(-alpha n - delta g + c n g) + B/D^beta, n = ln(N/N0), g = ln(G/G0)"}
CHOICES = ("auto", *FORMS)
PER_CELL = ("auto", "best", "all")
# auto: the bilinear form must beat the chinchilla form's held-out RMSE by 20%. On synthetic tables
# of the chinchilla form (60 cells, 0.3% noise) the ratio of the two spread from 0.85 to 1.4 over
# seeds: the held-out size's few cells make it noisy; a true c of 0.06 gave 0.2 to 0.42.
MARGIN = 0.2
EXPANSIONS = (1, 2, 4, 8, 16, 32, 64)
CELL = ["N", "D", "G"]


def _names(form: str, with_D: bool) -> list[str]:
    """The internal parameters: e = log E; a, b the log size and data terms at the centre."""
    names = ["e", "a", "alpha", "delta"] + (["c"] if form == "bilinear" else [])
    return names + (["b", "beta"] if with_D else [])


class _Problem:
    """Residuals of log loss and their Jacobian for one form on centred logs of N, G, D."""

    def __init__(self, form: str, x, g, y, logL, with_D: bool) -> None:
        self.form, self.with_D = form, with_D
        self.x, self.g, self.y, self.logL = x, g, y, logL
        self.names = _names(form, with_D)

    def _terms(self, p):
        P = dict(zip(self.names, p))
        t1 = P["a"] - P["alpha"] * self.x - P["delta"] * self.g + P.get("c", 0.0) * self.x * self.g
        t = [np.full_like(t1, P["e"]), t1] + ([P["b"] - P["beta"] * self.y] if self.with_D else [])
        T = np.stack(t)
        m = T.max(axis=0)
        w = np.exp(T - m)
        s = w.sum(axis=0)
        return m + np.log(s), w / s

    def residual(self, p):
        return self._terms(p)[0] - self.logL

    def jacobian(self, p):
        w = self._terms(p)[1]
        cols = {"e": w[0], "a": w[1], "alpha": -w[1] * self.x, "delta": -w[1] * self.g,
                "c": w[1] * self.x * self.g}
        if self.with_D:
            cols.update(b=w[2], beta=-w[2] * self.y)
        return np.column_stack([cols[n] for n in self.names])

    def solve(self, p0, max_nfev: int):
        r = least_squares(self.residual, np.asarray(p0, float), jac=self.jacobian, loss="huber",
                          f_scale=DELTA, method="trf", max_nfev=max_nfev, x_scale="jac")
        return r.x, float(r.cost)

    def starts(self) -> list[np.ndarray]:
        """A small grid: the floor at 50/80/95% of the least loss, the rest split between the
        terms at the centre, a few exponents."""
        L = np.exp(self.logL)
        out = []
        for share in (0.5, 0.8, 0.95):
            E = share * L.min()
            excess = max(float(np.median(L)) - E, 0.05 * L.min())
            for alpha in (0.2, 0.5):
                for delta in (0.0, 0.3):
                    for beta in ((0.2, 0.5) if self.with_D else (None,)):
                        P = {"e": np.log(E), "a": np.log(excess / (2 if self.with_D else 1)),
                             "alpha": alpha, "delta": delta, "c": 0.0,
                             "b": np.log(excess / 2), "beta": beta}
                        out.append(np.array([P[n] for n in self.names], float))
        return out

    def fit(self, starts=None, keep: int = 3):
        """(best parameters, its cost, the distinct good optima): every start a few steps, the
        best `keep` distinct ones polished."""
        screened = [self.solve(s, 30) for s in (starts if starts is not None else self.starts())]
        screened.sort(key=lambda t: t[1] if np.isfinite(t[1]) else np.inf)
        distinct: list[np.ndarray] = []
        for p, _ in screened:
            if len(distinct) < keep and all(np.max(np.abs(p - q)) > 1e-3 for q in distinct):
                distinct.append(p)
        polished = sorted((self.solve(p, 2000) for p in distinct), key=lambda t: t[1])
        return polished[0][0], polished[0][1], [p for p, _ in polished]


def sparsity(table: pd.DataFrame) -> pd.Series | None:
    """Each run's sparsity, 0 for a dense run (whose record writes none), from the sparsity column or
    from experts and top_k; None when the table has neither."""
    if "sparsity" in table.columns:
        s = pd.to_numeric(table["sparsity"], errors="coerce")
    elif {"experts", "top_k"} <= set(table.columns):
        experts = pd.to_numeric(table["experts"], errors="coerce").fillna(0)
        k = pd.to_numeric(table["top_k"], errors="coerce")
        s = pd.Series(np.where(experts > 0, 1 - k / experts.where(experts > 0), np.nan), index=table.index)
    else:
        return None
    return s.fillna(0.0)


def read_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the law reads it: N (active), D, G, loss, and N_total, lr where present."""
    require_columns(table, "sparsity", ("N", "D", "loss"))
    s = sparsity(table)
    if s is None:
        raise AnalysisError("the sparsity law needs a sparsity column (scale.sparsity of MoE run records, "
                            "or experts and top_k; --map sparsity=COLUMN)")
    if ((s < 0) | (s >= 1)).any():
        bad = float(s[(s < 0) | (s >= 1)].iloc[0])
        raise AnalysisError(f"the sparsity law needs 0 <= sparsity < 1; the table has {bad:g}")
    N = pd.to_numeric(table["N_active"], errors="coerce").fillna(table["N"]) \
        if "N_active" in table.columns else table["N"]
    out = pd.DataFrame({"N": N.astype(float), "D": table["D"].astype(float),
                        "G": np.round(1.0 / (1.0 - s.to_numpy(float)), 6), "loss": table["loss"].astype(float)})
    for col in ("N_total", "lr"):
        if col in table.columns:
            out[col] = pd.to_numeric(table[col], errors="coerce")
    for col in ("N", "D", "loss"):
        v = out[col].to_numpy(float)
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            raise AnalysisError(f"the sparsity law needs positive, finite N, D and loss; row "
                                f"{int(np.flatnonzero(bad)[0])} has {col}={v[bad][0]:g}")
    out.attrs = dict(table.attrs)
    return out


def _check(cells: pd.DataFrame) -> None:
    Gs = np.unique(cells["G"])
    if len(Gs) < 2:
        what = "every run is dense (sparsity 0)" if Gs[0] == 1 else \
            f"every run has sparsity {1 - 1 / Gs[0]:.4g} (G = {Gs[0]:g})"
        raise AnalysisError(f"the sparsity law needs at least two sparsities; {what}")
    sizes = size_groups(cells["N"])
    if len(sizes) < 2:
        raise AnalysisError(f"the sparsity law needs at least two active sizes N; the table has one "
                            f"(N={sizes[0][0]:g}, within 10%)")
    require_varying(cells["loss"])


def size_groups(N) -> list[np.ndarray]:
    """The distinct active sizes, those within 10% of each other as one: the models of one width
    differ in N_active by their routers alone (a width x experts matrix per block)."""
    sizes = np.sort(np.unique(np.asarray(N, float)))
    groups = [[sizes[0]]]
    for n in sizes[1:]:
        if n < 1.1 * groups[-1][0]:
            groups[-1].append(n)
        else:
            groups.append([n])
    return [np.array(g) for g in groups]


def expert_share(cells: pd.DataFrame) -> tuple[float | None, dict | None]:
    """(f, embedding law e(N) = k N^p or None) from the rows with N_total: see the docstring."""
    if "N_total" not in cells.columns:
        return None, None
    rows = cells[np.isfinite(cells["N_total"]) & (cells["N_total"] > 0)]
    dense, moe = rows[rows["G"] == 1], rows[rows["G"] > 1]
    if moe.empty:
        return None, None
    emb = None
    extra = (dense["N_total"] - dense["N"]).to_numpy(float)
    if len(dense) and np.all(extra > 0):
        lx, ly = np.log(dense["N"].to_numpy(float)), np.log(extra)
        p = float(np.polyfit(lx, ly, 1)[0]) if np.unique(lx).size >= 2 else 0.0
        emb = {"k": float(np.exp(np.median(ly - p * lx))), "p": p}
    e = _embedding(emb, moe["N"].to_numpy(float))
    f = (moe["N_total"] - moe["N"] - e) / ((moe["G"] - 1) * moe["N"])
    return float(np.median(f)), emb


def _embedding(emb: dict | None, N):
    return 0.0 if emb is None else emb["k"] * np.asarray(N, float) ** emb["p"]


@register
class SparsityLaw(Law):
    """L(N, D, G) across sparsity; see the module docstring."""

    name: ClassVar[str] = "sparsity"

    def __init__(self, form: str = "auto", per_cell: str = "auto", holdout: int = 1) -> None:
        super().__init__()
        if form not in CHOICES:
            raise AnalysisError(f"unknown sparsity form {form!r}; known: {', '.join(CHOICES)}")
        if per_cell not in PER_CELL:
            raise AnalysisError(f"unknown per-cell choice {per_cell!r}; known: {', '.join(PER_CELL)}")
        self.choice, self.per_cell, self.holdout = form, per_cell, holdout
        self.variant = "chinchilla" if form == "auto" else form
        self.centre = {"N": 1.0, "G": 1.0, "D": 1.0}
        self.single_D: float | None = None

    def _set_options(self, inputs) -> None:
        self.choice = inputs.get("form", "auto")
        self.per_cell, self.holdout = inputs.get("per_cell", "auto"), inputs.get("holdout", 1)
        self.variant = inputs.get("variant", "chinchilla")
        self.centre = dict(inputs.get("centre", {"N": 1.0, "G": 1.0, "D": 1.0}))
        self.single_D = inputs.get("single_D")

    @property
    def form(self) -> str:
        text = FORMS[self.variant]
        if self.single_D is not None:
            text = text.replace(" + B/D^beta", "") + f" (at D = {self.single_D:.4g} only)"
        return text + ", G = 1/(1 - sparsity)"

    # ------------------------------------------------------------------ fitting
    def _problem(self, form: str, cells: pd.DataFrame) -> _Problem:
        c = self.centre
        return _Problem(form, np.log(cells["N"].to_numpy(float) / c["N"]),
                        np.log(cells["G"].to_numpy(float) / c["G"]),
                        np.log(cells["D"].to_numpy(float) / c["D"]),
                        np.log(cells["loss"].to_numpy(float)), self.single_D is None)

    def _params(self, form: str, p) -> dict[str, float]:
        """Internal (centred, log) parameters -> the printed ones (see the form's text)."""
        P = dict(zip(_names(form, self.single_D is None), map(float, p)))
        lnN0, lnG0 = np.log(self.centre["N"]), np.log(self.centre["G"])
        a = P["a"] if form == "bilinear" else P["a"] + P["alpha"] * lnN0 + P["delta"] * lnG0
        out = {"E": float(np.exp(P["e"])), "A": float(np.exp(a)), "alpha": P["alpha"], "delta": P["delta"]}
        if form == "bilinear":
            out["c"] = P["c"]
        if self.single_D is None:
            out.update(B=float(np.exp(P["b"] + P["beta"] * np.log(self.centre["D"]))), beta=P["beta"])
        return out

    def _fit_form(self, form: str, cells: pd.DataFrame):
        k = len(_names(form, self.single_D is None))
        if len(cells) <= k:
            raise AnalysisError(f"the sparsity law's {form} form has {k} parameters but the table has only "
                                f"{len(cells)} cells")
        problem = self._problem(form, cells)
        p, cost, optima = problem.fit()
        params = self._params(form, p)
        require_loss_falls(self.name, params, {"alpha": "N", **({"beta": "D"} if "beta" in params else {})})
        return params, problem, p, optima

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0,
            level: float = 0.95) -> "SparsityLaw":
        if table is None or len(table) == 0:
            raise AnalysisError("the sparsity law got an empty table")
        runs = read_cells(table)
        _check(runs)
        notes = []
        swept = has_sweep(runs, CELL)
        if self.per_cell == "best" or (self.per_cell == "auto" and swept):
            cells = best_per_cell(runs, CELL)
            notes.append("sparsity law fitted to the best run of each (N, D, G) cell")
        else:
            cells = runs
        lnN, lnG, lnD = (np.log(cells[c].to_numpy(float)) for c in ("N", "G", "D"))
        self.centre = {"N": float(np.exp(lnN.mean())), "G": float(np.exp(lnG.mean())),
                       "D": float(np.exp(lnD.mean()))}
        self.single_D = float(cells["D"].iloc[0]) if cells["D"].nunique() == 1 else None
        if self.single_D is not None:
            notes.append(f"one data size (D = {self.single_D:.4g}): B/D^beta cannot be told from E and is "
                         "left out; the law predicts at that D only")
        elif abs(np.corrcoef(lnN, lnD)[0, 1]) > 0.99:
            notes.append("D follows N (one tokens-per-parameter ratio): the size and data terms are told "
                         "apart by curvature alone; predictions off that ratio are weakly determined")
        selection = self._select(cells) if self.choice == "auto" else None
        self.params_, problem, p, optima = self._fit_form(self.variant, cells)
        r = problem.residual(p)
        self.n_points_ = len(cells)
        self.metrics_ = {"rmse_log": float(np.sqrt(np.mean(r ** 2))), "cells": int(len(cells)),
                         "runs": int(len(runs))}
        if selection is not None:
            self.metrics_.update(selection=selection, winner=self.variant, selection_margin=MARGIN)
        f, emb = expert_share(runs)
        G = cells["G"].to_numpy(float)
        self._set_inputs(cells, form=self.choice, variant=self.variant, per_cell=self.per_cell,
                         holdout=self.holdout, centre=self.centre, single_D=self.single_D,
                         G_range=[float(G.min()), float(G.max())],
                         sparsity_range=[float(1 - 1 / G.min()), float(1 - 1 / G.max())],
                         expansions=sorted(map(float, np.unique(G))), expert_share=f, embedding=emb,
                         columns=["N", "D", "loss", "sparsity"])
        self.inputs_["notes"] += notes
        if f is None:
            self.inputs_["notes"].append("no N_total for MoE runs: the expert share f is unknown, and "
                                         "best_sparsity takes no memory cap")
        elif emb is None:
            self.inputs_["notes"].append("no dense N_total: f also holds the embedding parameters")
        if "lr" in runs.columns and swept and runs.groupby(CELL)["lr"].nunique().max() > 1:
            try:
                self.metrics_["lr_against_dense"] = _lr_against_dense(runs)
            except AnalysisError as e:
                self.metrics_["lr_against_dense"] = f"not computed: {e}"
        if bootstrap:
            self._bootstrap(bootstrap, seed, level, lambda rng: self._refit(cells, problem, optima, rng))
        return self

    def _select(self, cells: pd.DataFrame) -> list[dict[str, Any]]:
        """Each form's held-out error at the largest active size(s); sets `variant`."""
        sizes = size_groups(cells["N"])
        if len(sizes) < self.holdout + 2:
            self.variant = "chinchilla"
            return [{"form": form, "text": FORMS[form], "error": f"{len(sizes)} active sizes: none held out "
                     f"(needs {self.holdout + 2}); the chinchilla form, the fewer parameters, is used"}
                    for form in FORMS]
        held = cells["N"].isin(np.concatenate(sizes[-self.holdout:]))
        train, test = cells[~held], cells[held]
        scores = []
        for form in FORMS:
            try:
                if train["G"].nunique() < 2:
                    raise AnalysisError("the sizes left have one sparsity")
                params = self._fit_form(form, train)[0]
            except AnalysisError as e:
                scores.append({"form": form, "text": FORMS[form], "error": str(e).replace(f"; {CAUSES}", "")})
                continue
            r = np.log(self.predict(test["N"], test["D"], test["G"], params, variant=form)) \
                - np.log(test["loss"].to_numpy(float))
            scores.append({"form": form, "text": FORMS[form], "heldout_rmse_log": float(np.sqrt(np.mean(r ** 2))),
                           "heldout_mean_log": float(np.mean(r))})
        rmse = {s["form"]: s["heldout_rmse_log"] for s in scores if "heldout_rmse_log" in s}
        if not rmse:  # nothing to choose by: the fewer parameters, and the fit on everything says if it fails
            self.variant = "chinchilla"
            return scores
        self.variant = "bilinear" if "bilinear" in rmse and (
            "chinchilla" not in rmse or rmse["bilinear"] < (1 - MARGIN) * rmse["chinchilla"]) else "chinchilla"
        return scores

    def _refit(self, cells: pd.DataFrame, problem: _Problem, optima, rng) -> dict | None:
        """A refit on whole cells drawn with replacement, warm-started at the full-data optima."""
        codes = cells.groupby(CELL).ngroup().to_numpy()
        chosen = rng.integers(0, codes.max() + 1, codes.max() + 1)
        sample = cells.iloc[np.concatenate([np.flatnonzero(codes == c) for c in chosen])]
        if sample["N"].nunique() < 2 or sample["G"].nunique() < 2 or \
                (self.single_D is None and sample["D"].nunique() < 2):
            return None
        sub = self._problem(self.variant, sample)
        p = sub.fit(starts=optima, keep=1)[0]
        return self._params(self.variant, p)

    # ------------------------------------------------------------------ prediction
    def predict(self, N, D=None, G=1.0, params: dict | None = None, variant: str | None = None):
        """The loss at active size N, tokens D and expansion G (arrays broadcast); a fit of one D
        takes D None (or that D)."""
        P = params or self.params_
        N, G = np.asarray(N, float), np.asarray(G, float)
        if self.single_D is not None:
            if D is not None and not np.allclose(np.asarray(D, float), self.single_D, rtol=1e-6):
                raise AnalysisError(f"the sparsity law was fitted at one data size, D = {self.single_D:.4g}: "
                                    "it predicts at that D only (fit runs of several D for a law of D)")
        elif D is None:
            raise AnalysisError("the sparsity law needs D (or C) to predict")
        if np.any(G < 1):
            raise AnalysisError("the expansion G = 1/(1 - sparsity) must be at least 1")
        with np.errstate(over="ignore"):
            if (variant or self.variant) == "bilinear":
                n, g = np.log(N / self.centre["N"]), np.log(G / self.centre["G"])
                size = P["A"] * np.exp(-P["alpha"] * n - P["delta"] * g + P["c"] * n * g)
            else:
                size = P["A"] / (N ** P["alpha"] * G ** P["delta"])
            data = P["B"] / np.asarray(D, float) ** P["beta"] if "B" in P else 0.0
        return P["E"] + size + data

    def predict_interval(self, N, D=None, G=1.0, level: float = 0.95) -> list[float] | None:
        """The loss interval from the bootstrap draws (and the residual scatter); None without a
        bootstrap: an interval is given only from a bootstrapped fit."""
        if not self.samples_:
            return None
        draws = self._draws(lambda P: self.predict(N, D, G, P))
        return interval(draws.ravel(), self.metrics_.get("rmse_log", 0.0), level)

    def n_total(self, N, G):
        """Total parameters of an MoE of active size N and expansion G (see the docstring)."""
        f = self.inputs_.get("expert_share")
        if f is None:
            raise AnalysisError("the sparsity fit has no expert share f (its table had no N_total for MoE "
                                "runs): no memory cap can be applied")
        N = np.asarray(N, float)
        return N * (1 + f * (np.asarray(G, float) - 1)) + _embedding(self.inputs_.get("embedding"), N)

    def best_sparsity(self, C: float, memory: float | None = None, expansions=EXPANSIONS,
                      level: float = 0.95) -> dict[str, Any]:
        """For compute C, each G's best active size N (D = flops_.D(N, C)) under N_total <= memory.

        Returns {"C", "memory", "rows", "best_G", "best_sparsity", "notes"}; each row has G,
        sparsity, fits, N_active, N_total, D, loss, loss_interval (bootstrapped fits), bound
        ("memory" where the cap binds), reach (how far N, D, G lie beyond the fitted ranges) and
        unreliable (why the number is none to trust, `reach.distrust`: then no interval); a row
        that does not fit has fits False and N_total_min.
        N is searched from the smallest fitted size / LIMIT (the reach limit) up to one token.
        """
        self.check_fitted()
        if self.single_D is not None:
            raise AnalysisError(f"the sparsity law was fitted at one data size (D = {self.single_D:.4g}): "
                                "it cannot trade N against D at a compute budget")
        if memory is not None and memory <= 0:
            raise AnalysisError("the memory cap must be a positive number of parameters")
        lo, top = float(self.inputs_["N_range"][0]) / LIMIT, float(C) / 6.0  # up to about one token
        if top <= lo:
            raise AnalysisError(f"C = {C:.4g} is too small: it does not train N_active = {lo:.4g} (the fitted "
                                f"sizes / {LIMIT:g}) on one token")
        rows = []
        for G in map(float, expansions):
            row: dict[str, Any] = {"G": G, "sparsity": 1 - 1 / G}
            hi, row["bound"] = top, None
            if memory is not None:
                cap = self._cap(G, memory, lo, top)
                if cap is None:
                    rows.append({**row, "fits": False, "N_total_min": float(self.n_total(lo, G))})
                    continue
                if cap < top:
                    hi = cap
            N = self._argmin(C, G, lo, hi)
            if memory is not None and hi < top and N >= hi * (1 - 1e-6):
                row["bound"] = "memory"
            D = float(self.flops_.D(N, C))
            why = distrust(self, N=N, D=D, G=G)  # no reliable number there: no interval either
            row.update(fits=True, N_active=N, D=D, loss=float(self.predict(N, D, G)),
                       N_total=float(self.n_total(N, G)) if self.inputs_.get("expert_share") is not None else None,
                       loss_interval=None if why else self.predict_interval(N, D, G, level),
                       reach=[b.describe() for b in beyond(self.inputs_, N=N, D=D, G=G)], unreliable=why or None)
            rows.append(row)
        ok = [r for r in rows if r["fits"]]
        if not ok:
            raise AnalysisError(f"no expansion fits under the memory cap {memory:g}: even N_active = "
                                f"{lo:.4g} (the fitted sizes / {LIMIT:g}) exceeds it")
        best = min(ok, key=lambda r: r["loss"])
        notes = [f"G = {best['G']:g} lies beyond the fitted expansions {self.inputs_['G_range']}: "
                 "an extrapolation"] if any(r.startswith("G ") for r in best["reach"]) else []
        return {"C": float(C), "memory": memory, "rows": rows, "best_G": best["G"],
                "best_sparsity": best["sparsity"], "notes": notes}

    def _cap(self, G: float, memory: float, lo: float, hi: float) -> float | None:
        """The largest N in [lo, hi] with N_total(N, G) <= memory (None: not even lo)."""
        if self.n_total(lo, G) > memory:
            return None
        if self.n_total(hi, G) <= memory:
            return hi
        a, b = np.log(lo), np.log(hi)
        for _ in range(100):  # N_total grows with N: bisection in log N
            m = (a + b) / 2
            a, b = (m, b) if self.n_total(np.exp(m), G) <= memory else (a, m)
        return float(np.exp(a))

    def _argmin(self, C: float, G: float, lo: float, hi: float) -> float:
        """The N of least predicted loss on [lo, hi]: a log grid, then golden section around its best."""
        x = np.linspace(np.log(lo), np.log(hi), 401)
        loss = lambda x: self.predict(np.exp(x), self.flops_.D(np.exp(x), C), G)  # noqa: E731
        k = int(np.argmin(loss(x)))
        a, b = x[max(k - 1, 0)], x[min(k + 1, len(x) - 1)]
        return float(np.exp(golden_section(loss, np.array(a), np.array(b))))


# ---------------------------------------------------------------------- lr against the dense law
def lr_against_dense(table: pd.DataFrame, tol: float = NEAR_BEST) -> dict[str, Any]:
    """Whether MoE cells' best lr follows the dense lr law at equal active parameters.

    Per (N, D, G) cell the best lr from the runs near its best loss (hparams' `weighted`
    near-best optimum; a cell whose best is the smallest or largest lr it tried is an edge, left
    out); log lr* = a + b log N fitted to the dense cells; each MoE cell's ratio
    lr* / dense law(N_active), their geometric mean overall and per G, and the dense cells' own
    scatter about their line as the yardstick of noise.
    """
    return _lr_against_dense(read_cells(table), tol)


def _lr_against_dense(cells: pd.DataFrame, tol: float = NEAR_BEST) -> dict[str, Any]:
    if "lr" not in cells.columns or cells["lr"].isna().all():
        raise AnalysisError("lr against dense needs an lr column")
    rows, edges = [], []
    for (N, D, G), cell in cells.dropna(subset=["lr"]).groupby(CELL):
        if cell["lr"].nunique() < 2:
            continue
        lr, edge = weighted_optimum(cell["lr"], cell["loss"], tol)
        (edges if edge else rows).append({"N": float(N), "D": float(D), "G": float(G), "lr": lr,
                                          **({"side": edge} if edge else {})})
    if not rows:
        raise AnalysisError("lr against dense needs cells of several lr with their best inside the range tried")
    pts = pd.DataFrame(rows)
    dense, moe = pts[pts["G"] == 1], pts[pts["G"] > 1]
    if dense["N"].nunique() < 2:
        raise AnalysisError(f"lr against dense needs dense cells of at least two sizes (with their best lr "
                            f"inside the range tried); it has {dense['N'].nunique()}")
    if moe.empty:
        raise AnalysisError("lr against dense has no MoE cell with its best lr inside the range tried")
    x, y = np.log(dense["N"].to_numpy(float)), np.log(dense["lr"].to_numpy(float))
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    scatter = float(np.sqrt(resid @ resid / (len(x) - 2))) if len(x) > 2 else None
    law = np.exp(a + b * np.log(moe["N"].to_numpy(float)))
    ratio = moe["lr"].to_numpy(float) / law
    per_cell = [{**r, "sparsity": 1 - 1 / r["G"], "lr_dense_law": float(d), "ratio": float(q)}
                for r, d, q in zip(moe.to_dict(orient="records"), law, ratio)]
    by_G = [{"G": float(G), "ratio": float(np.exp(np.mean(np.log(ratio[moe["G"].to_numpy() == G])))),
             "cells": int(np.sum(moe["G"].to_numpy() == G))} for G in sorted(moe["G"].unique())]
    mean = float(np.exp(np.mean(np.log(ratio))))
    noise = f"dense scatter ±{100 * (np.exp(scatter) - 1):.0f}%" if scatter is not None else \
        "dense scatter unmeasured: two dense cells fix the line exactly"
    # a grid search resolves lr* to its step; a cell whose best is the edge of its range says only
    # that lr* lies beyond it, and leaving it out would pull the ratio toward the rates tried
    step = float(np.exp(np.median([np.median(np.diff(np.log(np.unique(c["lr"]))))
                                   for _, c in cells.dropna(subset=["lr"]).groupby(CELL) if c["lr"].nunique() > 1])))
    moe_edges = [e for e in edges if e["G"] > 1]
    beyond_range = "".join(f"; {n} MoE cell(s) best at the {side}est rate tried (lr* {'below' if side == 'low' else 'above'} it)"
                           for side in ("low", "high") if (n := sum(e["side"] == side for e in moe_edges)))
    return {"dense_law": {"a": float(np.exp(a)), "b": float(b), "text": "lr* = a N^b (dense cells)"},
            "dense_cells": int(len(dense)), "dense_scatter_log": scatter, "ratio": mean, "by_G": by_G,
            "cells": per_cell, "edges": edges,
            "resolution": step, "statement": f"MoE best lr is {mean:.2f} times the dense law at equal active "
                                             f"parameters ({noise}; the rates tried are {step:.3g}x apart"
                                             f"{beyond_range})"}
