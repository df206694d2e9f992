"""L(N, D) = E + A/N^alpha + B/D^beta, fitted the way Hoffmann et al. and Epoch AI do.

Huber loss (delta 1e-3) on log-space residuals, the prediction computed as
LSE(a - alpha log N, b - beta log D, e) with a = log A, b = log B, e = log E, and a multi-start
search from every point of the published grid (4,500 starts), best optimum kept.

Why not a loop of scipy.optimize.minimize: 4,500 calls take minutes. Instead every start is
optimised at once, as one (starts, params) array, by damped Gauss-Newton steps on the IRLS
majoriser of the Huber loss (Levenberg-Marquardt with per-start damping and step acceptance).
After 15 such steps (single precision; they only rank the starts) the best 5% of starts continue to convergence, and the best few distinct
optima are polished with scipy's L-BFGS-B on the exact objective.
Bootstrap refits use the same batched solver, with resampling expressed as per-point counts and
warm starts at the full-data optima.
"""
from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..errors import AnalysisError
from ..sanity import require_loss_falls, require_varying
from .base import Law, interval, percentile_interval, register, require_columns, require_scales

DELTA = 1e-3
FULL = ("a", "b", "e", "alpha", "beta")  # log A, log B, log E, alpha, beta

# Each form: which full parameters are free (a column per free parameter) and whether E exists.
FORMS = {
    "chinchilla": {"free": ("a", "b", "e", "alpha", "beta"), "tie": {}, "floor": True,
                   "text": "L = E + A/N^alpha + B/D^beta"},
    "shared": {"free": ("a", "b", "e", "alpha"), "tie": {"beta": "alpha"}, "floor": True,
               "text": "L = E + A/N^alpha + B/D^alpha"},
    "no_floor": {"free": ("a", "b", "alpha", "beta"), "tie": {}, "floor": False,
                 "text": "L = A/N^alpha + B/D^beta"},
}
GRID = {"alpha": np.arange(0, 2.01, 0.5), "beta": np.arange(0, 2.01, 0.5),
        "e": np.arange(-1, 1.01, 0.5), "a": np.arange(0, 25.1, 5), "b": np.arange(0, 25.1, 5)}


def huber(r: np.ndarray) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= DELTA, 0.5 * r * r, DELTA * (a - 0.5 * DELTA))


class _Model:
    """Prediction, Huber objective and Jacobian of one form, batched over parameter rows."""

    def __init__(self, form: str, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray,
                 dtype=np.float64):
        spec = FORMS[form]
        logN, logD, logL = (np.asarray(v, dtype) for v in (logN, logD, logL))
        self.free, self.floor = spec["free"], spec["floor"]
        M = np.zeros((5, len(self.free)))
        for j, name in enumerate(self.free):
            M[FULL.index(name), j] = 1.0
        for tied, to in spec["tie"].items():
            M[FULL.index(tied), self.free.index(to)] = 1.0
        self.M = M.astype(dtype)
        self.x, self.y, self.logL = logN, logD, logL

    def full(self, p: np.ndarray) -> np.ndarray:
        return p @ self.M.T

    def terms(self, p: np.ndarray):
        th = self.full(p)
        t1 = th[:, [0]] - th[:, [3]] * self.x  # (S, n)
        t2 = th[:, [1]] - th[:, [4]] * self.y
        if self.floor:
            t3 = np.broadcast_to(th[:, [2]], t1.shape)
            m = np.maximum(np.maximum(t1, t2), t3)
            e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
        else:
            m = np.maximum(t1, t2)
            e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), 0.0
        s = e1 + e2 + e3
        return m + np.log(s), e1 / s, e2 / s, (e3 / s if self.floor else None)

    def residual(self, p):
        lse = self.terms(p)[0]
        return lse - self.logL

    def objective(self, p, c=1.0):
        return np.sum(c * huber(self.residual(p)), axis=-1)

    def jacobian(self, p):
        lse, w1, w2, w3 = self.terms(p)
        cols = [w1, w2, w3 if w3 is not None else np.zeros_like(w1), -w1 * self.x, -w2 * self.y]
        Jf = np.stack(cols, axis=-1)  # (S, n, 5) in the full parameters
        return lse - self.logL, Jf @ self.M  # residuals, (S, n, k)


