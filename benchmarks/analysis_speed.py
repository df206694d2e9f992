"""Speed of the analysis: prints measured times and their ratio to the targets (not a test).

    .venv/bin/python benchmarks/analysis_speed.py [--loop-starts 100]

- Chinchilla fit, 4,500 starts, 240 points: target <= 2 s (median of 5 runs).
- The same with a plain loop of scipy.optimize.minimize(L-BFGS-B), timed on --loop-starts
  starts and scaled to 4,500 (the full loop takes minutes).
- 1,000 bootstrap refits: target <= 60 s.
- The compute-optimal interval over those 1,000 draws under a FLOP convention with an attention
  term (a numerical minimisation per draw, all at once).
- Loading 10,000 run.json records: target <= 5 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from scalelab.analysis.laws.chinchilla import (ChinchillaLaw, _Model, _to_params, bootstrap_fits,
                                               fit_form, start_grid)
from scalelab.analysis.table import load_table
from scalelab.record import FlopConvention

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def synthetic(n=240, seed=0):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e12), n))
    L = (TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]) \
        * np.exp(rng.normal(0, 0.01, n))
    return pd.DataFrame({"N": N, "D": D, "loss": L})


def record(i):
    N, D = 1e7 * (1 + i % 7), 1e9 * (1 + i % 5)
    return {"schema_version": 1, "run_id": f"r{i}", "study": "bench", "trial": i,
            "status": "completed", "error": None,
            "config": {"model": {"context": 256, "n_layer": 4, "n_head": 4, "d_model": 256},
                       "optim": {"lr": 1e-3, "beta2": 0.95}, "data": {"name": "stdlib"}},
            "overrides": ["optim.lr=0.001"],
            "scale": {"N": int(N), "N_total": int(N * 1.2), "D": int(D), "C": 6.2 * N * D,
                      "flops_per_token": 6.2 * N, "model": "gpt"},
            "hparams": {"lr": 1e-3 * (1 + i % 11), "batch_size": 32, "weight_decay": 0.1,
                        "warmup": 0.01, "schedule": "cosine", "optim.beta2": 0.95},
            "metrics": {"final_val_loss": 3.0 + (i % 13) / 100, "best_val_loss": 3.0,
                        "initial_loss": 5.5, "steps": 1000, "tokens_seen": int(D),
                        "tokens_per_second": 1e5, "wall_seconds": 60.0},
            "curve": [{"step": s, "tokens": s * 8192, "val_loss": 5.5 - s / 100}
                      for s in range(0, 200, 10)],
            "environment": {"git_sha": "abc", "packages": {"torch": "2.5"}, "device": "cpu",
                            "seed": 0},
            "started_at": "2026-01-01T00:00:00", "ended_at": "2026-01-01T00:01:00"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop-starts", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    df = synthetic()
    logN, logD, logL = (np.log(df[c].to_numpy()) for c in ("N", "D", "loss"))

    ChinchillaLaw().fit(df)  # warm-up (imports, BLAS)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        law = ChinchillaLaw().fit(df)
        times.append(time.perf_counter() - t)
    fit_s = statistics.median(times)
    print(f"chinchilla fit, {len(start_grid('chinchilla'))} starts, {len(df)} points: "
          f"median {fit_s:.2f} s (min {min(times):.2f}, max {max(times):.2f}) "
          f"target 2 s -> {fit_s / 2:.2f}x of target")
    print(f"  alpha={law.params_['alpha']:.4f} beta={law.params_['beta']:.4f} "
          f"huber={law.metrics_['huber']:.6g}")

    model = _Model("chinchilla", logN, logD, logL)

    def fun(p):
        r, J = model.jacobian(p[None])
        r = r[0]
        psi = np.where(np.abs(r) <= 1e-3, r, 1e-3 * np.sign(r))
        return float(np.sum(np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 5e-4)))), J[0].T @ psi

    grid = start_grid("chinchilla")
    pick = np.random.default_rng(0).choice(len(grid), args.loop_starts, replace=False)
    t = time.perf_counter()
    best = min((minimize(fun, grid[i], jac=True, method="L-BFGS-B") for i in pick),
               key=lambda r: r.fun)
    loop_s = (time.perf_counter() - t) / args.loop_starts * len(grid)
    print(f"plain scipy loop: {args.loop_starts} starts measured, scaled to {len(grid)}: "
          f"{loop_s:.1f} s -> batched fit is {loop_s / fit_s:.0f}x faster "
          f"(loop's best huber over its starts {best.fun:.6g})")

    _, _, optima = fit_form("chinchilla", logN, logD, logL)
    t = time.perf_counter()
    draws = bootstrap_fits(model, optima, 1000, seed=0)
    boot_s = time.perf_counter() - t
    print(f"1000 bootstrap refits: {boot_s:.2f} s, target 60 s -> {boot_s / 60:.3f}x of target "
          f"(alpha 95% [{np.percentile(draws[:, 3], 2.5):.4f}, "
          f"{np.percentile(draws[:, 3], 97.5):.4f}])")

    law._set_ci_from_fits([_to_params("chinchilla", q) for q in draws])
    law.flops_ = FlopConvention("records", k=1581.0, p=-0.5)  # 5% above 6ND at N = 1e9
    t = time.perf_counter()
    (lo, hi), _ = law.compute_optimal_interval(1e22)
    opt_s = time.perf_counter() - t
    print(f"N_opt(C=1e22) interval over {len(draws)} draws under {law.flops_.describe()}: "
          f"{1000 * opt_s:.1f} ms ([{lo:.4g}, {hi:.4g}])")

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(10_000):
            d = Path(tmp) / "multirun" / f"{i // 100}" / f"{i % 100}"
            d.mkdir(parents=True)
            (d / "run.json").write_text(json.dumps(record(i)))
        t = time.perf_counter()
        table = load_table(tmp, quiet=True)
        load_s = time.perf_counter() - t
    print(f"load 10,000 run records: {load_s:.2f} s ({len(table)} rows), target 5 s -> "
          f"{load_s / 5:.2f}x of target")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
