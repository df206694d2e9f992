"""The W&B side of `scalelab report --wandb`: one analysis run, and the study's dashboards.

The analysis run is named after the source and grouped with the ladder or study it analyses; its
config names the training runs it used (run ids). It logs the fits as one W&B Table (`fits`:
parameter, value, interval, points, fit quality, the form chosen, and why a law could not be
fitted), the report's other tables and plots, and `fits.json` + `index.html` as an artifact. Its
files go under the report folder, offline unless W&B is online (`WANDB_MODE`).

It goes to the runs' own W&B project (their record's `logger.project`, and `logger.entity`), so that
the dashboards find them; `--project` overrides it, and a table whose runs went to two projects is
refused. It also logs the fitted frontier (`frontier`) as history rows on x = training FLOPs and as
a Table. Each report makes a new analysis run, and the dashboards name it by id: a re-run replaces
what they show, and its older offline copy in the report folder, never uploaded as the newest, is
removed (the run id is in the previous `wandb_dashboards.json`).

The workspace and report definitions (`dashboards.DashboardSpec`) are written beside the report;
online they are saved to W&B too, and their URLs returned. Offline, `scalelab sync` publishes
them with the runs once logged in.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import wandb

from scalelab.wandb_keys import ANALYSIS_JOB, BEST, FITS_COLUMNS, FITS_TABLE, FRONTIER, FRONTIER_TABLE, \
    FRONTIER_X, TARGET

from .dashboards import SPEC_FILE, TITLE_MAX, DashboardSpec, publish
from .errors import AnalysisError
from .findings import Findings
from .frontier import BEST_SERIES, MEASURED, PREDICTED, frontier_frame
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


def wandb_place(table: pd.DataFrame, project: str | None = None) -> tuple[str, str | None]:
    """(project, entity) of the analysis run: `project` if given, else the runs' own (their
    records' `logger.project` and `logger.entity`, among the runs that logged to W&B), else
    WANDB_PROJECT / WANDB_ENTITY, else `scalelab`. Runs of two projects or entities are refused:
    one dashboard cannot show them."""
    runs = table[table["logger"] == "wandb"] if "logger" in table.columns else table
    own = {}
    for key in ("project", "entity"):
        values = sorted(map(str, runs[key].dropna().unique())) if key in runs.columns else []
        if len(values) > 1 and not (key == "project" and project):
            raise AnalysisError(f"the runs were logged to {len(values)} W&B {key}s ({', '.join(values)}): "
                                f"report one ladder at a time{', or name one with --project' if key == 'project' else ''}")
        own[key] = values[0] if values else None
    return (project or own["project"] or os.environ.get("WANDB_PROJECT") or "scalelab",
            own["entity"] or os.environ.get("WANDB_ENTITY"))


def log_keys(table: pd.DataFrame, searched: list[str]) -> tuple[str, ...]:
    """The searched keys to draw on log axes: positive values spanning a factor 10 or more, as a
    log-searched learning rate does (the records do not say how a key was searched)."""
    out = []
    for key in searched:
        values = pd.to_numeric(table[key], errors="coerce").dropna() if key in table.columns else pd.Series([])
        if len(values) and values.min() > 0 and values.max() >= 10 * values.min():
            out.append(key)
    return tuple(out)


def log_frontier(run, frame: pd.DataFrame) -> None:
    """The frontier's points as history rows, each series in order of C, and as one Table."""
    key = {BEST_SERIES: BEST, PREDICTED: TARGET[0], MEASURED: TARGET[1]}
    for row in frame.itertuples():
        if row.series in key:
            run.log({FRONTIER_X: row.C, key[row.series]: row.loss})
        else:  # the law, with its band
            run.log({FRONTIER_X: row.C, **dict(zip(FRONTIER, (row.loss, row.low, row.high)))})
    run.log({FRONTIER_TABLE: wandb.Table(dataframe=frame.astype({"run_id": str}))})


def _drop_previous(out: Path) -> None:
    """The previous report's offline analysis run in this folder: the new one replaces it."""
    try:
        previous = DashboardSpec.read(out / SPEC_FILE).analysis_id
    except AnalysisError:  # no earlier definition, or one from before the runs were named by id
        return
    for folder in (out / "wandb").glob(f"offline-run-*-{previous}"):
        shutil.rmtree(folder, ignore_errors=True)


def log_analysis_run(table: pd.DataFrame, found: Findings, plots: dict[str, Path], out: Path,
                     project: str | None = None, verdict: dict | None = None,
                     source_runs: int = 0) -> dict[str, Any]:
    """Log the analysis run and write (and, online, publish) the dashboards; what was made where.
    `verdict`: a scaling study's (its target goes on the frontier); `source_runs`: how many runs
    the source holds, every status (the dashboards' run limits)."""
    mode = os.environ.get("WANDB_MODE", "offline")
    project, entity = wandb_place(table, project)
    source = str(table.attrs.get("source", "")).rstrip("/")
    ladder, study = _only(table, "ladder"), _only(table, "study")
    # one sweep's runs; records from before ladder ids have none, and are found by the name
    ladder_id = _only(table, "ladder_id") if ladder else None
    # the record's `hparams` holds each searched value by its config path (dotted)
    searched = [h for h in table.attrs.get("hparams", []) if "." in h]
    run_id = uuid.uuid4().hex[:8]  # a W&B run id: a new one per report (the dashboards name it)
    _drop_previous(out)
    run = wandb.init(project=project, entity=entity, id=run_id, job_type=ANALYSIS_JOB,
                     name=f"analysis of {Path(source).name or source}",
                     group=ladder or study, dir=str(out), mode=mode, reinit="finish_previous",
                     settings=wandb.Settings(silent=True),  # the command prints where its files went
                     config={"source": source, "runs": len(table), "ladder": ladder, "ladder_id": ladder_id,
                             "study": study, "searched": searched,
                             "run_ids": sorted(table["run_id"].dropna().astype(str)) if "run_id" in table else []})
    try:
        run.log({FITS_TABLE: wandb.Table(dataframe=fits_frame(found.laws, found.errors))})
        log_frontier(run, frontier_frame(table, found.laws, verdict))
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
    runs_key, runs_value = next((k, v) for k, v in (("ladder_id", ladder_id), ("ladder", ladder), ("study", study))
                                if v)
    name = f"scalelab: {ladder} ({ladder_id})" if ladder_id else f"scalelab: {ladder or study}"
    spec = DashboardSpec(project, entity, name[:TITLE_MAX], runs_key, runs_value, tuple(searched),
                         log_keys(table, searched),
                         runs=max(len(table), source_runs) + 1, analysis_id=run_id)
    made["dashboards"] = spec.write(out)
    if mode == "online":
        made.update(publish(spec))
    return made