def _normal_equations(model: _Model, p: np.ndarray, c):
    """IRLS gradient g and Gauss-Newton matrix H of sum c*huber(r), batched over rows of p.

    Built from weighted sums against the fixed columns [1, x, y, x^2, xy, y^2] (one small
    matrix product each) instead of materialising the (starts, points, params) Jacobian.
    """
    lse, w1, w2, w3 = model.terms(p)
    r = lse - model.logL
    ar = np.abs(r)
    inside = ar <= DELTA
    psi = np.where(inside, r, DELTA * np.sign(r)) * c
    w = np.where(inside, 1.0, DELTA / np.maximum(ar, 1e-30)) * c
    x, y = model.x, model.y
    one = np.ones_like(x)
    X = np.stack([one, x, x * x], axis=1)
    Y = np.stack([one, y, y * y], axis=1)
    XY = np.stack([one, x, y, x * y], axis=1)
    ww1, ww2 = w * w1, w * w2
    s11 = (ww1 * w1) @ X            # sum w w1^2 [1, x, x^2]
    s12 = (ww1 * w2) @ XY           # sum w w1 w2 [1, x, y, xy]
    s22 = (ww2 * w2) @ Y            # sum w w2^2 [1, y, y^2]
    u1, u2 = psi * w1, psi * w2
    g1, g2 = u1 @ X[:, :2], u2 @ Y[:, :2]
    S = p.shape[0]
    H = np.zeros((S, 5, 5), dtype=p.dtype)
    g = np.zeros((S, 5), dtype=p.dtype)
    # parameter order: a, b, e, alpha, beta; Jacobian columns w1, w2, w3, -w1 x, -w2 y
    H[:, 0, 0], H[:, 0, 1], H[:, 0, 3], H[:, 0, 4] = s11[:, 0], s12[:, 0], -s11[:, 1], -s12[:, 2]
    H[:, 1, 1], H[:, 1, 3], H[:, 1, 4] = s22[:, 0], -s12[:, 1], -s22[:, 1]
    H[:, 3, 3], H[:, 3, 4], H[:, 4, 4] = s11[:, 2], s12[:, 3], s22[:, 2]
    g[:, 0], g[:, 1], g[:, 3], g[:, 4] = g1[:, 0], g2[:, 0], -g1[:, 1], -g2[:, 1]
    if w3 is not None:
        ww3 = w * w3
        s13 = (ww1 * w3) @ X[:, :2]
        s23 = (ww2 * w3) @ Y[:, :2]
        H[:, 0, 2], H[:, 1, 2], H[:, 2, 2] = s13[:, 0], s23[:, 0], (ww3 * w3).sum(axis=1)
        H[:, 2, 3], H[:, 2, 4] = -s13[:, 1], -s23[:, 1]
        g[:, 2] = (psi * w3).sum(axis=1)
    iu = np.triu_indices(5, 1)
    H[:, iu[1], iu[0]] = H[:, iu[0], iu[1]]
    M = model.M
    return M.T @ g[..., None], M.T @ H @ M


