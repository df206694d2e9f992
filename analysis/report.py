"""`scalelab report`: fits, sensitivity tables, PNG figures, one self-contained HTML page, a W&B run.

Everything here reads a canonical run table (see table.py) and writes files; nothing is fitted
that `scalelab fit` could not fit the same way. The steps are modules of their own: what the
report computes (`findings`), its figures (`figures`, and `scaling_figures` for a scaling
study), its page (`page`), the W&B analysis run (`analysis_run`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from scalelab.record import write_atomic

from .errors import AnalysisError
from .figures import draw_figures
from .findings import analyse
from .laws.base import strict_json
from .page import render_page
from .scaling_figures import draw_study_figures
from .scaling_report import curve_fit, read_study, study_section, without_verification
from .table import warn


def write_report(table: pd.DataFrame, out: str | Path, *, bootstrap: int = 0, seed: int = 0,
                 all_runs: pd.DataFrame | None = None, use_wandb: bool = False,
                 wandb_project: str | None = None, study: str | Path | None = None,
                 source_runs: int = 0) -> dict[str, Path]:
    """Write figures, index.html and fits.json into `out`; optionally a W&B analysis run.

    A scaling study's folder (`study`, else the table's source when it holds verdict.json)
    adds a "Scaling study" section; its verification runs stay out of the other fits, which
    they would otherwise test against themselves. Its curve law (through the ladder's best loss
    curves) is listed with the other laws, or why it could not be fitted. `source_runs`: how many
    runs the source holds, every status (the W&B dashboards' run limits).
    """
    if len(table) == 0:
        raise AnalysisError("the report got an empty table")
    if use_wandb:
        # Imported here: only `--wandb` needs wandb, and it adds over half a second to start-up.
        from .analysis_run import log_analysis_run, wandb_place

        wandb_place(table, wandb_project)  # runs of two W&B projects: refused before any fitting
    out = report_folder(out)
    scaling = read_study(study if study is not None else table.attrs.get("source"))
    study_figures, curve = {}, None
    if scaling is not None and scaling.verdict is not None:  # drawn with the verification runs
        curve = curve_fit(scaling.folder, table, bootstrap=min(bootstrap, 200), seed=seed)
        study_figures = draw_study_figures(scaling.verdict, table, out, scaling.folder, all_runs, curve)
    table, all_runs = leave_out_verification(table, all_runs)
    found = analyse(table, bootstrap=bootstrap, seed=seed, all_runs=all_runs)
    if curve is not None and curve.law is not None:
        found.laws["curve"] = curve.law
    elif curve is not None:
        found.errors["curve"] = curve.error
    for name, err in found.errors.items():
        warn(f"{name}: {err}")
    figures = draw_figures(table, found, out)
    fits = found.to_dict() | ({"study": scaling.verdict} if scaling and scaling.verdict is not None else {})
    write_atomic(out / "fits.json", strict_json(fits))
    section = study_section(scaling) if scaling is not None else None
    (out / "index.html").write_text(render_page(found, figures, section, study_figures))
    files = {"index": out / "index.html", "fits": out / "fits.json", **study_figures, **figures}
    if use_wandb:
        files.update(log_analysis_run(table, found, {**study_figures, **figures}, out, project=wandb_project,
                                      verdict=scaling.verdict if scaling else None, source_runs=source_runs))
    return files


def report_folder(out: str | Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file of that name, a file on the way, no permission
        raise AnalysisError(f"cannot make the report folder {out} ({e.strerror}); name a new "
                            "or existing folder") from None
    return out


def leave_out_verification(table: pd.DataFrame, all_runs: pd.DataFrame | None
                           ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The tables to fit: a scaling study's verification runs are the laws' held-out test, named
    in the table's notes."""
    kept, held = without_verification(table)
    all_runs, _ = without_verification(all_runs)
    if held:
        kept.attrs["notes"] = [*table.attrs.get("notes", []),
                               f"{held} verification run(s) at the scaling study's target budget "
                               "left out of the fits below: they are the laws' held-out test"]
    return kept, all_runs
