"""The fitted loss frontier L(C) as points W&B can draw: the law on a grid of compute budgets with
its 95% band, each scale's best run, and a scaling study's target (predicted and measured).

The law is the one the report's "loss against compute" figure draws, by the same functions:
Chinchilla's L(N_opt(C), D_opt(C)) where it was fitted, else the power law of the frontier's
lowest losses. Its band is
the law's own prediction interval (`Law.predict_interval`): the bootstrap draws (the fitted
parameters alone without a bootstrap) times the fit's log-space residual scatter.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from .laws.base import Law, interval
from .table import best_per_cell

COLUMNS = ("series", "C", "loss", "low", "high", "N", "D", "run_id")
LAW_SERIES, BEST_SERIES = "law", "best of scale"
PREDICTED, MEASURED = "target predicted", "target measured"
GRID = 50  # points of the law between half the smallest and 4x the largest budget (the figure's span)


def frontier_law(laws: dict[str, Law]) -> tuple[Optional[str], Optional[Law]]:
    """(name, law) of the frontier, the report's figure's and W&B's: Chinchilla's, else the power law."""
    for name in ("chinchilla", "power"):
        if name in laws:
            return name, laws[name]
    return None, None


def law_points(name: str, law: Law, C: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """The law's loss at each budget in `C` with its `level` band."""
    def at(P: dict) -> np.ndarray:
        if name == "chinchilla":  # the least loss that budget buys
            N, D = law.compute_optimal(C, P)
            return law.predict(N, D, P)
        return law.predict(C, P)

    draws = law._draws(at)  # one row per bootstrap draw
    sd = law.metrics_.get("rmse_log", 0.0)
    band = np.array([interval(draws[:, i], sd, level) for i in range(len(C))])
    return pd.DataFrame({"series": f"{LAW_SERIES} ({name})", "C": C, "loss": at(law.params_),
                         "low": band[:, 0], "high": band[:, 1]})


def target_points(verdict: Optional[dict[str, Any]]) -> list[dict[str, Any]]:
    """A scaling study's target budget: the prediction with its interval, and the measurement
    once its verification runs finished (`verdict.json`)."""
    target = (verdict or {}).get("target") or {}
    v = (verdict or {}).get("verdict") or {}
    C = target.get("C")
    if not isinstance(C, (int, float)) or not C > 0:
        return []
    predicted = v.get("predicted_loss", target.get("loss"))
    band = v.get("interval") or target.get("loss_interval") or [None, None]
    rows = [{"series": PREDICTED, "C": float(C), "loss": predicted, "low": band[0], "high": band[1],
             "N": target.get("N"), "D": target.get("D")}] if predicted is not None else []
    if v.get("measured_loss") is not None:
        rows.append({"series": MEASURED, "C": float(C), "loss": v["measured_loss"], "N": target.get("N"),
                     "D": target.get("D")})
    return rows


def frontier_frame(table: pd.DataFrame, laws: dict[str, Law], verdict: Optional[dict] = None,
                   level: float = 0.95) -> pd.DataFrame:
    """Every point of the frontier panel, one row each (`COLUMNS`), each series in order of C."""
    best = best_per_cell(table).sort_values("C")
    parts = [pd.DataFrame({"series": BEST_SERIES, "C": best["C"], "loss": best["loss"], "N": best["N"],
                           "D": best["D"], "run_id": best["run_id"] if "run_id" in best else None})]
    targets = target_points(verdict)
    name, law = frontier_law(laws)
    if law is not None:
        lo = table["C"].min() / 2
        hi = max([table["C"].max() * 4, *(t["C"] * 1.5 for t in targets)])
        parts.insert(0, law_points(name, law, np.geomspace(lo, hi, GRID), level))
    if targets:
        parts.append(pd.DataFrame(targets))
    frame = pd.concat(parts, ignore_index=True)
    return frame.reindex(columns=list(COLUMNS)).astype({"series": str})