def batched_lm(model: _Model, p0: np.ndarray, c=1.0, iters: int = 60,
               tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Minimise sum c*huber(r) from every row of p0 at once (damped IRLS Gauss-Newton)."""
    p = np.array(p0, dtype=model.M.dtype)
    S, k = p.shape
    lam = np.full(S, 1e-3)
    f = model.objective(p, c)
    active = np.ones(S, dtype=bool)
    eye = np.eye(k, dtype=p.dtype)
    for _ in range(iters):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        pa = p[idx]
        ca = c[idx] if np.ndim(c) == 2 else c
        g, H = _normal_equations(model, pa, ca)
        d = np.einsum("skk->sk", H)
        damp = lam[idx, None] * (d + 1e-9 * d.mean(axis=1, keepdims=True) + 1e-12)
        A = H + damp[..., None] * eye
        try:
            step = -np.linalg.solve(A, g)[..., 0]
        except np.linalg.LinAlgError:
            step = -g[..., 0] / np.maximum(np.einsum("skk->sk", A), 1e-12)
        step = np.where(np.isfinite(step), step, 0.0)
        pn = pa + step
        fn = model.objective(pn, ca)
        better = np.isfinite(fn) & (fn < f[idx])
        gain = np.where(better, (f[idx] - fn) / np.maximum(np.abs(f[idx]), 1e-300), 0.0)
        p[idx[better]] = pn[better]
        f[idx[better]] = fn[better]
        lam[idx] = np.where(better, np.maximum(lam[idx] / 3, 1e-9), np.minimum(lam[idx] * 4, 1e9))
        # Done: an accepted step that barely helped, or damping that cannot find a better point.
        done = (better & (gain < tol)) | (lam[idx] >= 1e9)
        active[idx[done]] = False
    return p, f


def start_grid(form: str) -> np.ndarray:
    free = FORMS[form]["free"]
    return np.array(list(itertools.product(*[GRID[n] for n in free])), dtype=float)


def _polish(model: _Model, p0: np.ndarray) -> tuple[np.ndarray, float]:
    def fun(p):
        r, J = model.jacobian(p[None])
        ar = np.abs(r[0])
        psi = np.where(ar <= DELTA, r[0], DELTA * np.sign(r[0]))
        return float(np.sum(huber(r[0]))), J[0].T @ psi

    res = minimize(fun, p0, jac=True, method="L-BFGS-B", options={"maxiter": 500, "gtol": 1e-12,
                                                                    "ftol": 1e-15})
    return res.x, float(res.fun)


def fit_form(form: str, logN, logD, logL, top: int = 5, stage1: int = 15,
             keep: float = 0.05):
    """(best free parameters, its objective, the distinct good optima) for one form.

    Every grid start takes `stage1` damped steps together; the best `keep` fraction continue to
    convergence; the best `top` distinct optima are polished by L-BFGS-B on the exact loss.
    """
    model = _Model(form, logN, logD, logL)
    # Stage 1 only ranks the starts: single precision, in cache-sized chunks, is enough.
    coarse = _Model(form, logN, logD, logL, dtype=np.float32)
    grid = start_grid(form).astype(np.float32)
    chunk = max(64, 131072 // max(len(logL), 1))
    parts = [batched_lm(coarse, grid[i:i + chunk], iters=stage1) for i in range(0, len(grid), chunk)]
    p = np.concatenate([q for q, _ in parts]).astype(np.float64)
    f = model.objective(p)
    f = np.where(np.isfinite(f), f, np.inf)
    order = np.argsort(f)[: max(top * 4, int(np.ceil(keep * len(f))))]
    p, f = batched_lm(model, p[order], iters=150)
    f = np.where(np.isfinite(f), f, np.inf)
    distinct: list[np.ndarray] = []
    for i in np.argsort(f):
        if len(distinct) >= top:
            break
        if all(np.max(np.abs(p[i] - q)) > 1e-3 for q in distinct):
            distinct.append(p[i])
    polished = [_polish(model, q) for q in distinct]
    best = min(polished, key=lambda t: t[1])
    return best[0], best[1], np.array([q for q, _ in polished])


def _to_params(form: str, p: np.ndarray) -> dict[str, float]:
    model = _Model(form, np.zeros(1), np.zeros(1), np.zeros(1))
    th = model.full(np.atleast_2d(p))[0]
    out = {"E": float(np.exp(th[2])) if FORMS[form]["floor"] else 0.0,
           "A": float(np.exp(th[0])), "B": float(np.exp(th[1])),
           "alpha": float(th[3]), "beta": float(th[4])}
    return out


@register
class ChinchillaLaw(Law):
    """L(N, D) = E + A/N^alpha + B/D^beta (or the shared-exponent / no-floor variants)."""

    name: ClassVar[str] = "chinchilla"

    def __init__(self, form: str = "chinchilla") -> None:
        super().__init__()
        if form not in FORMS:
            raise AnalysisError(f"unknown Chinchilla form {form!r}; known: {', '.join(FORMS)}")
        self.variant = form

    def _set_options(self, inputs) -> None:
        self.variant = inputs.get("variant", "chinchilla")

    @property
    def form(self) -> str:
        return FORMS[self.variant]["text"]

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0,
            level: float = 0.95) -> "ChinchillaLaw":
        require_columns(table, "chinchilla", ("N", "D", "loss"))
        k = len(FORMS[self.variant]["free"])
        require_scales(table, self.name, k, by="N")
        if table["D"].nunique() < 2:
            raise AnalysisError("the chinchilla law needs at least two data sizes D")
        logN, logD = np.log(table["N"].to_numpy(float)), np.log(table["D"].to_numpy(float))
        require_varying(table["loss"])
        logL = np.log(table["loss"].to_numpy(float))
        p, fbest, optima = fit_form(self.variant, logN, logD, logL)
        self.params_ = _to_params(self.variant, p)
        require_loss_falls(self.name, self.params_, {"alpha": "N", "beta": "D"})
        self.n_points_ = len(table)
        model = _Model(self.variant, logN, logD, logL)
        r = model.residual(p[None])[0]
        self.metrics_ = {"huber": fbest, "rmse_log": float(np.sqrt(np.mean(r ** 2))),
                         "n_starts": int(len(start_grid(self.variant)))}
        self._set_inputs(table, variant=self.variant, columns=["N", "D", "loss"],
                         N_range=[float(table.N.min()), float(table.N.max())],
                         D_range=[float(table.D.min()), float(table.D.max())])
        if bootstrap:
            draws = bootstrap_fits(model, optima, bootstrap, seed)
            self._set_ci_from_fits([_to_params(self.variant, q) for q in draws], level)
        return self

    def predict(self, N, D, params: dict | None = None) -> np.ndarray:
        P = params or self.params_
        N, D = np.asarray(N, float), np.asarray(D, float)
        with np.errstate(over="ignore"):  # a bootstrap draw's large exponent: the term's limit, 0
            return P["E"] + P["A"] / N ** P["alpha"] + P["B"] / D ** P["beta"]

    def predict_interval(self, N, D, level: float = 0.95) -> list[float]:
        draws = self._draws(lambda P: self.predict(N, D, P))
        return interval(draws.ravel(), self.metrics_.get("rmse_log", 0.0), level)

    def compute_optimal(self, C, params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """N_opt(C), D_opt(C): the N, D of least loss that cost C under the law's FLOP convention.

        Under plain 6ND the closed form; otherwise D = flops_.D(N, C) and L(N, D(N, C)) is
        minimised over log N by golden-section search. Parameter values may be arrays (one per
        bootstrap draw) broadcasting against C: all minimisations run at once.
        """
        P = params or self.params_
        C = np.asarray(C, float)
        if self.flops_.k == 0:
            a, b = np.asarray(P["alpha"], float), np.asarray(P["beta"], float)
            G = (a * np.asarray(P["A"]) / (b * np.asarray(P["B"]))) ** (1.0 / (a + b))
            N = G * (C / 6.0) ** (b / (a + b))
            return N, self.flops_.D(N, C)
        # L is convex in log N: A/N^alpha is, and so is B/D^beta with D = C/(6N(1 + k N^p)), since
        # log(1 + k N^p) is a softplus of log N (k > 0, or p = 0, as `from_points` makes them).
        # The search spans N = 1 to N = C/6 (about one token).
        shape = np.broadcast_shapes(C.shape, *(np.shape(v) for v in P.values()))
        hi = np.broadcast_to(np.log(C / 6.0), shape).astype(float)
        x = golden_section(lambda x: self.predict(np.exp(x), self.flops_.D(np.exp(x), C), P),
                           np.zeros(shape), hi)
        N = np.exp(x)
        return N, self.flops_.D(N, C)

    def compute_optimal_interval(self, C, level: float = 0.95):
        """Bootstrap intervals of N_opt(C) and D_opt(C) at one budget C."""
        if not self.samples_:
            n, d = self.compute_optimal(C)
            return [float(n), float(n)], [float(d), float(d)]
        draws = {k: np.asarray(v, float) for k, v in self.samples_.items()}
        n, d = self.compute_optimal(float(C), draws)
        return percentile_interval(n, level), percentile_interval(d, level)


def golden_section(f, lo: np.ndarray, hi: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """The minimiser of a unimodal `f` on [lo, hi], elementwise over arrays of intervals."""
    inv_phi = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = np.array(lo, float), np.array(hi, float)
    steps = int(np.ceil(np.log(max(float(np.max(b - a, initial=0.0)), tol) / tol)
                        / -np.log(inv_phi)))
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        left = fc < fd  # the minimum lies in [a, d]: d becomes the upper inner point
        a, b = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b - inv_phi * (b - a), a + inv_phi * (b - a))
        f_new = f(new)
        c, d = np.where(left, new, d), np.where(left, c, new)
        fc, fd = np.where(left, f_new, fd), np.where(left, fc, f_new)
    return (a + b) / 2


def bootstrap_fits(model: _Model, optima: np.ndarray, K: int, seed: int = 0,
                   chunk: int = 250) -> np.ndarray:
    """K refits on resampled runs, each warm-started at the full-data optima; best per draw."""
    rng = np.random.default_rng(seed)
    n = model.logL.shape[0]
    out = []
    for start in range(0, K, chunk):
        k = min(chunk, K - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=k).astype(float)
        m = len(optima)
        p0 = np.repeat(optima[None], k, axis=0).reshape(k * m, -1)
        c = np.repeat(counts, m, axis=0)
        p, f = batched_lm(model, p0, c=c, iters=80, tol=1e-12)
        f = np.where(np.isfinite(f), f, np.inf).reshape(k, m)
        out.append(p.reshape(k, m, -1)[np.arange(k), np.argmin(f, axis=1)])
    return np.concatenate(out)
