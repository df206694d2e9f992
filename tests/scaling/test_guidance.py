"""Where each scale's study starts: a grid over a wide range, the laws' prediction otherwise."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from optuna.distributions import FloatDistribution

from scalelab.analysis.ladder import SearchRange
from scalelab.scaling.guidance import LR, first_trials


def plan(n_trials=3):
    return SimpleNamespace(n_trials=n_trials, space=SimpleNamespace(distributions={LR: FloatDistribution(1e-3, 1e-1, log=True)}))


def test_a_wide_scale_starts_from_rates_spread_evenly_in_log_over_its_range():
    rates = [t[LR] for t in first_trials(plan(), {LR: SearchRange(LR, 1e-3, 1e-1, "configured range")}, wide=True)]
    # quantiles 1/6, 1/2, 5/6 of a 100x range: factors 10^(1/3), 10 and 10^(5/3) above its low end
    assert rates == pytest.approx([1e-3 * 10 ** (1 / 3), 1e-2, 1e-3 * 10 ** (5 / 3)])


def test_a_guided_scale_starts_from_the_law_s_prediction_alone():
    guided = SearchRange(LR, 2e-3, 2e-2, "law-guided", centre=6e-3)
    assert first_trials(plan(), {LR: guided}, wide=False) == [{LR: 6e-3}]


def test_the_fixed_range_baseline_leaves_every_trial_to_the_sampler():
    assert first_trials(plan(), {LR: SearchRange(LR, 1e-3, 1e-1, "configured range (scaling.guide=false)")},
                        wide=False) == []
