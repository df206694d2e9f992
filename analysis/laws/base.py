"""What every law shares: the fit-JSON round trip, a registry by name, bootstrap helpers.

Fit JSON: {"law", "form", "params", "ci", "n_points", "metrics", "inputs"}. `inputs["flops"]`
is the FLOP convention of the table the law was fitted to (`FlopConvention.to_dict()`); every
conversion between N, D and C that a law makes goes through it. A file without it followed 6ND.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from scalelab.record import FlopConvention, sanitize, write_atomic

from ..errors import AnalysisError
from ..table import flop_convention

LAWS: dict[str, type["Law"]] = {}


def register(cls):
    LAWS[cls.name] = cls
    return cls


class Law:
    """A fitted law in the scikit-learn habit: `fit(table)`, `predict(...)`, attributes, JSON."""

    name: ClassVar[str] = ""
    min_points: ClassVar[int] = 1

    def __init__(self) -> None:
        self.params_: dict[str, float] = {}
        self.ci_: dict[str, list[float]] = {}
        self.n_points_: int = 0
        self.metrics_: dict[str, Any] = {}
        self.inputs_: dict[str, Any] = {}
        self.samples_: dict[str, list[float]] = {}  # bootstrap parameter draws, for intervals
        self.flops_: FlopConvention = FlopConvention()  # how C relates to N, D in the fitted table

    # -- to be provided by each law
    @property
    def form(self) -> str:
        raise NotImplementedError

    def fit(self, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0) -> "Law":
        raise NotImplementedError

    def _set_options(self, params: dict[str, Any]) -> None:
        """Restore constructor options from the `inputs` of a fit file."""

    # -- shared
    def check_fitted(self) -> None:
        if not self.params_:
            raise AnalysisError(f"the {self.name} law is not fitted")

    def to_dict(self) -> dict[str, Any]:
        self.check_fitted()
        metrics = dict(self.metrics_)
        if self.samples_:
            metrics["bootstrap_samples"] = {k: list(map(float, v)) for k, v in self.samples_.items()}
        return {"law": self.name, "form": self.form, "params": dict(self.params_),
                "ci": {k: [float(a), float(b)] for k, (a, b) in self.ci_.items()},
                "n_points": int(self.n_points_), "metrics": _jsonable(metrics),
                "inputs": _jsonable(self.inputs_)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Law":
        if d.get("law") != cls.name:
            raise AnalysisError(f"the fit is of law {d.get('law')!r}, not {cls.name!r}")
        law = cls.__new__(cls)
        Law.__init__(law)
        law._set_options(d.get("inputs", {}))
        law.params_ = {k: float(v) for k, v in d["params"].items()}
        law.ci_ = {k: list(v) for k, v in d.get("ci", {}).items()}
        law.n_points_ = int(d.get("n_points", 0))
        law.metrics_ = dict(d.get("metrics", {}))
        law.samples_ = {k: list(v) for k, v in law.metrics_.pop("bootstrap_samples", {}).items()}
        law.inputs_ = dict(d.get("inputs", {}))
        law.flops_ = FlopConvention.from_dict(law.inputs_.get("flops"))
        return law

    def save(self, path: str | Path) -> None:
        """The fit file, strict JSON (a NaN parameter is null) written whole or not at all."""
        write_atomic(path, strict_json(self.to_dict()))

    def _set_inputs(self, table: pd.DataFrame, **inputs: Any) -> None:
        """`inputs_` of a fit: the law's options, the table's notes and its FLOP convention."""
        self.flops_ = flop_convention(table)
        self.inputs_ = {**_ranges(table), **inputs, "notes": list(table.attrs.get("notes", [])),
                        "flops": self.flops_.to_dict()}

    def complete_scale(self, N=None, D=None, C=None):
        """(N, D, C) with C from N and D, or D from N and C, by the law's FLOP convention."""
        if C is None and N is not None and D is not None:
            C = self.flops_.C(N, D)
        if D is None and N is not None and C is not None:
            D = self.flops_.D(N, C)
        return N, D, C

    def _draws(self, predict) -> np.ndarray:
        """`predict(params)` for every bootstrap draw (the fitted params alone without any)."""
        return np.array([predict(P) for P in self.sampled_params() or [self.params_]], float)

    def sampled_params(self) -> list[dict[str, float]]:
        """One parameter dict per bootstrap draw; empty when the fit has no bootstrap."""
        S = self.samples_
        if not S:
            return []
        return [{k: S[k][i] for k in S} for i in range(len(next(iter(S.values()))))]

    def _bootstrap(self, K: int, seed: int, level: float, refit) -> None:
        """Intervals from K refits; `refit(rng)` resamples, refits and returns the parameter
        dict, or None where the resample cannot be fitted (too few distinct scales)."""
        rng = np.random.default_rng(seed)
        fits = [f for f in (refit(rng) for _ in range(K)) if f is not None]
        if fits:
            self._set_ci_from_fits(fits, level)

    def _set_ci_from_fits(self, fits: list[dict[str, float]], level: float = 0.95) -> None:
        """Intervals from the parameter dicts of bootstrap refits (one dict per refit)."""
        self._set_ci({k: np.array([f[k] for f in fits]) for k in self.params_}, level)

    def _set_ci(self, draws: dict[str, np.ndarray], level: float = 0.95) -> None:
        """Percentile intervals from bootstrap draws of each parameter."""
        self.samples_ = {k: np.asarray(v, float).tolist() for k, v in draws.items()}
        self.ci_ = {k: percentile_interval(v, level) for k, v in draws.items()}
        self.metrics_["bootstrap"] = int(len(next(iter(draws.values()))))
        self.metrics_["ci_level"] = level


