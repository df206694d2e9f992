"""The report's page, `index.html`: one self-contained file (the figures inlined), laid out by the
template `templates/report.html`.

The template escapes every value (jinja2's autoescaping): the source's name, the study's name,
notes and error texts come from the user's files and folders. The only HTML that goes in as it
is comes from pandas' `to_html`, which escapes the cells itself.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import jinja2
import pandas as pd
from markupsafe import Markup

from .findings import Findings
from .laws import Law
from .scaling_report import FIGURE_CAPTIONS, LADDER_COLUMNS, StudySection
from .sensitivity import importance_table

TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                               autoescape=True, trim_blocks=True, lstrip_blocks=True,
                               undefined=jinja2.StrictUndefined)


@dataclass
class LawView:
    """A fitted law as the page shows it: its form, (parameter, value, interval) rows, and the
    table of how it was checked or chosen, where it has one."""

    name: str
    form: str
    params: list[tuple[str, str, str]]
    points: int
    quality: str = ""  # how closely it fits (rmse_log), over how many runs where it counts them
    detail_title: str = ""
    detail: Optional[Markup] = None

    @classmethod
    def of(cls, name: str, law: Law) -> LawView:
        params = [(k, f"{v:.6g}", "[%.4g, %.4g]" % tuple(law.ci_[k]) if k in law.ci_ else "")
                  for k, v in law.params_.items()]
        quality = [f"rmse_log {law.metrics_['rmse_log']:.4g}"] if "rmse_log" in law.metrics_ else []
        quality += [f"{law.metrics_['runs']} runs"] if "runs" in law.metrics_ else []
        lr = law.metrics_.get("lr_against_dense")  # the sparsity law's: MoE lr* against the dense law
        quality += [lr["statement"] if isinstance(lr, dict) else f"lr against dense {lr}"] if lr else []
        view = cls(name, law.form, params, law.n_points_, "; ".join(quality))
        if "selection" in law.metrics_:
            view.detail_title = "Form selection (held-out largest N):"
            view.detail = frame_html(pd.DataFrame(law.metrics_["selection"]), "%.4g")
        elif "leave_one_n_out" in law.metrics_:
            regret = pd.DataFrame(law.metrics_["leave_one_n_out"])
            regret[["mean_regret", "max_regret"]] *= 100
            view.detail_title = "Leave-one-N-out regret (%):"
            view.detail = frame_html(regret, "%.3f")
        return view


def render_page(found: Findings, figures: dict[str, Path], study: Optional[StudySection] = None,
                study_figures: Optional[dict[str, Path]] = None) -> str:
    """The page: the table's summary, the scaling study's section, the figures, the fits and
    the sensitivity tables."""
    tables = found.tables
    return TEMPLATES.get_template("report.html").render(
        found=found, study=study, ladder_columns=LADDER_COLUMNS,
        study_figures={name: image_data(path) for name, path in (study_figures or {}).items()},
        study_captions=FIGURE_CAPTIONS,
        figures={name: image_data(path) for name, path in figures.items()},
        laws=[LawView.of(name, law) for name, law in found.laws.items()],
        sensitivity=frame_html(tables["lr_sensitivity"], "%.4g") if "lr_sensitivity" in tables else None,
        importance=[(ev, frame_html(importance_table(tables["importance"], ev), "%.3g"))
                    for ev in tables["importance"]["evaluator"].unique()] if "importance" in tables else [])


def image_data(path: Path) -> str:
    """A PNG file as base64, for a `data:` URL: the page needs no file beside it."""
    return base64.b64encode(Path(path).read_bytes()).decode()


def frame_html(frame: pd.DataFrame, float_format: str) -> Markup:
    """A table as pandas writes it, cells escaped by pandas (`escape=True`, its default)."""
    return Markup(frame.to_html(index=False, float_format=float_format))
