"""`ScalingStudy`: the scales of a ladder in ascending compute, each one's search guided by the
laws of those before it, then the verification (see the package's docstring)."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Optional

import optuna
import pandas as pd

from scalelab.analysis import ladder
from scalelab.analysis.errors import AnalysisError
from scalelab.analysis.table import load_table
from scalelab.platform.threads import thread_count
from scalelab.scaling import guidance, verification
from scalelab.scaling.checks import check_ladder, check_settings
from scalelab.scaling.pricing import PricedScale, Throughput, families, price, priced_scales
from scalelab.scaling.settings import ScalingSettings
from scalelab.sweeps.plan import Plan, merged_overrides
from scalelab.sweeps.search_space import format_value
from scalelab.sweeps.study import best_completed

log = logging.getLogger(__name__)


class ScalingStudy:
    """One scaling study, run through `sweeper` (a `ScalelabSweeper`, by its public seam)."""

    def __init__(self, sweeper: Any, plan: Plan, settings: ScalingSettings) -> None:
        self.sweeper, self.plan, self.settings = sweeper, plan, settings
        self.study_name: str = sweeper.settings.study_name
        self.storage = sweeper.storage
        self.sweep_dir = sweeper.sweep_dir
        self.compose: Callable[[list[str]], Any] = sweeper.compose
        job = plan.job_config
        self.depth, self.heads, self.context = int(job.model.depth), int(job.model.heads), int(job.model.context)
        self.speed = Throughput(job, thread_count(job.trainer.threads))

    def run(self) -> list:
        check_settings(self.plan, self.settings)
        points = priced_scales(self.plan, self.compose)
        check_ladder(points, self.settings)
        price(points, self.plan, self.settings, self.speed, self.study_name)
        returns: list = []
        before: list[PricedScale] = []
        for k, (point, branched) in enumerate(families(points, self.settings.branches)):
            returns += self.run_scale(k, point, before, branched)
            before += sorted([point, *branched], key=lambda p: p.C)
        verification.finish(self, points)
        return returns

    def table(self, statuses: tuple[str, ...] = ("completed",)) -> Optional[pd.DataFrame]:
        """The runs of `statuses` stored so far, or None."""
        try:
            return load_table(self.sweep_dir, statuses=statuses, quiet=True)
        except AnalysisError:
            return None

    def run_scale(self, k: int, point: PricedScale, before: list[PricedScale], branched: list[PricedScale]) -> list:
        """Scale `k`'s study (of the scales `before` it), its runs forking into `branched`."""
        scale, s = point.scale, self.settings
        name = scale.study_name(self.study_name)
        source = guidance.transfer_source(point, before, s)
        forks = [f"schedule.branches=[{','.join(f'{b.D:.0f}' for b in branched)}]"] if branched else []
        # a transferred rate is no optimum of this scale's: the lr law leaves it out
        role = [f"trial.role={ladder.TRANSFER}"] if source is not None else []

        def prepare(study: optuna.Study) -> Plan:
            stored = study.user_attrs.get(guidance.RANGE_ATTR)
            if stored and study.get_trials(deepcopy=False):  # a started study keeps its range
                ranges = {n: ladder.SearchRange(**r) for n, r in stored.items()}
            else:
                ranges = guidance.law_ranges(k, point, before, self.table(), self.plan, s)
                if source is not None:
                    ranges[guidance.LR] = guidance.transferred(source.scale.study_name(self.study_name), self.storage)
                study.set_user_attr(guidance.RANGE_ATTR, {n: r.to_dict() for n, r in ranges.items()})
                if not study.get_trials(deepcopy=False):
                    wide = s.guide and k < s.wide_scales and source is None
                    for params in guidance.first_trials(self.plan, ranges, wide):
                        study.enqueue_trial(params, skip_if_exists=True)
            for r in ranges.values():
                log.info("study %s: %s", name, r.describe())
            return replace(self.plan, space=guidance.space_within(self.plan, ranges),
                           n_trials=1 if source is not None else self.plan.n_trials,
                           fixed=[*self.plan.fixed, *forks, *role,
                                  f"trial.search_range={guidance.ranges_in_words(study)}"])

        returns = self.sweeper.run_study(self.plan, scale, prepare=prepare)
        self.seed_runs(point, name, forks)
        return returns

    def seed_runs(self, point: PricedScale, study_name: str, forks: list[str]) -> None:
        """The best trial of the scale again, with `seeds` other seeds (and its branches)."""
        if not self.settings.seeds:
            return
        study = optuna.load_study(study_name=study_name, storage=self.storage)
        best = best_completed(study)
        if best is None:
            log.warning("study %s: no completed trial, so no seed runs", study_name)
            return
        base = self.plan.job_overrides(point.scale, best.params)
        seed0 = int(self.plan.job_config.train.seed)
        jobs = []
        for n in range(1, self.settings.seeds + 1):
            extra = [f"train.seed={seed0 + n}", "trial.role=seed", f"trial.study_name={format_value(study_name)}",
                     f"trial.search_range={guidance.ranges_in_words(study)}"]
            jobs.append((f"{point.scale.folder}/seed_{seed0 + n}", merged_overrides(base, [*forks, *extra])))
        self.sweeper.launch_runs(jobs)