def _ranges(table: pd.DataFrame) -> dict[str, Any]:
    """The span of N, D and C the law saw, and its number of sizes: how far a prediction
    reaches beyond them is `scalelab.analysis.reach`'s question."""
    out: dict[str, Any] = {}
    for axis in ("N", "D", "C"):
        if axis in table.columns:
            values = pd.to_numeric(table[axis], errors="coerce").dropna()
            if len(values):
                out[f"{axis}_range"] = [float(values.min()), float(values.max())]
    if "N" in table.columns:
        out["sizes"] = int(table["N"].nunique())
    return out


def strict_json(obj: Any) -> str:
    """JSON that strict parsers read: NaN and infinities are null (as in run records)."""
    return json.dumps(sanitize(_jsonable(obj)), indent=2, allow_nan=False) + "\n"


def percentile_interval(draws, level: float = 0.95) -> list[float]:
    """The central `level` share of bootstrap draws (NaN draws, failed refits, left out)."""
    lo, hi = np.nanpercentile(np.asarray(draws, float), [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def interval(point_draws: np.ndarray, log_resid_sd: float, level: float = 0.95,
             seed: int = 0) -> list[float]:
    """Prediction interval: parameter draws (bootstrap) times log-normal residual scatter."""
    rng = np.random.default_rng(seed)
    draws = np.asarray(point_draws, float)
    draws = draws[np.isfinite(draws) & (draws > 0)]
    if draws.size == 0:
        return [float("nan"), float("nan")]
    noise = rng.normal(0.0, log_resid_sd, size=max(4000, draws.size))
    sample = np.log(rng.choice(draws, size=noise.size)) + noise
    lo, hi = np.percentile(sample, [50 * (1 - level), 50 * (1 + level)])
    return [float(np.exp(lo)), float(np.exp(hi))]


def load_fit(path_or_dict) -> Law:
    """A fit file (or its dict) -> the fitted law of the right class.

    Every law is registered by then: importing this module runs the package's __init__ first,
    which imports each law module.
    """
    if isinstance(path_or_dict, dict):
        d = path_or_dict
    else:
        p = Path(path_or_dict)
        if not p.is_file():
            raise AnalysisError(f"fit file {p} does not exist")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise AnalysisError(f"fit file {p} is not JSON: {e}") from e
    if not isinstance(d, dict) or "law" not in d or "params" not in d:
        raise AnalysisError(f"{path_or_dict} is not a scalelab fit file (no 'law'/'params')")
    if d["law"] not in LAWS:
        raise AnalysisError(f"unknown law {d['law']!r} in fit file; known: {', '.join(sorted(LAWS))}")
    return LAWS[d["law"]].from_dict(d)


def require_columns(table: pd.DataFrame, law: str, columns) -> None:
    """The first of `columns` the table lacks, named in the error."""
    for col in columns:
        if col not in table.columns:
            raise AnalysisError(f"the {law} law needs a {col} column")


def require_scales(table: pd.DataFrame, law: str, n_params: int, by: str = "N") -> None:
    """Clear messages for: empty table, one scale only, fewer points than parameters."""
    if table is None or len(table) == 0:
        raise AnalysisError(f"the {law} law got an empty table")
    if by in table.columns and table[by].nunique() < 2:
        raise AnalysisError(f"the {law} law needs at least two scales; the table has one "
                            f"({by}={table[by].iloc[0]:g})")
    if len(table) <= n_params:
        raise AnalysisError(f"the {law} law has {n_params} parameters but the table has only "
                            f"{len(table)} points")


def _jsonable(x):
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x
