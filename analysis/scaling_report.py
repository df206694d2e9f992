"""A scaling study's section of `scalelab report`: what it reads and what it says.

A `sweeps=ladder` study leaves `verdict.json` in its folder (see `scalelab.sweeps.scaling`). Its
verification runs at the target budget are the held-out test of the laws, so the report's other
fits leave them out (`without_verification`) and this section shows them against the
prediction. The section's text (its ladder, edge optima, prediction and verdict, as rows of
strings) is a function of the parsed verdict; `scaling_figures` draws it and `page` lays it out.
A verdict that stopped early (an `error`, no `target` or `verdict`) shows what it has.

The curve law (`ladder.curve_law`) is fitted here from the study's run records: through every
point of each ladder scale's best curves, never the verification runs, whose curve at the
predicted optimum is its held-out test (`curve_fit`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from scalelab.record import RecordError, find, read

from .curves import curve_rows
from .errors import AnalysisError
from .ladder import (DOUBLE, HALF, LR_HIGH, LR_LOW, NOISE_SDS, OPTIMUM, TARGET_ROLES, VERDICT_FILE, best_curves,
                     cells, curve_law, roles)
from .laws import CurveLaw, HparamsLaw, Law, load_fit
from .table import warn

LR = "optim.lr"
NEIGHBOUR_NAMES = {HALF: "N/2", DOUBLE: "2N"}
# the one-line caption under a study figure, by its name (`scaling_figures`)
FIGURE_CAPTIONS = {
    "curve_fits": "The curve law against the measured curves: each ladder scale's best configuration, its "
                  "validation loss against tokens (dots, coloured by N; hollow: the transient the fit leaves "
                  "out) and the law's loss along the same run (line); in red, where the study has them, the "
                  "target's verification runs at the predicted optimum against the law fitted on the ladder "
                  "alone (its error at the last point in the legend)."}
LADDER_COLUMNS = ["scale", "N", "D", "C", "trials", "search range", "why this range", "best lr",
                  "loss (median over seeds)", "seed losses", "seed sd"]


@dataclass
class Study:
    """A scaling study's folder as the report reads it: its verdict, or why that could not be read."""

    folder: Path
    verdict: Optional[dict[str, Any]] = None
    unreadable: Optional[str] = None


@dataclass
class StudySection:
    """What the report's "Scaling study" section says, as text (rows of the tables it shows)."""

    name: str = ""
    unreadable: Optional[str] = None  # verdict.json could not be read: the section says only why
    stopped: Optional[str] = None  # why the study stopped early
    ladder: list[list[str]] = field(default_factory=list)  # one row per scale, LADDER_COLUMNS
    edges: tuple[str, list[str]] = ("", [])  # a sentence, then one line per edge optimum
    verdict: list[list[str]] = field(default_factory=list)  # (what, value); none without a target


# ----------------------------------------------------------------------------------- inputs
def read_study(source: Any) -> Optional[Study]:
    """The study whose folder is the report's source (None when it is not one); an unreadable
    verdict is warned about and kept as the reason."""
    path = find_verdict(source)
    if path is None:
        return None
    try:
        return Study(path.parent, load_verdict(path))
    except AnalysisError as e:
        warn(str(e))
        return Study(path.parent, unreadable=str(e))


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


@dataclass
class CurveFit:
    """The curve law through the ladder's best curves, and the curves it is drawn against."""

    ladder: pd.DataFrame  # the curve rows (`curves.COLUMNS`, `role`) of each scale's best configuration
    target: pd.DataFrame  # the curve rows of the verification runs at the predicted optimum (never fitted)
    law: Optional[CurveLaw] = None
    error: Optional[str] = None  # why the law could not be fitted

    def target_error(self) -> Optional[dict[str, float]]:
        """At the target's last evaluation (its largest tokens): the measured loss (the median over
        the runs that reach it: its seeds), the law's and measured / predicted - 1; None without a
        law or a target curve."""
        if self.law is None or self.target.empty:
            return None
        end = self.target[self.target["tokens"] == self.target["tokens"].max()]
        last = end.sort_values("step").groupby("run").tail(1)
        measured = float(np.median(last["loss"].to_numpy(float)))
        predicted = float(np.median(self.law.predict_points(last)))
        return {"tokens": float(last["tokens"].max()), "measured": measured, "predicted": predicted,
                "relative_error": measured / predicted - 1}


