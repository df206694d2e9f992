"""A scaling study's section of `scalelab report`: its ladder, laws, prediction and verdict.

A `sweeps=ladder` study leaves `verdict.json` in its folder (see `scalelab.sweeps.scaling`). Its
verification runs at the target budget are the held-out test of the laws, so the report's other
fits leave them out (`without_verification`) and this section shows them against the
prediction. The plots and HTML fragments are functions of the parsed verdict and the run table;
a verdict that stopped early (an `error`, no `target` or `verdict`) renders what it has.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .errors import AnalysisError  # noqa: E402
from .ladder import (DOUBLE, HALF, LR_HIGH, LR_LOW, NOISE_SDS, OPTIMUM, TARGET_ROLES,  # noqa: E402
                     VERDICT_FILE, roles, search_runs)
from .laws import HparamsLaw, Law, load_fit  # noqa: E402

LR = "optim.lr"
NEIGHBOUR_NAMES = {HALF: "N/2", DOUBLE: "2N"}
DODGE = 1.15  # the neighbours are drawn this factor left and right of the target's C


# ----------------------------------------------------------------------------------- inputs
def find_verdict(source: Any) -> Optional[Path]:
    """`source/verdict.json` when the report's source is a study folder that has one."""
    if source is None or isinstance(source, pd.DataFrame):
        return None
    try:
        path = Path(str(source)) / VERDICT_FILE
        return path if path.is_file() else None
    except OSError:
        return None


def load_verdict(path: str | Path) -> dict[str, Any]:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AnalysisError(f"cannot read {path}: {e}") from None
    if not isinstance(d, dict):
        raise AnalysisError(f"{path} is not a scaling study's verdict (not a JSON object)")
    return d


def without_verification(table: Optional[pd.DataFrame]) -> tuple[Optional[pd.DataFrame], int]:
    """The table less the verification runs (the laws' held-out test) and how many those were.
    A table of nothing but verification runs is kept whole: there is nothing else to fit."""
    if table is None:
        return None, 0
    held = roles(table).isin(TARGET_ROLES).to_numpy()
    if not held.any() or held.all():
        return table, 0
    kept = table[~held].reset_index(drop=True)
    kept.attrs = dict(table.attrs)
    return kept, int(held.sum())


def study_laws(verdict: dict[str, Any], folder: Optional[Path] = None
               ) -> tuple[Optional[Law], Optional[HparamsLaw]]:
    """L(N, D) and the lr law from the verdict's `laws`, else from the study's `fits/` files."""
    laws = verdict.get("laws") or {}
    out: list[Optional[Law]] = []
    for key, file in (("loss", "loss.json"), ("hparams", "hparams.json")):
        law = None
        for src in (laws.get(key), folder / "fits" / file if folder else None):
            if not src or (isinstance(src, Path) and not src.is_file()):
                continue
            try:
                law = load_fit(src)
                break
            except AnalysisError:
                continue
        out.append(law)
    loss, hp = out
    return loss, hp if isinstance(hp, HparamsLaw) else None


# ----------------------------------------------------------------------------------- helpers
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any, spec: str = ".4g") -> str:
    return format(x, spec) if _finite(x) else "—"


def _pct(x: Any, spec: str = "+.2f") -> str:
    return f"{format(100 * x, spec)}%" if _finite(x) else "—"


def _interval(iv: Any, spec: str = ".4g") -> str:
    if isinstance(iv, (list, tuple)) and len(iv) == 2 and all(_finite(v) for v in iv):
        return f"[{format(iv[0], spec)}, {format(iv[1], spec)}]"
    return ""


def _losses(xs: Any) -> str:
    return ", ".join(_fmt(x, ".4f") for x in xs or [])


def _yes(x: Any) -> str:
    return "—" if x is None else ("yes" if x else "no")


