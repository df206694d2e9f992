"""The report's figures (PNG files), one function per figure, from the run table and its `Findings`."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .findings import Findings, is_moe  # noqa: E402
from .frontier import frontier_law, law_points  # noqa: E402
from .laws import ChinchillaLaw, HparamsLaw, Law, SparsityLaw  # noqa: E402
from .laws.sparsity import CELL, read_cells  # noqa: E402
from .sensitivity import importance_table  # noqa: E402
from .table import best_per_cell  # noqa: E402


def draw_figures(table: pd.DataFrame, found: Findings, out: Path) -> dict[str, Path]:
    """Each figure the findings support, as `out/<name>.png`, by name in the page's order."""
    laws = found.laws
    hparams = laws.get("hparams_near-best") or laws.get("hparams_surface")
    dense = table[~is_moe(table)]  # what the laws other than the sparsity law were fitted to
    figures = {"loss_vs_compute": plot_loss_vs_compute(table, laws, out / "loss_vs_compute.png")}
    if "sparsity" in laws:
        figures["loss_vs_active"] = plot_loss_vs_active(table, laws["sparsity"], out / "loss_vs_active.png")
    if "lr" in dense.columns and dense["lr"].nunique() > 1:
        figures["loss_vs_lr"] = plot_loss_vs_lr(dense, laws.get("hparams_near-best"), out / "loss_vs_lr.png")
    if hparams is not None:
        figures["hparams_vs_scale"] = plot_hparams_vs_scale(dense, hparams, out / "hparams_vs_scale.png")
    if "importance" in found.tables:
        figures["importance"] = plot_importance(found.tables["importance"], out / "importance.png")
    if "lr_sensitivity" in found.tables:
        figures["lr_sensitivity"] = plot_sensitivity(found.tables["lr_sensitivity"], out / "lr_sensitivity.png")
    if "chinchilla" in laws:
        figures["residuals"] = plot_residuals(dense, laws["chinchilla"], out / "residuals.png")
    return figures


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss_vs_compute(table: pd.DataFrame, laws: dict[str, Law], path: Path) -> Path:
    """The best loss of each (N, D) against compute, one line per N, and the fitted frontier."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    Ns = np.sort(table["N"].unique())
    cmap = plt.get_cmap("viridis")
    cells = best_per_cell(table)
    for i, N in enumerate(Ns):
        sub = cells[cells["N"] == N].sort_values("C")
        ax.plot(sub["C"], sub["loss"], "o-", color=cmap(i / max(len(Ns) - 1, 1)), ms=4,
                label=f"N={N:.3g}", lw=1)
    name, law = frontier_law(laws)  # the frontier W&B's panel draws too
    if law is not None:
        line = law_points(name, law, np.geomspace(table["C"].min() / 2, table["C"].max() * 4, 100))
        label = "Chinchilla frontier L(N_opt, D_opt)" if name == "chinchilla" else "power-law frontier"
        ax.plot(line["C"], line["loss"], "k--", lw=1.5, label=label)
        ax.fill_between(line["C"], line["low"], line["high"], color="k", alpha=0.1, lw=0, label="its 95% band")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="loss (best per cell)",
           title="Loss against compute")
    ax.legend(fontsize=7)
    return save(fig, path)


def plot_loss_vs_active(table: pd.DataFrame, law: SparsityLaw, path: Path) -> Path:
    """The best loss of each cell against active parameters, one colour per sparsity, at the
    table's largest D (a fit of one D: that D), with the sparsity law's curves and 95% bands."""
    cells = best_per_cell(read_cells(table), CELL)
    D = float(cells["D"].max())
    cells = cells[np.isclose(cells["D"], D)]
    Ns = np.geomspace(cells["N"].min() / 1.5, cells["N"].max() * 4, 60)
    Gs = np.sort(cells["G"].unique())
    cmap = plt.get_cmap("plasma")
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, G in enumerate(Gs):
        color = cmap(0.85 * i / max(len(Gs) - 1, 1))
        sub = cells[cells["G"] == G].sort_values("N")
        label = "dense" if G == 1 else f"sparsity {1 - 1 / G:.3g} (G = {G:g})"
        ax.scatter(sub["N"], sub["loss"], color=color, s=18, zorder=3, label=label)
        ax.plot(Ns, law.predict(Ns, D, G), color=color, lw=1.2)
        if law.samples_:
            draws = np.array([law.predict(Ns, D, G, P) for P in law.sampled_params()])
            lo, hi = np.nanpercentile(draws, [2.5, 97.5], axis=0)
            ax.fill_between(Ns, lo, hi, color=color, alpha=0.15, lw=0)
    ax.set(xscale="log", xlabel="active parameters N (non-embedding)", ylabel="loss (best per cell)",
           title=f"Loss against active parameters at D = {D:.3g}: {law.variant} form")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # 2x10^4, 3x10^4, ... overlap
    ax.legend(fontsize=7)
    return save(fig, path)


def plot_loss_vs_lr(table: pd.DataFrame, law: HparamsLaw | None, path: Path) -> Path:
    """Per (N, D): the best loss at each lr, the best run's lr and the law's."""
    cells = list(table.groupby(["N", "D"], sort=True))
    cols = min(4, len(cells))
    rows = int(np.ceil(len(cells) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False)
    for ax, ((N, D), cell) in zip(axes.flat, cells):
        prof = cell.groupby("lr")["loss"].min()
        prof = prof[np.isfinite(prof)]
        ax.plot(prof.index, prof.values, "o-", ms=3, lw=1, label="best over other settings")
        best = prof.min()
        ax.set_ylim(best * 0.995, best * 1.06)
        ax.axvline(prof.idxmin(), color="g", lw=1, label="estimated optimum (best run)")
        if law is not None:
            ax.axvline(float(law.predict(N=N, D=D, C=cell["C"].iloc[0])[0]), color="r", ls="--",
                       lw=1, label="law")
        ax.set_xscale("log")
        ax.set_title(f"N={N:.3g} D={D:.3g}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("Loss against learning rate per scale")
    return save(fig, path)


def plot_hparams_vs_scale(table: pd.DataFrame, law: HparamsLaw, path: Path) -> Path:
    """The optimal lr and batch size of each cell against D, one colour per N, with the law (and
    its 95% bootstrap band)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    opt = law.optima(table)
    cmap = plt.get_cmap("viridis")
    Ns = np.sort(table["N"].unique())
    Ds = np.geomspace(table["D"].min(), table["D"].max(), 40)
    for i, N in enumerate(Ns):
        color = cmap(i / max(len(Ns) - 1, 1))
        sub = opt[opt["N"] == N]
        axes[0].scatter(sub["D"], sub["lr"], s=8, color=color, alpha=0.5)
        axes[1].scatter(sub["D"], sub["bs"], s=8, color=color, alpha=0.5)
        lr, bs = law.predict(N=np.full_like(Ds, N), D=Ds)
        axes[0].plot(Ds, lr, color=color, label=f"N={N:.3g}")
        axes[1].plot(Ds, bs, color=color)
        if law.samples_:
            draws = np.array([law.predict(N=np.full_like(Ds, N), D=Ds, params=P)
                              for P in law.sampled_params()])
            for k, ax in enumerate(axes):
                lo, hi = np.percentile(draws[:, k], [2.5, 97.5], axis=0)
                ax.fill_between(Ds, lo, hi, color=color, alpha=0.15)
    unit = law.inputs_.get("batch_unit", "sequences")
    axes[0].set(xscale="log", yscale="log", xlabel="tokens D", ylabel="lr*",
                title=f"lr*: {law.form.split(';')[0]}")
    axes[1].set(xscale="log", yscale="log", xlabel="tokens D", ylabel=f"batch size* ({unit})",
                title="bs*: " + law.form.split(';')[1].strip())
    axes[0].legend(fontsize=7)
    return save(fig, path)


