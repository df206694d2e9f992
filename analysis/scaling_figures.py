"""The figures of a scaling study's report section: loss and learning rate against compute, each
scale's result and the target's prediction beside its verification runs, and the curve law
against the measured loss curves (`scaling_report`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import pandas as pd  # noqa: E402

from .errors import AnalysisError  # noqa: E402
from .figures import save  # noqa: E402
from .ladder import DOUBLE, HALF, OPTIMUM, search_runs  # noqa: E402
from .laws import CurveLaw, HparamsLaw, Law  # noqa: E402
from .scaling_report import (LR, CurveFit, finite, interval_text, lr_scan, measured_target, scales_of,  # noqa: E402
                             study_laws)

DODGE = 1.15  # the neighbours are drawn this factor left and right of the target's C


def draw_study_figures(verdict: dict[str, Any], table: Optional[pd.DataFrame], out: Path,
                       folder: Optional[Path] = None, all_runs: Optional[pd.DataFrame] = None,
                       curve: Optional[CurveFit] = None) -> dict[str, Path]:
    """`study_loss.png` and `study_lr.png` in `out`, and `curve_fits.png` where the curve law
    (`curve`) was fitted. `table` is the full run table, verification runs included; the laws
    come from the verdict, else from the study's `folder`."""
    loss, hp = study_laws(verdict, folder)
    figures = {"study_loss": plot_study_loss(verdict, table, out / "study_loss.png", loss),
               "study_lr": plot_study_lr(verdict, table, out / "study_lr.png", hp, all_runs, loss)}
    if curve is not None and curve.law is not None:
        figures["curve_fits"] = plot_curve_fits(curve, out / "curve_fits.png", str(verdict.get("study", "")))
    return figures


def _legend(ax, x: float = 1.02) -> None:
    """Outside the axes, on the right: the points at the target budget sit at the right edge."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(x, 1.0), borderaxespad=0.0)


def _budget_grid(verdict: dict[str, Any], table: Optional[pd.DataFrame]) -> Optional[np.ndarray]:
    cs = [s["C"] for s in scales_of(verdict) if finite(s.get("C"))]
    target = verdict.get("target") or {}
    if finite(target.get("C")):
        cs.append(target["C"])
    if not cs and table is not None and "C" in table.columns and len(table):
        cs = list(table["C"].astype(float))
    if not cs:
        return None
    return np.geomspace(min(cs) / 2, max(cs) * 2, 120)


def _prediction(ax, c: float, value: float, interval: Any, label: str) -> None:
    """The target's predicted value at its budget, with its 95% interval as an error bar."""
    yerr = [[max(value - interval[0], 0.0)], [max(interval[1] - value, 0.0)]] if interval_text(interval) else None
    ax.errorbar([c], [value], yerr=yerr, fmt="D", color="tab:red", ms=7, capsize=4, zorder=5, label=label)


