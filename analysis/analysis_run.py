"""The W&B side of `scalelab report --wandb`: one analysis run, and the study's dashboards.

The analysis run is named after the source and grouped with the ladder or study it analyses; its
config names the training runs it used (run ids). It logs the fits as one W&B Table (`fits`:
parameter, value, interval, points, fit quality, the form chosen, and why a law could not be
fitted), the report's other tables and plots, and `fits.json` + `index.html` as an artifact. Its
files go under the report folder, offline unless W&B is online (`WANDB_MODE`).

The workspace and report definitions (`dashboards.DashboardSpec`) are written beside the report;
online they are saved to W&B too, and their URLs returned. Offline, `scalelab sync` publishes
them with the runs once logged in.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import wandb

from scalelab.wandb_keys import ANALYSIS_JOB, FITS_COLUMNS, FITS_TABLE

from .dashboards import DashboardSpec, publish
from .findings import Findings
from .laws.base import Law

# How well each kind of law fits, by the metric it records (log-space residuals).
QUALITY = ("rmse_log", "lr_resid_sd_log", "N_resid_sd_log")


def fits_frame(laws: dict[str, Law], errors: dict[str, str]) -> pd.DataFrame:
    """One row per fitted parameter, and one per law that could not be fitted (with the reason)."""
    rows = []
    for name, law in laws.items():
        metric = next((k for k in QUALITY if k in law.metrics_), None)
        quality = f"{metric} {law.metrics_[metric]:.4g}" if metric else None
        for param, value in law.params_.items():
            low, high = law.ci_.get(param, (math.nan, math.nan))
            rows.append({"law": name, "form": law.form, "parameter": param, "value": float(value),
                         "ci_low": float(low), "ci_high": float(high), "n_points": law.n_points_,
                         "quality": quality, "chosen": law.metrics_.get("winner"), "error": None})
    rows += [{"law": name, "error": error} for name, error in errors.items()]
    return pd.DataFrame(rows, columns=list(FITS_COLUMNS))


def _only(table: pd.DataFrame, column: str) -> str | None:
    values = table[column].dropna().unique() if column in table.columns else []
    return str(values[0]) if len(values) == 1 else None


def log_analysis_run(table: pd.DataFrame, found: Findings, plots: dict[str, Path], out: Path,
                     project: str | None = None) -> dict[str, Any]:
    """Log the analysis run and write (and, online, publish) the dashboards; what was made where."""
    mode = os.environ.get("WANDB_MODE", "offline")
    project = project or os.environ.get("WANDB_PROJECT", "scalelab")
    source = str(table.attrs.get("source", "")).rstrip("/")
    ladder, study = _only(table, "ladder"), _only(table, "study")
    # the record's `hparams` holds each searched value by its config path (dotted)
    searched = [h for h in table.attrs.get("hparams", []) if "." in h]
    run = wandb.init(project=project, job_type=ANALYSIS_JOB, name=f"analysis of {Path(source).name or source}",
                     group=ladder or study, dir=str(out), mode=mode, reinit="finish_previous",
                     settings=wandb.Settings(silent=True),  # the command prints where its files went
                     config={"source": source, "runs": len(table), "ladder": ladder, "study": study,
                             "searched": searched,
                             "run_ids": sorted(table["run_id"].dropna().astype(str)) if "run_id" in table else []})
    try:
        run.log({FITS_TABLE: wandb.Table(dataframe=fits_frame(found.laws, found.errors))})
        for name, t in found.tables.items():
            run.log({f"tables/{name}": wandb.Table(dataframe=t.astype(
                {c: str for c in t.columns if t[c].dtype == object}))})
        run.log({f"plots/{name}": wandb.Image(str(p)) for name, p in plots.items()})
        artifact = wandb.Artifact(re.sub(r"[^\w.-]+", "-", f"analysis-{ladder or study or 'runs'}"), type="analysis")
        for name in ("fits.json", "index.html"):
            artifact.add_file(str(out / name))
        run.log_artifact(artifact)
        made = {"wandb_dir": Path(run.dir).parent}
    finally:
        run.finish()
    if ladder is None and study is None:
        made["dashboards"] = "none: the runs belong to no single ladder or study"
        return made
    spec = DashboardSpec(project, os.environ.get("WANDB_ENTITY"), f"scalelab: {ladder or study}",
                         "ladder" if ladder else "study", ladder or study, tuple(searched))
    made["dashboards"] = spec.write(out)
    if mode == "online":
        made.update(publish(spec))
    return made
