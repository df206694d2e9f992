"""Does the best learning rate transfer across widths? lr* per width, for each parametrization.

Under the standard parametrization the best Adam learning rate falls as the model widens; under
µP (`model.parametrization=mup`) it should stay put, so that a search at a small width serves
every width. `lr_optima` finds lr* for each (parametrization, width) from runs at one token
budget, by the parabola in log lr through the best rate tried and its two neighbours
(`laws.hparams.profile_optimum`, edges flagged); `spread` is how far lr* moves across the widths,
in doublings; `plot_lr_transfer` draws loss against lr, a panel per parametrization.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .errors import AnalysisError  # noqa: E402
from .laws.hparams import profile_optimum  # noqa: E402


def _parametrized(table: pd.DataFrame) -> pd.DataFrame:
    for column in ("width", "lr", "loss"):
        if column not in table.columns:
            raise AnalysisError(f"learning-rate transfer needs a {column} column (records give config.model.width)")
    parametrization = table["parametrization"] if "parametrization" in table.columns else None
    return table.assign(parametrization=pd.Series("sp", index=table.index) if parametrization is None
                        else parametrization.fillna("sp"))


def lr_optima(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (parametrization, width): lr*, the best loss tried, the runs, the edge flag.
    Several runs at one rate (seeds) count by their mean loss."""
    table = _parametrized(table)
    if table["D"].nunique() > 1:
        raise AnalysisError(f"learning-rate transfer compares widths at one token budget; the runs have "
                            f"{table['D'].nunique()} (D = {', '.join(f'{d:.3g}' for d in sorted(table['D'].unique()))})")
    rows = []
    for (parametrization, width), cell in table.groupby(["parametrization", "width"]):
        mean = cell.groupby("lr")["loss"].mean()
        lr, edge = profile_optimum(mean.index, mean.to_numpy())
        rows.append({"parametrization": parametrization, "width": int(width), "lr_opt": lr,
                     "best_loss": float(mean.min()), "runs": len(cell), "edge": edge})
    return pd.DataFrame(rows)


def spread(optima: pd.DataFrame) -> dict[str, float]:
    """max - min of log2(lr*) across widths, by parametrization: 0 is perfect transfer."""
    log2 = np.log2(optima["lr_opt"])
    return {p: float(v.max() - v.min()) for p, v in log2.groupby(optima["parametrization"])}


def plot_lr_transfer(table: pd.DataFrame, optima: pd.DataFrame, path: str | Path) -> Path:
    table = _parametrized(table)
    kinds = sorted(table["parametrization"].unique())
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), sharey=True, squeeze=False)
    widths = sorted(table["width"].unique())
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    for ax, kind in zip(axes[0], kinds):
        for colour, width in zip(colours, widths):
            runs = table[(table["parametrization"] == kind) & (table["width"] == width)].sort_values("lr")
            ax.plot(runs["lr"], runs["loss"], "o-", color=colour, ms=3, label=f"width {int(width)}")
            best = optima[(optima["parametrization"] == kind) & (optima["width"] == width)]
            for lr in best["lr_opt"]:
                ax.axvline(lr, color=colour, ls=":", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # within a decade its labels overlap
        ax.set_xlabel("learning rate")
        ax.set_title(f"{kind}: lr* spread {spread(optima).get(kind, float('nan')):.2f} doublings")
    axes[0][0].set_ylabel("final validation loss")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
