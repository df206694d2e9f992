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
  held-out error; Chinchilla's form where a split has two sizes), bootstrap over cells;
- `curve`: the curve law (`scalelab.analysis.laws.curve`) through every point past the
  transient of each size's best-rate runs, bootstrap over whole runs within each size.

For each: |error| of every target, whether its interval held, the interval's width, and the
medians per split. `--skip` compares transient rules of the curve law on the same splits.

    .venv/bin/python benchmarks/backtest.py                 # about 12 s
    .venv/bin/python benchmarks/backtest.py --skip 0 0.02 0.05 0.1 0.2
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from scalelab.analysis.laws import AutoLaw, ChinchillaLaw
from scalelab.analysis.laws.chinchilla import FORMS
from scalelab.analysis.laws.curve import SKIP, CurveLaw
from scalelab.analysis.reach import distrust
from scalelab.analysis.uncertainty import combine

DATA = Path(__file__).resolve().parent / "data" / "reference_curves.csv"
# "4x in N": twice the width, which is 3.99x in non-embedding parameters (24 w^2 + 13 w per layer)
FAR = 3.98


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
    """(N, D) -> the best final loss over the rates tried (seed 0's), with that run's final areas."""
    last = finals(curves[curves["seed"] == 0])
    return last.loc[last.groupby(["N", "D"])["loss"].idxmin()].reset_index(drop=True)


def seed_sd(curves: pd.DataFrame) -> float:
    """The pooled seed-to-seed sd of final losses, relative: runs alike but for their seed."""
    last = finals(curves)
    groups = last.groupby(["N", "D", "lr_peak"])["loss"]
    rel = [np.var(g / g.mean(), ddof=1) for _, g in groups if len(g) > 1]
    return float(np.sqrt(np.mean(rel))) if rel else float("nan")


