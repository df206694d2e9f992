"""What a sweep leaves at its end: `optimization_results.yaml` per study, and the failure check.

`optimization_results.yaml` has hydra-optuna-sweeper's fields, `name: optuna` and, for one
direction, `best_params` and `best_value`, for several the Pareto front as `solutions` (each
with `params` and `values`). It is written in the study's folder (the sweep folder, or the
scale's folder below it for a ladder) from the whole study, earlier runs and other processes
included; a study without a completed trial has none.

`failure_line` applies `max_failure_rate` to the trials this process finished: a larger share
of FAILs ends the sweep with status 1 and one line naming the share and the first failure. So
does a sweep whose every trial FAILed, even where `max_failure_rate` is 1.0 (the presets': a
crashed run is data), unless `allow_all_failed` is set: such a sweep learned nothing, and its
cause (a setting every run refuses, a missing GPU) is the user's to see.
Trials failed only because their process went away (stale, interrupted) are not among them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from scalelab.record import write_atomic
from scalelab.sweeps.outcome import Outcome

FILE_NAME = "optimization_results.yaml"
FAILED_EXIT = 1


def summary(study: optuna.Study) -> Optional[dict[str, Any]]:
    """Upstream's fields for `study`, or None without a completed trial."""
    try:
        if len(study.directions) == 1:
            best = study.best_trial
            return {"name": "optuna", "best_params": dict(best.params), "best_value": best.value}
        front = study.best_trials
    except ValueError:  # no completed trial
        return None
    if not front:
        return None
    return {"name": "optuna", "solutions": [{"params": dict(t.params), "values": list(t.values)} for t in front]}


def write(study: optuna.Study, folder: Path) -> Optional[Path]:
    """Write `optimization_results.yaml` in `folder` (atomically: workers may end together)."""
    content = summary(study)
    if content is None:
        return None
    return write_atomic(folder / FILE_NAME, OmegaConf.to_yaml(OmegaConf.create(content)))


def failure_line(told: Sequence[tuple[str, int, Outcome]], max_failure_rate: float,
                 allow_all_failed: bool = False) -> Optional[str]:
    """The line that ends a sweep whose share of FAILs among `told` (study name, trial number,
    outcome, in the order they finished) is above `max_failure_rate`, or, within it, is all of
    them unless `allow_all_failed`; None when it is neither."""
    failed = [(name, number, o) for name, number, o in told if o.state == TrialState.FAIL]
    if not failed:
        return None
    name, number, first = failed[0]
    cause = f"first, trial {number} of study {name}: {first.reason or 'failed'}"
    if len(failed) / len(told) > max_failure_rate:
        return (f"scalelab sweeper: error: {len(failed)} of {len(told)} trials failed "
                f"({len(failed) / len(told):.0%}), more than max_failure_rate {max_failure_rate} allows; {cause}")
    if len(failed) == len(told) and not allow_all_failed:
        return (f"scalelab sweeper: error: every trial failed ({len(failed)} of {len(told)}); {cause} "
                "(hydra.sweeper.allow_all_failed=true lets a sweep of failures only exit 0)")
    return None
