"""`scalelab report`: fits, sensitivity tables, PNG plots, one self-contained HTML, a W&B run.

Everything here reads a canonical run table (see table.py) and writes files; nothing is fitted
that `scalelab fit` could not fit the same way.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .errors import AnalysisError  # noqa: E402
from .laws import AutoLaw, ChinchillaLaw, HparamsLaw, PowerLaw  # noqa: E402
from .sensitivity import importance_by_scale, importance_table, lr_sensitivity  # noqa: E402
from .scaling_report import find_verdict, load_verdict, study_section, without_verification  # noqa: E402
from .table import best_per_cell, flop_convention, has_sweep, hparam_columns, warn  # noqa: E402


def analyse(table: pd.DataFrame, bootstrap: int = 0, seed: int = 0,
            all_runs: pd.DataFrame | None = None) -> dict[str, Any]:
    """Fit every law the table supports; collect sensitivity. Returns laws and tables."""
    res: dict[str, Any] = {"laws": {}, "errors": {}, "tables": {}}
    cells = best_per_cell(table)
    try:
        res["laws"]["chinchilla"] = ChinchillaLaw().fit(cells, bootstrap=bootstrap, seed=seed)
    except AnalysisError as e:
        res["errors"]["chinchilla"] = str(e)
    try:
        res["laws"]["auto"] = AutoLaw().fit(cells)
    except AnalysisError as e:
        res["errors"]["auto"] = str(e)
    try:
        frontier = cells.groupby("C", as_index=False)["loss"].min()
        frontier.attrs = dict(cells.attrs)  # the records' FLOP convention goes with their C
        res["laws"]["power"] = PowerLaw("C", "loss").fit(frontier, bootstrap=min(bootstrap, 200),
                                                         seed=seed)
    except AnalysisError as e:
        res["errors"]["power"] = str(e)
    if {"lr", "batch_size"} <= set(table.columns) and has_sweep(table):
        for opt in ("near-best", "surface"):
            try:
                res["laws"][f"hparams_{opt}"] = HparamsLaw("steplaw", opt).fit(
                    table, bootstrap=min(bootstrap, 200), seed=seed)
            except AnalysisError as e:
                res["errors"][f"hparams_{opt}"] = str(e)
    sens_src = all_runs if all_runs is not None else table
    if "lr" in sens_src.columns and sens_src["lr"].nunique() > 1:
        res["tables"]["lr_sensitivity"] = lr_sensitivity(sens_src)
        if hparam_columns(sens_src):
            try:
                res["tables"]["importance"] = importance_by_scale(sens_src)
            except AnalysisError as e:
                res["errors"]["importance"] = str(e)
    return res


# ----------------------------------------------------------------------------------- plots
def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss_vs_compute(table, res, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    Ns = np.sort(table["N"].unique())
    cmap = plt.get_cmap("viridis")
    cells = best_per_cell(table)
    for i, N in enumerate(Ns):
        sub = cells[cells["N"] == N].sort_values("C")
        ax.plot(sub["C"], sub["loss"], "o-", color=cmap(i / max(len(Ns) - 1, 1)), ms=4,
                label=f"N={N:.3g}", lw=1)
    C = np.geomspace(table["C"].min() / 2, table["C"].max() * 4, 100)
    law = res["laws"].get("chinchilla")
    if law is not None:
        n, d = law.compute_optimal(C)
        ax.plot(C, law.predict(n, d), "k--", lw=1.5, label="Chinchilla frontier L(N_opt, D_opt)")
    elif "power" in res["laws"]:
        ax.plot(C, res["laws"]["power"].predict(C), "k--", label="power-law frontier")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="loss (best per cell)",
           title="Loss against compute")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_loss_vs_lr(table, res, path: Path) -> Path:
    cells = list(table.groupby(["N", "D"], sort=True))
    cols = min(4, len(cells))
    rows = int(np.ceil(len(cells) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False)
    law = res["laws"].get("hparams_near-best")
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
    return _save(fig, path)


def plot_hparams_vs_scale(table, res, path: Path) -> Path:
    law = res["laws"].get("hparams_near-best") or res["laws"].get("hparams_surface")
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
                              for P in law._sampled_params()])
            for k, ax in enumerate(axes):
                lo, hi = np.percentile(draws[:, k], [2.5, 97.5], axis=0)
                ax.fill_between(Ds, lo, hi, color=color, alpha=0.15)
    unit = law.inputs_.get("batch_unit", "sequences")
    axes[0].set(xscale="log", yscale="log", xlabel="tokens D", ylabel="lr*",
                title=f"lr*: {law.form.split(';')[0]}")
    axes[1].set(xscale="log", yscale="log", xlabel="tokens D", ylabel=f"batch size* ({unit})",
                title="bs*: " + law.form.split(';')[1].strip())
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_importance(long: pd.DataFrame, path: Path) -> Path:
    evs = list(long["evaluator"].unique())
    fig, axes = plt.subplots(1, len(evs), figsize=(5 * len(evs), 3.8), squeeze=False)
    for ax, ev in zip(axes.flat, evs):
        wide = importance_table(long, ev)
        byN = wide.drop(columns=["D"]).groupby("N").mean()
        for p in byN.columns:
            ax.plot(byN.index, byN[p], "o-", label=p)
        ax.set(xscale="log", xlabel="N", ylabel="importance (mean over D)", title=ev, ylim=(0, 1))
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_sensitivity(sens: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    g = sens.groupby("N")[["lr_sensitivity", "basin_width_log10"]].mean()  # mean over D
    axes[0].plot(g.index, g["lr_sensitivity"], "o-", label="all D")
    axes[1].plot(g.index, g["basin_width_log10"], "o-")
    axes[0].scatter(sens["N"], sens["lr_sensitivity"], s=8, alpha=0.4)
    axes[1].scatter(sens["N"], sens["basin_width_log10"], s=8, alpha=0.4)
    axes[0].set(xscale="log", xlabel="N", ylabel="LR sensitivity (Wortsman)")
    axes[1].set(xscale="log", xlabel="N", ylabel="basin width, log10 lr (within 1%)")
    return _save(fig, path)


def plot_residuals(table, res, path: Path) -> Path | None:
    law = res["laws"].get("chinchilla")
    if law is None:
        return None
    cells = best_per_cell(table)
    r = np.log(cells["loss"]) - np.log(law.predict(cells["N"], cells["D"]))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.scatter(cells["C"], r, s=12, c=np.log10(cells["N"]), cmap="viridis")
    ax.axhline(0, color="k", lw=1)
    ax.set(xscale="log", xlabel="compute C", ylabel="log(observed / fitted)",
           title="Chinchilla-law residuals")
    return _save(fig, path)


# ----------------------------------------------------------------------------------- outputs
def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _law_html(name: str, law) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td><td>"
                   f"{'' if k not in law.ci_ else '[%.4g, %.4g]' % tuple(law.ci_[k])}</td></tr>"
                   for k, v in law.params_.items())
    extra = ""
    if "leave_one_n_out" in law.metrics_:
        t = pd.DataFrame(law.metrics_["leave_one_n_out"])
        t[["mean_regret", "max_regret"]] *= 100
        extra = "<p>Leave-one-N-out regret (%):</p>" + t.to_html(index=False, float_format="%.3f")
    if "selection" in law.metrics_:
        extra = "<p>Form selection (held-out largest N):</p>" + \
            pd.DataFrame(law.metrics_["selection"]).to_html(index=False, float_format="%.4g")
    return (f"<h3>{html.escape(name)}: <code>{html.escape(law.form)}</code></h3>"
            f"<table><tr><th>param</th><th>value</th><th>CI</th></tr>{rows}</table>"
            f"<p>points: {law.n_points_}</p>{extra}")


def write_report(table: pd.DataFrame, out: str | Path, *, bootstrap: int = 0, seed: int = 0,
                 all_runs: pd.DataFrame | None = None, use_wandb: bool = False,
                 wandb_project: str | None = None, study: str | Path | None = None) -> dict[str, Path]:
    """Write plots, index.html and fits.json into `out`; optionally a W&B analysis run.

    A scaling study's folder (`study`, else the table's source when it holds verdict.json)
    adds a "Scaling study" section; its verification runs stay out of the other fits, which
    they would otherwise test against themselves.
    """
    if len(table) == 0:
        raise AnalysisError("the report got an empty table")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file of that name, a file on the way, no permission
        raise AnalysisError(f"cannot make the report folder {out} ({e.strerror}); name a new "
                            "or existing folder") from None
    verdict_path = find_verdict(study if study is not None else table.attrs.get("source"))
    study_html, study_plots, verdict = "", {}, None
    if verdict_path is not None:
        try:
            verdict = load_verdict(verdict_path)
        except AnalysisError as e:
            warn(str(e))
            study_html = f"<h2>Scaling study</h2><p class=error>{html.escape(str(e))}</p>"
    if verdict is not None:
        study_html, study_plots = study_section(verdict, table, out, folder=verdict_path.parent,
                                                all_runs=all_runs, img=_img)
    full_table = table
    table, held = without_verification(table)
    all_runs, _ = without_verification(all_runs)
    if held:
        table.attrs["notes"] = [*full_table.attrs.get("notes", []),
                                f"{held} verification run(s) at the scaling study's target budget "
                                "left out of the fits below: they are the laws' held-out test"]
    res = analyse(table, bootstrap=bootstrap, seed=seed, all_runs=all_runs)
    for name, err in res["errors"].items():
        warn(f"{name}: {err}")
    plots: dict[str, Path] = {}
    plots["loss_vs_compute"] = plot_loss_vs_compute(table, res, out / "loss_vs_compute.png")
    if "lr" in table.columns and table["lr"].nunique() > 1:
        plots["loss_vs_lr"] = plot_loss_vs_lr(table, res, out / "loss_vs_lr.png")
    if any(k.startswith("hparams") for k in res["laws"]):
        plots["hparams_vs_scale"] = plot_hparams_vs_scale(table, res, out / "hparams_vs_scale.png")
    if "importance" in res["tables"]:
        plots["importance"] = plot_importance(res["tables"]["importance"], out / "importance.png")
    if "lr_sensitivity" in res["tables"]:
        plots["lr_sensitivity"] = plot_sensitivity(res["tables"]["lr_sensitivity"],
                                                   out / "lr_sensitivity.png")
    p = plot_residuals(table, res, out / "residuals.png")
    if p:
        plots["residuals"] = p
    fits = {name: law.to_dict() for name, law in res["laws"].items()}
    fits["_tables"] = {k: v.to_dict(orient="records") for k, v in res["tables"].items()}
    fits["_notes"] = list(table.attrs.get("notes", []))
    fits["_errors"] = res["errors"]
    if verdict is not None:
        fits["study"] = verdict
    (out / "fits.json").write_text(json.dumps(fits, indent=2, default=float))
    body = [f"<h1>scalelab analysis</h1><p>source: {html.escape(str(table.attrs.get('source', '')))}"
            f"; runs: {len(table)}; scales (N, D): {table.groupby(['N', 'D']).ngroups}</p>"]
    body += [f"<p class=note>{html.escape(n)}</p>" for n in table.attrs.get("notes", [])]
    body += [f"<p>FLOPs: {html.escape(flop_convention(table).describe())}</p>"]
    body += [study_html]
    body += ["<h2>Plots</h2>"] + [f"<h3>{k}</h3>{_img(v)}" for k, v in plots.items()]
    body += ["<h2>Fits</h2>"] + [_law_html(k, v) for k, v in res["laws"].items()]
    body += [f"<p>{html.escape(k)} not fitted: {html.escape(v)}</p>" for k, v in res["errors"].items()]
    if "lr_sensitivity" in res["tables"]:
        body += ["<h2>Learning-rate sensitivity</h2>",
                 res["tables"]["lr_sensitivity"].to_html(index=False, float_format="%.4g")]
    if "importance" in res["tables"]:
        for ev in res["tables"]["importance"]["evaluator"].unique():
            body += [f"<h2>Importance by scale ({ev})</h2>",
                     importance_table(res["tables"]["importance"], ev).to_html(
                         index=False, float_format="%.3g")]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}.error{color:#b00}")
    (out / "index.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'>"
                                    f"<title>scalelab analysis</title><style>{style}</style>"
                                    f"</head><body>{''.join(body)}</body></html>")
    files = {"index": out / "index.html", "fits": out / "fits.json", **study_plots, **plots}
    if use_wandb:
        # Imported here: only `--wandb` needs wandb, and it adds over half a second to start-up.
        from .analysis_run import log_analysis_run

        files.update(log_analysis_run(table, res, {**study_plots, **plots}, out, project=wandb_project))
    return files