def _scales(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in verdict.get("scales") or [] if isinstance(s, dict)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _legend(ax, x: float = 1.02) -> None:
    """Outside the axes, on the right: the points at the target budget sit at the right edge."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(x, 1.0), borderaxespad=0.0)


def _budget_grid(verdict: dict[str, Any], table: Optional[pd.DataFrame]) -> Optional[np.ndarray]:
    cs = [s["C"] for s in _scales(verdict) if _finite(s.get("C"))]
    target = verdict.get("target") or {}
    if _finite(target.get("C")):
        cs.append(target["C"])
    if not cs and table is not None and "C" in table.columns and len(table):
        cs = list(table["C"].astype(float))
    if not cs:
        return None
    return np.geomspace(min(cs) / 2, max(cs) * 2, 120)


def _prediction(ax, c: float, value: float, interval: Any, label: str) -> None:
    """The target's predicted value at its budget, with its 95% interval as an error bar."""
    yerr = [[max(value - interval[0], 0.0)], [max(interval[1] - value, 0.0)]] if _interval(interval) else None
    ax.errorbar([c], [value], yerr=yerr, fmt="D", color="tab:red", ms=7, capsize=4, zorder=5, label=label)


def _band(draws: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    draws = np.where(np.isfinite(draws), draws, np.nan)
    if draws.ndim != 2 or draws.shape[0] < 2 or np.isnan(draws).all():
        return None
    lo, hi = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return lo, hi


def _stacked(law: Law) -> Optional[dict[str, np.ndarray]]:
    """The law's bootstrap draws as one column of arrays per parameter (draws x 1)."""
    draws = law._sampled_params()
    if len(draws) < 2:
        return None
    return {k: np.array([d[k] for d in draws], float)[:, None] for k in draws[0]}


def _draw_band(ax, grid: np.ndarray, law: Law, predict, label: str) -> None:
    """The 95% band of `predict(params)` over the law's bootstrap draws, where it has some."""
    P = _stacked(law)
    band = None if P is None else _band(np.asarray(predict(P), float))
    if band is not None:
        ax.fill_between(grid, *band, color="k", alpha=0.12, lw=0, label=label)


def measured_target(verdict: dict[str, Any], table: Optional[pd.DataFrame] = None
                    ) -> dict[str, list[float]]:
    """The verification losses per role (optimum, half, double): the verdict's, else the table's."""
    v = verdict.get("verdict") or {}
    out: dict[str, list[float]] = {}
    if v.get("seed_losses"):
        out[OPTIMUM] = [float(x) for x in v["seed_losses"] if _finite(x)]
    for role, n in (v.get("neighbours") or {}).items():
        if n.get("seed_losses"):
            out[role] = [float(x) for x in n["seed_losses"] if _finite(x)]
    if not out and table is not None and "role" in table.columns:
        role_of = roles(table)
        for role in (OPTIMUM, HALF, DOUBLE):
            losses = table.loc[role_of == role, "loss"].astype(float)
            if len(losses):
                out[role] = losses[np.isfinite(losses)].tolist()
    return out


def lr_scan(verdict: dict[str, Any], table: Optional[pd.DataFrame] = None) -> list[dict[str, Any]]:
    """The lr scan at the target (lr_low, optimum, lr_high at the smallest seed)."""
    scan = (verdict.get("verdict") or {}).get("lr_scan")
    if scan:
        return [s for s in scan if _finite(s.get("lr")) and _finite(s.get("loss"))]
    if table is None or "role" not in table.columns or "seed" not in table.columns:
        return []
    runs = table[roles(table).isin((LR_LOW, OPTIMUM, LR_HIGH))]
    if runs.empty:
        return []
    first = runs[runs["seed"] == runs["seed"].min()]
    return [{"role": role, "lr": float(r.lr), "loss": float(r.loss)}
            for role in (LR_LOW, OPTIMUM, LR_HIGH) for r in first[roles(first) == role].itertuples()]


# ----------------------------------------------------------------------------------- plots
def plot_study_loss(verdict: dict[str, Any], table: Optional[pd.DataFrame], path: Path,
                    law: Optional[Law] = None) -> Path:
    """Tuned loss per ladder scale, the fitted compute-optimal frontier (with its bootstrap band),
    the target's predicted loss and the measured verification losses, against compute."""
    fig, ax = plt.subplots(figsize=(11, 5))
    scales = [s for s in _scales(verdict) if _finite(s.get("loss")) and _finite(s.get("C"))]
    if scales:
        C = np.array([s["C"] for s in scales])
        for k, s in enumerate(scales):
            seeds = [x for x in s.get("seed_losses") or [] if _finite(x)]
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
    if _finite(target.get("C")) and _finite(target.get("loss")):
        tc, tl = target["C"], target["loss"]
        iv = target.get("loss_interval")
        _prediction(ax, tc, tl, iv, f"target: predicted loss {tl:.4f} {_interval(iv, '.4f')}")
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
    shown = [y for y in shown if _finite(y)]
    if shown:
        ax.set_ylim(0.95 * min(shown), 1.05 * max(shown))
    ax.set(xlabel="compute C (FLOPs)", ylabel="validation loss",
           title=f"Scaling study {verdict.get('study', '')}: loss against compute")
    if verdict.get("error"):
        ax.text(0.01, 0.01, f"stopped: {verdict['error']}"[:120], transform=ax.transAxes,
                fontsize=7, color="tab:red", va="bottom")
    _legend(ax, 1.16 if scales else 1.02)
    return _save(fig, path)


def plot_study_lr(verdict: dict[str, Any], table: Optional[pd.DataFrame], path: Path,
                  hp: Optional[HparamsLaw] = None, all_runs: Optional[pd.DataFrame] = None) -> Path:
    """Each scale's search range and trials, its profile optimum (edges marked), the lr law with
    its bootstrap band, the target's predicted lr and the lr scan there, against compute."""
    fig, ax = plt.subplots(figsize=(11, 5))
    scales = [s for s in _scales(verdict) if _finite(s.get("C"))]
    first = True
    for s in scales:
        r = (s.get("search_range") or {}).get(LR)
        if isinstance(r, dict) and _finite(r.get("low")) and _finite(r.get("high")):
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
                       edgecolor="tab:green", lw=1.8, zorder=4, label="profile optimum")
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
    if hp is not None and grid is not None:
        with np.errstate(all="ignore"):
            lr = np.asarray(hp.predict(C=grid)[0], float)
            text = ", ".join(f"{k}={v:.3g}" for k, v in hp.params_.items() if k in ("a", "alpha"))
            ax.plot(grid, lr, "k--", lw=1.3, label=f"law: {hp.form.split('; ')[0]} ({text})")
            _draw_band(ax, grid, hp, lambda P: hp.predict(C=grid[None, :], params=P)[0], "law: 95% bootstrap band")
    target = verdict.get("target") or {}
    if _finite(target.get("C")) and _finite(target.get("lr")):
        tc, tlr = target["C"], target["lr"]
        iv = target.get("lr_interval")
        label = f"target: predicted lr {tlr:.4g} {_interval(iv)}"
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
    return _save(fig, path)


# ----------------------------------------------------------------------------------- HTML
def _table(header: list[str], rows: list[list[str]], cls: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class={cls}><tr>{head}</tr>{body}</table>"


def _ranges(s: dict[str, Any]) -> tuple[str, str]:
    ranges = s.get("search_range") or {}
    if not isinstance(ranges, dict) or not ranges:
        return "—", "—"
    where = "; ".join(f"{n} [{_fmt(r.get('low'))}, {_fmt(r.get('high'))}]"
                      for n, r in ranges.items() if isinstance(r, dict))
    why = "; ".join(str(r.get("reason", "")) for r in ranges.values() if isinstance(r, dict))
    return where or "—", why or "—"


def ladder_html(verdict: dict[str, Any]) -> str:
    """One row per ladder scale: size, budget, search range and why, best lr, tuned loss, seeds."""
    rows = []
    for s in _scales(verdict):
        where, why = _ranges(s)
        rows.append([str(s.get("name", "")), _fmt(s.get("N")), _fmt(s.get("D")), _fmt(s.get("C")),
                     str(s["trials"]) if s.get("trials") is not None else "—", where, why,
                     _fmt(s.get("best_lr")), _fmt(s.get("loss"), ".4f"), _losses(s.get("seed_losses")) or "—",
                     _fmt(s.get("seed_sd"), ".4f")])
    if not rows:
        return "<p>No ladder scale is recorded.</p>"
    return _table(["scale", "N", "D", "C", "trials", "search range", "why this range", "best lr",
                   "loss (median over seeds)", "seed losses", "seed sd"], rows, "ladder")


def verdict_html(verdict: dict[str, Any]) -> str:
    """The target's prediction and, once its runs finished, prediction against measurement."""
    target = verdict.get("target")
    v = verdict.get("verdict")
    if not target:
        return "<p>No target was predicted.</p>"
    rows = [["target budget C", _fmt(target.get("C"))],
            ["predicted model", f"N={_fmt(target.get('N'))} (width {target.get('width', '—')}), "
                                f"D={_fmt(target.get('D'))}"],
            ["compute-optimal N (95% interval)", f"{_fmt(target.get('N_opt'))} "
                                                 f"{_interval(target.get('N_opt_interval'))}".strip()]]
    lr = f"{_fmt(target.get('lr'))} {_interval(target.get('lr_interval'))}".strip()
    if target.get("lr_note"):
        lr += f" ({target['lr_note']})"
    rows.append(["predicted lr (95% interval)", lr])
    if _finite(target.get("batch_size")):
        rows.append(["predicted batch size (95% interval)",
                     f"{_fmt(target['batch_size'])} {_interval(target.get('batch_size_interval'))}".strip()])
    pred = v.get("predicted_loss") if v else target.get("loss")
    iv = v.get("interval") if v else target.get("loss_interval")
    rows.append(["predicted loss (95% interval)", f"{_fmt(pred, '.4f')} {_interval(iv, '.4f')}".strip()])
    if not v:
        rows.append(["measured loss", "— (no verification runs)"])
        return _table(["", "value"], rows, "verdict")
    if v.get("measured_loss") is None:
        rows.append(["measured loss", "— (no verification run has finished)"])
        return _table(["", "value"], rows, "verdict")
    rows += [["measured loss (seeds)", f"{_fmt(v['measured_loss'], '.4f')} ({_losses(v.get('seed_losses'))})"],
             ["relative error (measured / predicted - 1)", _pct(v.get("relative_error"))],
             ["inside the 95% interval", _yes(v.get("inside_interval"))]]
    for role, n in (v.get("neighbours") or {}).items():
        name = NEIGHBOUR_NAMES.get(role, role)
        loss = (f"loss {_fmt(n.get('loss'), '.4f')} (seeds {_losses(n.get('seed_losses'))}), "
                f"{_pct(n.get('gap_relative'))} vs the predicted N" if n.get("loss") is not None
                else "not measured")
        rows.append([f"IsoFLOP neighbour {name}",
                     f"N={_fmt(n.get('N'))} (width {n.get('width', '—')}), D={_fmt(n.get('D'))}: {loss}; "
                     f"predicted {_fmt(n.get('predicted_loss'), '.4f')}"])
    if "beats_neighbours" in v:
        rows += [["predicted N no worse than its neighbours beyond noise", _yes(v.get("beats_neighbours"))],
                 ["predicted N better than both neighbours beyond noise",
                  _yes(v.get("beats_neighbours_strictly"))]]
    rows.append(["noise margin", f"±{_pct(v.get('noise_relative'), '.2f')} ({NOISE_SDS:g} x the larger relative "
                                 f"seed sd: ladder {_pct((verdict.get('noise') or {}).get('seed_sd_relative'), '.2f')}"
                                 f", target {_pct(v.get('seed_sd_relative'), '.2f')})"])
    if "lr_regret" in v:
        scan = ", ".join(f"{s['role']} {_fmt(s.get('lr'))}: {_fmt(s.get('loss'), '.4f')}"
                         for s in v.get("lr_scan") or [])
        rows.append(["learning-rate regret (vs the best of the scan)", f"{_pct(v['lr_regret'], '.3f')} ({scan})"])
    rows.append(["verification complete", _yes(v.get("complete"))])
    return _table(["", "value"], rows, "verdict")


def edges_html(verdict: dict[str, Any]) -> str:
    """The scales whose best value was the smallest or largest tried (left out of the law)."""
    hp = (verdict.get("laws") or {}).get("hparams")
    if not hp:
        return "<p>Edge optima: no lr law was fitted.</p>"
    edges = (hp.get("metrics") or {}).get("edges") or []
    if not edges:
        return "<p>Edge optima: none; every scale's optimum lies inside the values it tried.</p>"
    items = "".join(
        f"<li>{html.escape(str(e.get('quantity')))} at N={_fmt(e.get('N'))}, D={_fmt(e.get('D'))}, "
        f"C={_fmt(e.get('C'))}: best {_fmt(e.get('value'))} (loss {_fmt(e.get('loss'), '.4f')}) is the "
        f"{'largest' if e.get('side') == 'high' else 'smallest'} value tried; left out of the law</li>"
        for e in edges)
    return f"<p>Edge optima ({len(edges)}):</p><ul class=edges>{items}</ul>"


def study_section(verdict: dict[str, Any], table: Optional[pd.DataFrame], out: Path,
                  folder: Optional[Path] = None, all_runs: Optional[pd.DataFrame] = None,
                  img=None) -> tuple[str, dict[str, Path]]:
    """The report's "Scaling study" HTML and its plots (`study_loss.png`, `study_lr.png` in
    `out`). `table` is the full run table, verification runs included; `img` turns a PNG into
    HTML."""
    out = Path(out)
    loss, hp = study_laws(verdict, folder)
    plots = {"study_loss": plot_study_loss(verdict, table, out / "study_loss.png", loss),
             "study_lr": plot_study_lr(verdict, table, out / "study_lr.png", hp, all_runs)}
    parts = [f"<h2>Scaling study {html.escape(str(verdict.get('study', '')))}</h2>"]
    if verdict.get("error"):
        parts.append(f"<p class=error><b>The study stopped early:</b> {html.escape(str(verdict['error']))}</p>")
    if img is not None:
        parts += [img(p) for p in plots.values()]
    parts += ["<h3>Ladder</h3>", ladder_html(verdict), edges_html(verdict),
              "<h3>Prediction and verdict</h3>", verdict_html(verdict)]
    return "".join(parts), plots