def splits(curves: pd.DataFrame) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(name, curves to fit, target cells) for every split."""
    sizes = np.sort(curves["N"].unique())
    every = cells(curves)
    out = []
    for a in sizes:
        far = every[every["N"] >= FAR * a]
        if (sizes <= a).sum() >= 2 and len(far):
            out.append((f"N<={a:.3g} -> N>=4x", curves[curves["N"] <= a], far))
    out.append(("leave out N_max", curves[curves["N"] < sizes[-1]], every[every["N"] == sizes[-1]]))
    out.append(("leave out D_max", without_longest(curves), every[every["D"] == curves["D"].max()]))
    return out


def without_longest(curves: pd.DataFrame) -> pd.DataFrame:
    """The runs as if the longest budget had never been trained: each runs' next budget is a
    cooldown branch of the longest run, so its points up to the fork (the longest run's) are
    added to it: the curve a dedicated run to that budget would have."""
    budgets = np.sort(curves["D"].unique())
    longest, nxt = budgets[-1], budgets[-2]
    branch = curves[curves["D"] == nxt]
    first = branch.groupby(["N", "lr_peak"]).agg(run=("run", "first"), tokens=("tokens", "min"))
    trunk = curves[curves["D"] == longest].merge(first, on=["N", "lr_peak"], suffixes=("", "_branch"))
    shared = trunk[trunk["tokens"] < trunk["tokens_branch"]].assign(run=lambda t: t["run_branch"], D=nxt)
    return pd.concat([curves[curves["D"] < longest], shared[curves.columns]], ignore_index=True)


def candidates(train: pd.DataFrame, bootstrap: int, skips=(SKIP,)) -> dict:
    """Every candidate law fitted to the split's runs, by name: the final-loss forms (`final`
    is the `auto` choice among them) and the curve law under each transient rule."""
    final = cells(train)[["N", "D", "loss"]]
    # `auto` holds out the largest size and needs two more: with two sizes, Chinchilla's own form
    chosen = AutoLaw() if final["N"].nunique() >= 3 else ChinchillaLaw("chinchilla")
    chosen.fit(final, bootstrap=bootstrap)
    laws = {"final": chosen, **{f"final {form}": ChinchillaLaw(form).fit(final) for form in FORMS if form != chosen.variant}}
    for skip in skips:
        name = "curve" if len(skips) == 1 else f"curve skip={skip:g}"
        laws[name] = CurveLaw(skip=skip).fit(best_runs(train), bootstrap=bootstrap)
    return laws


def predictions(laws: dict, targets: pd.DataFrame) -> dict:
    """name -> (predictions, bootstrap intervals, why each has no reliable number or "") at the
    target cells."""
    out = {}
    for name, law in laws.items():
        why = [distrust(law, N=n, D=d) for n, d in zip(targets["N"], targets["D"])]
        if isinstance(law, CurveLaw):  # at each target run's own areas
            out[name] = (law.predict_points(targets), law.points_interval(targets), why)
        else:
            out[name] = (law.predict(targets["N"], targets["D"]),
                         [law.predict_interval(n, d) for n, d in zip(targets["N"], targets["D"])], why)
    return out


def score(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["error"] = frame["predicted"] / frame["measured"] - 1
    frame["held"] = (frame["lo"] <= frame["measured"]) & (frame["measured"] <= frame["hi"])
    frame["width"] = (frame["hi"] - frame["lo"]) / frame["predicted"]
    return frame


def run(curves: pd.DataFrame, bootstrap: int, skips=(SKIP,)) -> pd.DataFrame:
    """One row per (split, method, interval kind, target): `bootstrap` is the method's own
    interval, `combined` adds the spread of the other candidates and the seed noise
    (`scalelab.analysis.uncertainty`; no floor: the floor is what this table measures)."""
    rows, noise = [], seed_sd(curves)
    print(f"seed-to-seed sd of final losses: {noise:.2%}")
    for split, train, targets in splits(curves):
        made = predictions(candidates(train, bootstrap, skips), targets)
        for method in [m for m in made if m == "final" or m.startswith("curve")]:
            values, intervals, why = made[method]
            for i, t in enumerate(targets.itertuples()):
                others = {m: float(v[0][i]) for m, v in made.items() if m != method and not m.startswith("curve ")}
                both = combine(float(values[i]), intervals[i], others, noise, distrust=why[i])
                for kind, (lo, hi) in (("bootstrap", intervals[i]), ("combined", (both.lo, both.hi))):
                    rows.append({"split": split, "method": method, "interval": kind, "N": t.N, "D": t.D,
                                 "measured": t.loss, "predicted": float(values[i]), "lo": lo, "hi": hi,
                                 "reliable": both.reliable})
    return score(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per split and method: the targets, the share with a reliable number, and |error|, held and
    width over those (`all |error|`: over every target, the unreliable ones included)."""
    frame = frame.assign(abs_error=frame["error"].abs())
    keys = ["split", "method", "interval"]
    g, r = frame.groupby(keys, sort=False), frame[frame["reliable"]].groupby(keys, sort=False)
    return pd.DataFrame({"targets": g.size(), "reliable": g["reliable"].mean(), "all |error|": g["abs_error"].median(),
                         "median |error|": r["abs_error"].median(), "held": r["held"].mean(),
                         "median width": r["width"].median()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--skip", type=float, nargs="*", help="compare these transient rules of the curve law")
    args = parser.parse_args()
    curves = pd.read_csv(args.data)
    frame = run(curves, args.bootstrap, tuple(args.skip or (SKIP,)))
    pd.set_option("display.width", 160)
    print(summary(frame).to_string(float_format=lambda v: f"{v:.4f}"))
    far = frame[frame["split"].str.contains("4x")]
    for (method, kind), part in far.groupby(["method", "interval"], sort=False):
        kept = part[part["reliable"]]
        print(f"{method} ({kind} interval): targets >= 4x in N beyond the fit: {len(kept)} of {len(part)} "
              f"reliable, median |error| {kept['error'].abs().median():.2%} (all {part['error'].abs().median():.2%}), "
              f"intervals held {kept['held'].mean():.0%}, median width {kept['width'].median():.2%}")


if __name__ == "__main__":
    main()