def study_curves(folder: Path) -> pd.DataFrame:
    """The curve table (`curves.curve_rows`) of the study's runs that recorded a loss curve and
    a schedule, with each run's `role`. `load_curves` would stop at a record without a schedule;
    a record that cannot be read was named when the run table was loaded."""
    records = []
    for path in find(folder):
        try:
            rec = read(path)
        except RecordError:
            continue
        if rec.get("curve") and isinstance((rec.get("config") or {}).get("schedule"), dict):
            records.append(rec)
    curves = curve_rows(records)
    role = {rec["run_id"]: (rec["config"].get("trial") or {}).get("role") for rec in records}
    curves["role"] = curves["run"].map(role)
    return curves


def curve_fit(folder: Path, table: pd.DataFrame, bootstrap: int = 0, seed: int = 0) -> CurveFit:
    """The curve law through every point past the transient of each ladder scale's best
    configuration (`ladder.curve_law`; `table`, the run table, gives each scale's best), fitted
    without the verification runs; why not, where it cannot be fitted."""
    curves = study_curves(folder)
    held = curves["role"].isin(TARGET_ROLES).to_numpy()
    ladder, tuned = curves[~held], cells(table)
    fit = CurveFit(best_curves(ladder, tuned), curves[curves["role"] == OPTIMUM])
    if fit.ladder.empty:
        fit.error = "no ladder run recorded a loss curve and its schedule"
        return fit
    try:
        fit.law = curve_law(ladder, tuned, bootstrap=bootstrap, seed=seed)
    except AnalysisError as e:
        fit.error = str(e)
    return fit


# ----------------------------------------------------------------------------------- helpers
def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any, spec: str = ".4g") -> str:
    return format(x, spec) if finite(x) else "—"


def _pct(x: Any, spec: str = "+.2f") -> str:
    return f"{format(100 * x, spec)}%" if finite(x) else "—"


def interval_text(iv: Any, spec: str = ".4g") -> str:
    if isinstance(iv, (list, tuple)) and len(iv) == 2 and all(finite(v) for v in iv):
        return f"[{format(iv[0], spec)}, {format(iv[1], spec)}]"
    return ""


def _losses(xs: Any) -> str:
    return ", ".join(_fmt(x, ".4f") for x in xs or [])


def _yes(x: Any) -> str:
    return "—" if x is None else ("yes" if x else "no")


def scales_of(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in verdict.get("scales") or [] if isinstance(s, dict)]


def measured_target(verdict: dict[str, Any], table: Optional[pd.DataFrame] = None
                    ) -> dict[str, list[float]]:
    """The verification losses per role (optimum, half, double): the verdict's, else the table's."""
    v = verdict.get("verdict") or {}
    out: dict[str, list[float]] = {}
    if v.get("seed_losses"):
        out[OPTIMUM] = [float(x) for x in v["seed_losses"] if finite(x)]
    for role, n in (v.get("neighbours") or {}).items():
        if n.get("seed_losses"):
            out[role] = [float(x) for x in n["seed_losses"] if finite(x)]
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
        return [s for s in scan if finite(s.get("lr")) and finite(s.get("loss"))]
    if table is None or "role" not in table.columns or "seed" not in table.columns:
        return []
    runs = table[roles(table).isin((LR_LOW, OPTIMUM, LR_HIGH))]
    if runs.empty:
        return []
    first = runs[runs["seed"] == runs["seed"].min()]
    return [{"role": role, "lr": float(r.lr), "loss": float(r.loss)}
            for role in (LR_LOW, OPTIMUM, LR_HIGH) for r in first[roles(first) == role].itertuples()]


# ----------------------------------------------------------------------------------- text
def study_section(study: Study) -> StudySection:
    """The section's text: the ladder, the edge optima, the prediction and the verdict."""
    if study.verdict is None:
        return StudySection(unreadable=study.unreadable)
    v = study.verdict
    return StudySection(name=str(v.get("study", "")), stopped=str(v["error"]) if v.get("error") else None,
                        ladder=ladder_rows(v), edges=edge_optima(v), verdict=verdict_rows(v))


