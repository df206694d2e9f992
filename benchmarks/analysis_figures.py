"""The analysis figures: Step Law leave-one-N-out regret and synthetic Chinchilla recovery.

    .venv/bin/python benchmarks/analysis_figures.py

Step Law data: Li et al. (2025), "Predictable Scale: Part I", arXiv 2503.04715, in
benchmarks/data/steplaw_dense_lr_bs_loss.csv (source and licence in benchmarks/data/README.md).
Regret as that README defines it, on the `smooth loss` column, batch size in tokens (bs * 2048).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.analysis.laws import ChinchillaLaw, HparamsLaw
from scalelab.analysis.table import load_table

STEPLAW = Path(__file__).resolve().parent / "data" / "steplaw_dense_lr_bs_loss.csv"
TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def regret_tables() -> None:
    table = load_table(STEPLAW, ["loss=smooth loss", "batch_size=bs"], context=2048, quiet=True)
    merged = None
    for optimum in ("near-best", "surface"):
        t = HparamsLaw("steplaw", optimum).leave_one_n_out(table)
        t = t.rename(columns={"mean_regret": f"{optimum} mean %", "max_regret": f"{optimum} max %"})
        t[[f"{optimum} mean %", f"{optimum} max %"]] *= 100
        merged = t if merged is None else merged.merge(t, on=["N", "cells"])
    print("Step Law leave-one-N-out regret (% of the cell's best smooth loss)")
    print("targets: near-best <= 0.15 for every N; surface <= 0.08")
    print(merged.to_string(index=False, float_format=lambda v: f"{v:.3f}" if v < 1e3 else f"{v:.4g}"))
    for optimum in ("near-best", "surface"):
        worst = merged[f"{optimum} mean %"].max()
        print(f"  {optimum}: worst held-out N mean regret {worst:.3f}%, "
              f"average {merged[f'{optimum} mean %'].mean():.3f}%")
    print("\nsurface, sensitivity to the window of runs the cubic is fitted to:")
    for tol in (0.0025, 0.005, 0.01, 0.02):
        t = HparamsLaw("steplaw", "surface", surface_tol=tol).leave_one_n_out(table)
        print(f"  within {100 * tol:.2g}% of best: mean regret per N % "
              f"{np.round(100 * t['mean_regret'].to_numpy(), 3).tolist()}")
    law = HparamsLaw("steplaw", "near-best").fit(table, evaluate=False)
    p = law.params_
    print(f"\nnear-best fit on all runs: lr* = {p['a']:.3g} N^{p['alpha']:.3f} D^{p['beta']:.3f}; "
          f"bs* = {p['b']:.3g} D^{p['gamma']:.3f} (tokens); paper: 1.79 N^-0.713 D^0.307, "
          f"0.58 D^0.571")


def synthetic_recovery(K: int = 1000) -> None:
    rng = np.random.default_rng(1234)
    n = 240
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e12), n))
    L = (TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]) \
        * np.exp(rng.normal(0, 0.01, n))
    t = time.perf_counter()
    law = ChinchillaLaw().fit(pd.DataFrame({"N": N, "D": D, "loss": L}), bootstrap=K)
    dt = time.perf_counter() - t
    print(f"\nSynthetic Chinchilla recovery (240 points, 1% noise, {K} bootstrap refits, "
          f"{dt:.1f} s)")
    print(f"{'param':>6} {'true':>8} {'fitted':>10} {'95% interval':>24}  |err|  inside")
    for k in ("E", "A", "B", "alpha", "beta"):
        lo, hi = law.ci_[k]
        print(f"{k:>6} {TRUE[k]:8.4g} {law.params_[k]:10.4g} [{lo:10.4g}, {hi:10.4g}]  "
              f"{abs(law.params_[k] - TRUE[k]):.4f}  {lo <= TRUE[k] <= hi}")


if __name__ == "__main__":
    regret_tables()
    synthetic_recovery()
