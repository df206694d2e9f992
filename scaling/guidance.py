"""Where each scale searches: the configured range for the first scales, then a range centred on
the lr (and batch size) law fitted to the scales before it, at the scale's N and D, or under µP a
rate transferred from the narrowest model at the same budget."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Optional

import optuna
import pandas as pd
from optuna.distributions import FloatDistribution, IntDistribution

from scalelab.analysis import ladder
from scalelab.analysis.errors import AnalysisError
from scalelab.scaling.pricing import PricedScale
from scalelab.scaling.settings import ScalingSettings
from scalelab.sweeps.config import SweepError
from scalelab.sweeps.plan import Plan
from scalelab.sweeps.search_space import SearchSpace, format_value
from scalelab.sweeps.study import best_completed

LR, BATCH = "optim.lr", "train.batch_size"
QUANTITY = {LR: "lr", BATCH: "bs"}
RANGE_ATTR = "search_range"  # a study's user attribute: its ranges, and why


def guided(plan: Plan) -> list[str]:
    """The searched hyperparameters the laws guide."""
    return [name for name in (LR, BATCH) if name in plan.space.distributions]


def law_ranges(k: int, point: PricedScale, before: list[PricedScale], table: Optional[pd.DataFrame],
               plan: Plan, s: ScalingSettings) -> dict[str, ladder.SearchRange]:
    """The search range of each guided hyperparameter at scale `k`, from the completed runs in
    `table` of the scales `before` it."""
    if table is not None:
        done = {(p.N, p.D) for p in before}
        table = table[[(n, d) in done for n, d in zip(table["N"], table["D"])]]
    law, error, optima = None, "no scale has finished", None
    if s.guide and k >= s.wide_scales and table is not None and len(table):
        try:
            law = ladder.hparam_law(table, bootstrap=s.bootstrap)
        except AnalysisError as e:
            error = str(e)
        # each scale's optimum and edge flag, whichever form the law has (or none)
        optima = ladder.optima(table)
    out = {}
    for name in guided(plan):
        dist = plan.space.distributions[name]
        configured = (float(dist.low), float(dist.high))
        if not s.guide:
            out[name] = ladder.SearchRange(name, *configured, "configured range (scaling.guide=false)")
            continue
        if k < s.wide_scales:
            out[name] = ladder.SearchRange(name, *configured, f"configured range (scale {k + 1} of the "
                                           f"first {s.wide_scales}, searched wide)")
            continue
        last = None
        if optima is not None and len(optima):
            q = QUANTITY[name]
            row = optima.loc[(optima["C"] - before[-1].C).abs().idxmin()]
            last = {"value": float(row[q]), "edge": row[f"{q}_edge"] if isinstance(row[f"{q}_edge"], str) else None}
        out[name] = ladder.guided_range(name, law, error, point.C, last, configured, s.floor, QUANTITY[name],
                                        N=point.N, D=point.D)
    return out


def space_within(plan: Plan, ranges: dict[str, ladder.SearchRange]) -> SearchSpace:
    """The plan's search space with each guided hyperparameter searched within its range."""
    dists = dict(plan.space.distributions)
    for name, r in ranges.items():
        old = dists[name]
        if isinstance(old, FloatDistribution):
            dists[name] = FloatDistribution(r.low, r.high, log=True)
        elif isinstance(old, IntDistribution):
            dists[name] = IntDistribution(max(1, math.floor(r.low)), max(1, math.ceil(r.high)), log=True)
    return replace(plan.space, distributions=dists)


def first_trials(plan: Plan, ranges: dict[str, ladder.SearchRange], wide: bool) -> list[dict[str, Any]]:
    """The trials a scale's study starts from: the laws' predictions (the ranges' centres) where
    the laws guide it; on a `wide` scale (one of the first `scaling.wide_scales`), `n_trials`
    values spread evenly over the range in log (quantiles (i + 1/2) / n). A sampler's few start-up draws can fall together (three rates
    within 10% of each other, at the wrong end of a 20x range); a grid cannot, and the law
    fitted next needs each wide scale's optimum bracketed."""
    centres = {name: r.centre for name, r in ranges.items() if r.centre is not None}
    if centres:
        return [{name: _value(plan, name, v) for name, v in centres.items()}]
    n = plan.n_trials if wide else 0
    return [{name: _value(plan, name, r.low * (r.high / r.low) ** ((i + 0.5) / n)) for name, r in ranges.items()}
            for i in range(n)]


def _value(plan: Plan, name: str, value: float) -> Any:
    return int(round(value)) if isinstance(plan.space.distributions[name], IntDistribution) else float(value)


def transfer_source(point: PricedScale, before: list[PricedScale], s: ScalingSettings) -> Optional[PricedScale]:
    """Under `scaling.transfer`, the scale whose best learning rate this one trains: the smallest
    width at the same budget (run before it, its compute being smaller); None: search."""
    narrower = [p for p in before if p.D == point.D and p.width < point.width]
    return min(narrower, key=lambda p: p.width) if s.transfer and narrower else None


def transferred(source_study: str, storage: Any) -> ladder.SearchRange:
    """The best rate of the study `source_study`, as a range of one value."""
    best = best_completed(optuna.load_study(study_name=source_study, storage=storage))
    if best is None:
        raise SweepError(f"scaling.transfer: study {source_study} completed no trial, so it has no learning "
                         "rate to transfer")
    lr = float(best.params[LR])
    return ladder.SearchRange(LR, lr, lr, f"transferred (µP): the best rate of {source_study}, the smallest width "
                                          "at this budget", centre=lr)


def ranges_in_words(study: optuna.Study) -> str:
    """The study's search ranges in words, as one override value."""
    ranges = study.user_attrs.get(RANGE_ATTR) or {}
    return format_value("; ".join(ladder.SearchRange(**r).describe() for r in ranges.values()))