def plot_importance(long: pd.DataFrame, path: Path) -> Path:
    """Each hyperparameter's importance against N, one panel per evaluator."""
    evs = list(long["evaluator"].unique())
    fig, axes = plt.subplots(1, len(evs), figsize=(5 * len(evs), 3.8), squeeze=False)
    for ax, ev in zip(axes.flat, evs):
        wide = importance_table(long, ev)
        byN = wide.drop(columns=["D"]).groupby("N").mean()
        for p in byN.columns:
            ax.plot(byN.index, byN[p], "o-", label=p)
        ax.set(xscale="log", xlabel="N", ylabel="importance (mean over D)", title=ev, ylim=(0, 1))
        ax.legend(fontsize=7)
    return save(fig, path)


def plot_sensitivity(sens: pd.DataFrame, path: Path) -> Path:
    """LR sensitivity and the width of the lr basin against N."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    g = sens.groupby("N")[["lr_sensitivity", "basin_width_log10"]].mean()  # mean over D
    axes[0].plot(g.index, g["lr_sensitivity"], "o-", label="all D")
    axes[1].plot(g.index, g["basin_width_log10"], "o-")
    axes[0].scatter(sens["N"], sens["lr_sensitivity"], s=8, alpha=0.4)
    axes[1].scatter(sens["N"], sens["basin_width_log10"], s=8, alpha=0.4)
    axes[0].set(xscale="log", xlabel="N", ylabel="LR sensitivity (Wortsman)")
    axes[1].set(xscale="log", xlabel="N", ylabel="basin width, log10 lr (within 1%)")
    return save(fig, path)


def plot_residuals(table: pd.DataFrame, law: ChinchillaLaw, path: Path) -> Path:
    """The best loss of each (N, D) over the Chinchilla law's, against compute."""
    cells = best_per_cell(table)
    r = np.log(cells["loss"]) - np.log(law.predict(cells["N"], cells["D"]))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.scatter(cells["C"], r, s=12, c=np.log10(cells["N"]), cmap="viridis")
    ax.axhline(0, color="k", lw=1)
    ax.set(xscale="log", xlabel="compute C", ylabel="log(observed / fitted)",
           title="Chinchilla-law residuals")
    return save(fig, path)