def _band(draws: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    draws = np.where(np.isfinite(draws), draws, np.nan)
    if draws.ndim != 2 or draws.shape[0] < 2 or np.isnan(draws).all():
        return None
    lo, hi = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return lo, hi


def _stacked(law: Law) -> Optional[dict[str, np.ndarray]]:
    """The law's bootstrap draws as one column of arrays per parameter (draws x 1)."""
    draws = law.sampled_params()
    if len(draws) < 2:
        return None
    return {k: np.array([d[k] for d in draws], float)[:, None] for k in draws[0]}


def _draw_band(ax, grid: np.ndarray, law: Law, predict, label: str) -> None:
    """The 95% band of `predict(params)` over the law's bootstrap draws, where it has some."""
    P = _stacked(law)
    band = None if P is None else _band(np.asarray(predict(P), float))
    if band is not None:
        ax.fill_between(grid, *band, color="k", alpha=0.12, lw=0, label=label)



def plot_study_loss(verdict: dict[str, Any], table: Optional[pd.DataFrame], path: Path,
                    law: Optional[Law] = None) -> Path:
    """Tuned loss per ladder scale, the fitted compute-optimal frontier (with its bootstrap band),
    the target's predicted loss and the measured verification losses, against compute."""
    fig, ax = plt.subplots(figsize=(11, 5))
    scales = [s for s in scales_of(verdict) if finite(s.get("loss")) and finite(s.get("C"))]
    if scales:
        C = np.array([s["C"] for s in scales])
        for k, s in enumerate(scales):
            seeds = [x for x in s.get("seed_losses") or [] if finite(x)]
            ax.scatter([s["C"]] * len(seeds), seeds, s=9, color="0.55", zorder=2,
                       label="ladder: each seed" if k == 0 else None)
        sc = ax.scatter(C, [s["loss"] for s in scales], c=np.log10([s["N"] for s in scales]),
                        cmap="viridis", s=40, edgecolor="k", zorder=3,
                        label="ladder: tuned loss (median over seeds)")
        fig.colorbar(sc, ax=ax, pad=0.01).set_label("log10 N", fontsize=8)
    grid = _budget_grid(verdict, table)
    if law is not None and grid is not None:
        with np.errstate(all="ignore"):
            n, d = law.compute_optimal(grid)
            ax.plot(grid, law.predict(n, d), "k--", lw=1.3,
                    label=f"fitted frontier L(N_opt, D_opt): {law.form}")
            _draw_band(ax, grid, law, lambda P: law.predict(*law.compute_optimal(grid[None, :], P), P),
                       "frontier: 95% bootstrap band")
    target = verdict.get("target") or {}
    if finite(target.get("C")) and finite(target.get("loss")):
        tc, tl = target["C"], target["loss"]
        iv = target.get("loss_interval")
        _prediction(ax, tc, tl, iv, f"target: predicted loss {tl:.4f} {interval_text(iv, '.4f')}")
        measured = measured_target(verdict, table)
        styles = {OPTIMUM: (1.0, "*", "tab:green", 13, "measured: predicted N"),
                  HALF: (1 / DODGE, "<", "tab:orange", 8, "measured: neighbour N/2 (drawn left)"),
                  DOUBLE: (DODGE, ">", "tab:purple", 8, "measured: neighbour 2N (drawn right)")}
        for role, (f, marker, color, ms, label) in styles.items():
            losses = measured.get(role)
            if not losses:
                continue
            ax.scatter([tc * f] * len(losses), losses, s=10, color=color, alpha=0.6, zorder=4)
            ax.plot([tc * f], [np.median(losses)], marker, color=color, ms=ms, mec="k", ls="none",
                    zorder=5, label=f"{label}: {np.median(losses):.4f}")
    ax.set_xscale("log")
    # the points decide the view: a bootstrap band can fan out far below the smallest budget
    shown = [y for s in scales for y in [s["loss"], *(s.get("seed_losses") or [])]]
    shown += [target.get("loss"), *(target.get("loss_interval") or [])]
    shown += [y for losses in (measured_target(verdict, table) if target else {}).values() for y in losses or []]
    shown = [y for y in shown if finite(y)]
    if shown:
        ax.set_ylim(0.95 * min(shown), 1.05 * max(shown))
    ax.set(xlabel="compute C (FLOPs)", ylabel="validation loss",
           title=f"Scaling study {verdict.get('study', '')}: loss against compute")
    if verdict.get("error"):
        ax.text(0.01, 0.01, f"stopped: {verdict['error']}"[:120], transform=ax.transAxes,
                fontsize=7, color="tab:red", va="bottom")
    _legend(ax, 1.16 if scales else 1.02)
    return save(fig, path)


def plot_study_lr(verdict: dict[str, Any], table: Optional[pd.DataFrame], path: Path,
                  hp: Optional[HparamsLaw] = None, all_runs: Optional[pd.DataFrame] = None,
                  loss: Optional[Law] = None) -> Path:
    """Each scale's search range and trials, its optimum (edges marked), the lr law with its
    bootstrap band, the target's predicted lr and the lr scan there, against compute. A law in N
    and D (`steplaw`) is drawn at each scale's N and D, and as a line along the compute-optimal
    N and D of `loss` (where the target lies)."""
    fig, ax = plt.subplots(figsize=(11, 5))
    scales = [s for s in scales_of(verdict) if finite(s.get("C"))]
    first = True
    for s in scales:
        r = (s.get("search_range") or {}).get(LR)
        if isinstance(r, dict) and finite(r.get("low")) and finite(r.get("high")):
            ax.vlines(s["C"], r["low"], r["high"], color="tab:blue", lw=5, alpha=0.25, zorder=1,
                      label="search range per scale" if first else None)
            first = False
    if table is not None and {"C", "lr"} <= set(table.columns):
        trials = search_runs(table)
        ax.scatter(trials["C"], trials["lr"], s=10, color="0.35", zorder=2, label="search trials")
    if all_runs is not None and {"C", "lr", "status"} <= set(all_runs.columns):
        failed = search_runs(all_runs)
        failed = failed[failed["status"] != "completed"]
        if len(failed):
            ax.scatter(failed["C"], failed["lr"], s=22, marker="x", color="tab:red", zorder=2,
                       label="search trials: diverged")
    if hp is not None and table is not None:
        try:
            opt = hp.optima(search_runs(table))
        except (AnalysisError, KeyError, ValueError):
            opt = None
        if opt is not None and len(opt):
            edge = opt["lr_edge"].apply(lambda e: isinstance(e, str)) if "lr_edge" in opt else \
                pd.Series(False, index=opt.index)
            inside = opt[~edge]
            ax.scatter(inside["C"], inside["lr"], s=60, marker="o", facecolor="none",
                       edgecolor="tab:green", lw=1.8, zorder=4,
                       label="optimum (trials near the best, weighted)" if hp.optimum == "weighted" else
                             f"{hp.optimum} optimum")
            for side, marker in (("high", "^"), ("low", "v")):
                e = opt[edge & (opt.get("lr_edge") == side)]
                if len(e):
                    ax.scatter(e["C"], e["lr"], s=70, marker=marker, color="tab:orange",
                               edgecolor="k", zorder=4,
                               label=f"edge optimum ({'largest' if side == 'high' else 'smallest'} "
                                     "lr tried; left out of the law)")
                    for c, lr in zip(e["C"], e["lr"]):
                        ax.annotate("edge", (c, lr), textcoords="offset points", xytext=(5, 4),
                                    fontsize=7, color="tab:orange")
    grid = _budget_grid(verdict, table)
    by_nd = hp is not None and hp.law_form == "steplaw"
    text = ", ".join(f"{k}={v:.3g}" for k, v in hp.params_.items() if k in ("a", "alpha", "beta")) if hp else ""
    if by_nd:
        at = [s for s in scales if finite(s.get("N")) and finite(s.get("D"))]
        if at:
            ax.scatter([s["C"] for s in at], [float(hp.predict(N=s["N"], D=s["D"], C=s["C"])[0]) for s in at],
                       s=40, marker="x", color="k", zorder=4, label="law at each scale's N, D")
    n = d = None
    if by_nd and loss is not None and grid is not None:
        try:
            n, d = (np.asarray(v, float) for v in loss.compute_optimal(grid))
        except AnalysisError:
            pass
    if hp is not None and grid is not None and (n is not None or not by_nd):
        along = " along the compute-optimal N, D" if by_nd else ""
        row = lambda v: None if v is None else v[None, :]  # noqa: E731
        with np.errstate(all="ignore"):
            lr = np.asarray(hp.predict(N=n, D=d, C=grid)[0], float)
            ax.plot(grid, lr, "k--", lw=1.3, label=f"law{along}: {hp.form.split('; ')[0]} ({text})")
            _draw_band(ax, grid, hp, lambda P: hp.predict(N=row(n), D=row(d), C=grid[None, :], params=P)[0],
                       "law: 95% bootstrap band")
    target = verdict.get("target") or {}
    if finite(target.get("C")) and finite(target.get("lr")):
        tc, tlr = target["C"], target["lr"]
        iv = target.get("lr_interval")
        label = f"target: predicted lr {tlr:.4g} {interval_text(iv)}"
        if target.get("lr_note"):
            label += f" ({target['lr_note']})"
        _prediction(ax, tc, tlr, iv, label)
        scan = lr_scan(verdict, table)
        if scan:
            best = min(s["loss"] for s in scan)
            ax.scatter([tc * DODGE] * len(scan), [s["lr"] for s in scan], s=36, marker="s",
                       color="tab:purple", zorder=5, label="lr scan at the target (drawn right)")
            for s in scan:
                ax.annotate(f"{s['loss']:.4f}" + (" (best)" if s["loss"] == best else ""),
                            (tc * DODGE, s["lr"]), textcoords="offset points", xytext=(6, -3),
                            fontsize=7, color="tab:purple")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="learning rate",
           title=f"Scaling study {verdict.get('study', '')}: learning rate against compute")
    _legend(ax)
    return save(fig, path)


