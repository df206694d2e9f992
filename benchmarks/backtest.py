"""Backtest: how well each loss law predicts runs larger than the ones it was fitted to.

Reads the reference runs' whole curves (benchmarks/data/reference_curves.csv, made by
benchmarks/reference_runs.py) and, for every split, fits each method to the runs the split keeps
and predicts the final loss of every (N, D) cell it holds out. The measured loss of a cell is its
best over the learning rates tried, what a tuned run reaches.

Splits:
- `N<=a -> N>=4a`: fit the sizes up to a, predict those at least 4x larger;
- `leave out N_max`: fit every other size, predict the largest;
- `leave out D_max`: fit every run up to half the longest budget, predict the longest.

Methods (each with its 95% interval):
- `final`: L(N, D) through each cell's best final loss (`auto`: the Chinchilla form chosen by
  held-out error), bootstrap over cells;
- `curve`: the curve law (`scalelab.analysis.laws.curve`) through every point past the
  transient of each size's best-rate runs, bootstrap over whole runs within each size.

For each: |error| of every target, whether its interval held, the interval's width, and the
medians per split. `--skip` compares transient rules of the curve law on the same splits.

    .venv/bin/python benchmarks/backtest.py                 # about a minute
    .venv/bin/python benchmarks/backtest.py --skip 0 0.02 0.05 0.1 0.2
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.analysis.laws import AutoLaw
from scalelab.analysis.laws.curve import SKIP, CurveLaw

DATA = Path(__file__).resolve().parent / "data" / "reference_curves.csv"


def finals(curves: pd.DataFrame) -> pd.DataFrame:
    """Each run's last point: its final loss at (N, D), with its rate and areas."""
    return curves.loc[curves.groupby("run")["step"].idxmax()].reset_index(drop=True)


def best_runs(curves: pd.DataFrame) -> pd.DataFrame:
    """The curves of each size's best rate (the lowest final loss of its longest run)."""
    last = finals(curves)
    longest = last[last["D"] == last.groupby("N")["D"].transform("max")]
    rate = longest.loc[longest.groupby("N")["loss"].idxmin()].set_index("N")["lr_peak"]
    return curves[curves["lr_peak"] == curves["N"].map(rate)]


def cells(curves: pd.DataFrame) -> pd.DataFrame:
    """(N, D) -> the best final loss over the rates tried, with that run's final areas."""
    last = finals(curves)
    return last.loc[last.groupby(["N", "D"])["loss"].idxmin()].reset_index(drop=True)


def splits(curves: pd.DataFrame) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(name, curves to fit, target cells) for every split."""
    sizes = np.sort(curves["N"].unique())
    every = cells(curves)
    out = []
    for a in sizes:
        far = every[every["N"] >= 4 * a]
        if (sizes <= a).sum() >= 2 and len(far):
            out.append((f"N<={a:.3g} -> N>=4x", curves[curves["N"] <= a], far))
    out.append(("leave out N_max", curves[curves["N"] < sizes[-1]], every[every["N"] == sizes[-1]]))
    d_max = curves["D"].max()
    keep = curves["D"] <= d_max / 2
    # a run of D_max / 2 shares the longest run's points up to its own fork: keep those too
    shared = (curves["D"] == d_max) & (curves["tokens"] <= 0.8 * d_max / 2)
    out.append(("leave out D_max", curves[keep | shared], every[every["D"] == d_max]))
    return out


def fit_final(train: pd.DataFrame, targets: pd.DataFrame, bootstrap: int):
    law = AutoLaw().fit(cells(train)[["N", "D", "loss"]], bootstrap=bootstrap)
    return [(float(law.predict(t.N, t.D)), law.predict_interval(t.N, t.D)) for t in targets.itertuples()]


def fit_curve(train: pd.DataFrame, targets: pd.DataFrame, bootstrap: int, skip: float = SKIP):
    law = CurveLaw(skip=skip).fit(best_runs(train), bootstrap=bootstrap)
    return list(zip(law.predict_points(targets), law.points_interval(targets)))


def score(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["error"] = frame["predicted"] / frame["measured"] - 1
    frame["held"] = (frame["lo"] <= frame["measured"]) & (frame["measured"] <= frame["hi"])
    frame["width"] = (frame["hi"] - frame["lo"]) / frame["predicted"]
    return frame


def run(curves: pd.DataFrame, methods: dict, bootstrap: int) -> pd.DataFrame:
    rows = []
    for split, train, targets in splits(curves):
        for method, fit in methods.items():
            try:
                predictions = fit(train, targets, bootstrap)
            except Exception as e:  # a method that cannot fit a split is a row of the table too
                print(f"{split} / {method}: {e}")
                continue
            for t, (pred, (lo, hi)) in zip(targets.itertuples(), predictions):
                rows.append({"split": split, "method": method, "N": t.N, "D": t.D, "measured": t.loss,
                             "predicted": pred, "lo": lo, "hi": hi})
    return score(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.assign(abs_error=frame["error"].abs()).groupby(["split", "method"], sort=False)
    return pd.DataFrame({"targets": g.size(), "median |error|": g["abs_error"].median(),
                         "held": g["held"].mean(), "median width": g["width"].median()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--skip", type=float, nargs="*", help="compare these transient rules of the curve law")
    args = parser.parse_args()
    curves = pd.read_csv(args.data)
    if args.skip:
        methods = {f"curve skip={s:g}": (lambda s: lambda tr, ta, b: fit_curve(tr, ta, b, s))(s) for s in args.skip}
    else:
        methods = {"final": fit_final, "curve": fit_curve}
    frame = run(curves, methods, args.bootstrap)
    pd.set_option("display.width", 160)
    print(summary(frame).to_string(float_format=lambda v: f"{v:.4f}"))
    far = frame[frame["split"].str.contains("4x")]
    for method, part in far.groupby("method", sort=False):
        print(f"{method}: targets >= 4x in N beyond the fit: median |error| {part['error'].abs().median():.2%}, "
              f"intervals held {part['held'].mean():.0%}, median width {part['width'].median():.2%}")


if __name__ == "__main__":
    main()