def _ranges(s: dict[str, Any]) -> tuple[str, str]:
    ranges = s.get("search_range") or {}
    if not isinstance(ranges, dict) or not ranges:
        return "—", "—"
    where = "; ".join(f"{n} [{_fmt(r.get('low'))}, {_fmt(r.get('high'))}]"
                      for n, r in ranges.items() if isinstance(r, dict))
    why = "; ".join(str(r.get("reason", "")) for r in ranges.values() if isinstance(r, dict))
    return where or "—", why or "—"


def ladder_rows(verdict: dict[str, Any]) -> list[list[str]]:
    """One row per ladder scale (`LADDER_COLUMNS`): size, budget, search range and why, best lr,
    tuned loss, seeds."""
    rows = []
    for s in scales_of(verdict):
        where, why = _ranges(s)
        rows.append([str(s.get("name", "")), _fmt(s.get("N")), _fmt(s.get("D")), _fmt(s.get("C")),
                     str(s["trials"]) if s.get("trials") is not None else "—", where, why,
                     _fmt(s.get("best_lr")), _fmt(s.get("loss"), ".4f"), _losses(s.get("seed_losses")) or "—",
                     _fmt(s.get("seed_sd"), ".4f")])
    return rows


def verdict_rows(verdict: dict[str, Any]) -> list[list[str]]:
    """(what, value) rows: the target's prediction and, once its runs finished, prediction against
    measurement; none when no target was predicted."""
    target = verdict.get("target")
    v = verdict.get("verdict")
    if not target:
        return []
    rows = [["target budget C", _fmt(target.get("C"))],
            ["predicted model", f"N={_fmt(target.get('N'))} (width {target.get('width', '—')}), "
                                f"D={_fmt(target.get('D'))}"],
            ["compute-optimal N (95% interval)", f"{_fmt(target.get('N_opt'))} "
                                                 f"{interval_text(target.get('N_opt_interval'))}".strip()]]
    lr = f"{_fmt(target.get('lr'))} {interval_text(target.get('lr_interval'))}".strip()
    if target.get("lr_note"):
        lr += f" ({target['lr_note']})"
    rows.append(["predicted lr (95% interval)", lr])
    if finite(target.get("batch_size")):
        rows.append(["predicted batch size (95% interval)",
                     f"{_fmt(target['batch_size'])} {interval_text(target.get('batch_size_interval'))}".strip()])
    pred = v.get("predicted_loss") if v else target.get("loss")
    iv = v.get("interval") if v else target.get("loss_interval")
    rows.append(["predicted loss (95% interval)", f"{_fmt(pred, '.4f')} {interval_text(iv, '.4f')}".strip()])
    if not v:
        return rows + [["measured loss", "— (no verification runs)"]]
    if v.get("measured_loss") is None:
        return rows + [["measured loss", "— (no verification run has finished)"]]
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
        scan = ", ".join(f"{s['role']} {_fmt(s.get('lr'))}: "
                         + ("diverged" if s.get("diverged") else _fmt(s.get("loss"), ".4f"))
                         for s in v.get("lr_scan") or [])
        rows.append(["learning-rate regret (vs the best of the scan)", f"{_pct(v['lr_regret'], '.3f')} ({scan})"])
    return rows + [["verification complete", _yes(v.get("complete"))]]


def edge_optima(verdict: dict[str, Any]) -> tuple[str, list[str]]:
    """The scales whose best value was the smallest or largest tried (left out of the law): a
    sentence, then one line each."""
    hp = (verdict.get("laws") or {}).get("hparams")
    if not hp:
        return "Edge optima: no lr law was fitted.", []
    edges = (hp.get("metrics") or {}).get("edges") or []
    if not edges:
        return "Edge optima: none; every scale's optimum lies inside the values it tried.", []
    return f"Edge optima ({len(edges)}):", [
        f"{e.get('quantity')} at N={_fmt(e.get('N'))}, D={_fmt(e.get('D'))}, C={_fmt(e.get('C'))}: best "
        f"{_fmt(e.get('value'))} (loss {_fmt(e.get('loss'), '.4f')}) is the "
        f"{'largest' if e.get('side') == 'high' else 'smallest'} value tried; left out of the law"
        for e in edges]