def _fitted(law: CurveLaw, curves: pd.DataFrame) -> np.ndarray:
    """Which rows of `curves` lie past the transient: the rows the law's rule (`law.points`) keeps."""
    return curves.index.isin(law.points(curves).index) if len(curves) else np.zeros(0, bool)


def _run_curve(ax, run: pd.DataFrame, fitted: np.ndarray, law: CurveLaw, color, marker: str = "o", size: float = 14,
               ls: str = "-", zorder: int = 3) -> list[float]:
    """One run: its measured points (hollow and faded before the transient's end) and the law's
    loss along it past the transient. The losses that should decide the view come back."""
    run, fitted = run[run["tokens"] > 0], fitted[(run["tokens"] > 0).to_numpy()]  # log x: no step 0
    ax.scatter(run["tokens"][fitted], run["loss"][fitted], s=size, marker=marker, color=color, zorder=zorder,
               edgecolors="k" if marker != "o" else "none", linewidths=0.5)
    ax.scatter(run["tokens"][~fitted], run["loss"][~fitted], s=size, marker=marker, facecolors="none",
               edgecolors=color, alpha=0.45, zorder=zorder - 1)
    kept = run[fitted].sort_values("tokens")
    if kept.empty:
        return []
    with np.errstate(all="ignore"):
        predicted = np.asarray(law.predict_points(kept), float)
    ax.plot(kept["tokens"], predicted, ls, color=color, lw=1.4, zorder=zorder - 1)
    return [*kept["loss"], *predicted[np.isfinite(predicted)]]


