"""y = E + A * x^-alpha (E may be fixed at 0): loss against compute, or N_opt against C."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ..errors import AnalysisError
from ..sanity import require_loss_falls, require_varying
from ..table import SCALE_FIELDS
from .base import Law, interval, register, require_columns, require_scales


def _fit_logspace(x: np.ndarray, y: np.ndarray, fix_E: bool, starts=None) -> np.ndarray:
    """Least squares on log y. Returns (log E or -inf, log A, alpha)."""
    lx, ly = np.log(x), np.log(y)
    if fix_E:
        X = np.column_stack([np.ones_like(lx), -lx])
        a, alpha = np.linalg.lstsq(X, ly, rcond=None)[0]
        return np.array([-np.inf, a, alpha])

    def resid(p):
        e, a, al = p
        return np.logaddexp(e, a - al * lx) - ly

    if starts is None:
        ymin = y.min()
        starts = [(np.log(f * ymin), a, al) for f in (0.3, 0.6, 0.9) for al in (0.05, 0.2, 0.5)
                  for a in (np.log(max(ymin, 1e-12)) + al * np.median(lx),)]
    best = None
    for s in starts:
        r = least_squares(resid, np.asarray(s, float), method="lm", max_nfev=2000)
        if best is None or r.cost < best.cost:
            best = r
    return best.x


@register
class PowerLaw(Law):
    """y = E + A x^-alpha, fitted by least squares on log y (E >= 0, or fixed at 0)."""

    name: ClassVar[str] = "power"

    def __init__(self, x: str = "C", y: str = "loss", fix_E: bool = False) -> None:
        super().__init__()
        self.x, self.y, self.fix_E = x, y, fix_E

    def _set_options(self, inputs) -> None:
        self.x, self.y = inputs.get("x", "C"), inputs.get("y", "loss")
        self.fix_E = bool(inputs.get("fix_E", False))

    @property
    def form(self) -> str:
        return f"{self.y} = {'' if self.fix_E else 'E + '}A * {self.x}^-alpha"

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0,
            level: float = 0.95) -> "PowerLaw":
        require_columns(table, "power", (self.x, self.y))
        require_scales(table, self.name, 2 if self.fix_E else 3, by=self.x)
        x, y = table[self.x].to_numpy(float), table[self.y].to_numpy(float)
        if np.any(~np.isfinite(x) | (x <= 0) | ~np.isfinite(y) | (y <= 0)):
            raise AnalysisError(f"the power law needs positive, finite {self.x} and {self.y}")
        require_varying(y, self.y)
        p = _fit_logspace(x, y, self.fix_E)
        self.params_ = self._params(p)
        if self.y == "loss" and self.x in SCALE_FIELDS:  # of lr, say, a negative exponent is normal
            require_loss_falls(self.name, self.params_, {"alpha": self.x})
        r = np.log(self.predict(x)) - np.log(y)
        self.n_points_ = len(x)
        self.metrics_ = {"rmse_log": float(np.sqrt(np.mean(r ** 2)))}
        self._set_inputs(table, x=self.x, y=self.y, fix_E=self.fix_E,
                         x_range=[float(x.min()), float(x.max())])

        def refit(rng):
            i = rng.integers(0, len(x), len(x))
            if np.unique(x[i]).size < 2:
                return None
            return self._params(_fit_logspace(x[i], y[i], self.fix_E,
                                              starts=None if self.fix_E else [p]))

        self._bootstrap(bootstrap, seed, level, refit)
        return self

    @staticmethod
    def _params(p) -> dict:
        return {"E": float(np.exp(p[0])) if np.isfinite(p[0]) else 0.0,
                "A": float(np.exp(p[1])), "alpha": float(p[2])}

    def predict(self, x, params: dict | None = None):
        P = params or self.params_
        return P["E"] + P["A"] * np.asarray(x, float) ** -P["alpha"]

    def predict_interval(self, x, level: float = 0.95) -> list[float]:
        draws = self._draws(lambda P: self.predict(x, P))
        return interval(draws.ravel(), self.metrics_.get("rmse_log", 0.0), level)