def plot_curve_fits(fit: CurveFit, path: Path, study: str = "") -> Path:
    """Each ladder scale's best configuration: measured validation loss against tokens (points;
    hollow and faded: the transient the fit left out) and the curve law's loss along the same run
    (line), coloured by N; the target's verification runs at the predicted optimum and the law's
    curve for them (fitted on the ladder alone), in red, with the error at the last point."""
    law = fit.law
    fig, ax = plt.subplots(figsize=(11, 5))
    logn = np.log10(fit.ladder["N"].to_numpy(float))
    norm = Normalize(logn.min(), logn.max() if logn.max() > logn.min() else logn.min() + 1)
    cmap = plt.get_cmap("viridis")
    fitted = _fitted(law, fit.ladder)
    shown: list[float] = []
    for run_id, run in fit.ladder.groupby("run", sort=False):
        shown += _run_curve(ax, run, fitted[(fit.ladder["run"] == run_id).to_numpy()], law,
                            cmap(norm(np.log10(float(run["N"].iloc[0])))))
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01).set_label("log10 N", fontsize=8)
    rmse = law.metrics_.get("rmse_log", float("nan"))
    handles = [Line2D([], [], marker="o", ls="none", color="0.45", label="measured: ladder, points the fit used"),
               Line2D([], [], marker="o", ls="none", mfc="none", mec="0.45", alpha=0.6,
                      label=f"measured: transient (before {law.skip:g} x each N's longest run), left out"),
               Line2D([], [], color="0.45", lw=1.4, label=f"curve law along the run: {law.form}\n"
                                                         f"fitted to {law.metrics_.get('runs', '?')} runs, "
                                                         f"rmse_log {rmse:.3g}")]
    error = fit.target_error()
    if error is not None:
        target_fitted = _fitted(law, fit.target)
        for run_id, run in fit.target.groupby("run", sort=False):
            shown += _run_curve(ax, run, target_fitted[(fit.target["run"] == run_id).to_numpy()], law,
                                "tab:red", marker="*", size=60, ls="--", zorder=5)
        seeds = fit.target["run"].nunique()
        handles += [Line2D([], [], marker="*", ms=10, ls="none", color="tab:red", mec="k", mew=0.5,
                           label=f"measured: target N={float(fit.target['N'].iloc[0]):.3g} "
                                 f"({seeds} run{'s' if seeds > 1 else ''}; held out of the fit)"),
                    Line2D([], [], color="tab:red", ls="--", lw=1.4,
                           label=f"curve law for the target (fitted on the ladder only): last point\n"
                                 f"predicted {error['predicted']:.4f}, measured {error['measured']:.4f}, "
                                 f"error {100 * error['relative_error']:+.2f}%")]
    ax.set_xscale("log")
    # the points past the transient decide the view: the first evaluations lie far above
    shown = [y for y in shown if finite(y)]
    if shown:
        lo, hi = min(shown), max(shown)
        pad = 0.05 * (hi - lo) or 0.02 * hi
        ax.set_ylim(lo - pad, hi + 6 * pad)
    ax.set(xlabel="tokens", ylabel="validation loss",
           title=f"Scaling study {study}: the curve law against each scale's best curve")
    ax.legend(handles=handles, fontsize=7, loc="upper right", framealpha=0.9)  # the curves fall away from there
    return save(fig, path)
