"""The job's side of a trial: report intermediate values, and learn whether to stop.

The sweeper passes `trial.study_name`, `trial.storage` and `trial.number` into the job's
config; the job builds `TrialReporter(study_name, storage, number)` and calls
`report(value, step)` at every evaluation. Each report is also a heartbeat, so a killed sweep
can tell live trials from dead ones. The job stops itself when `report` returns True (the
training run's Lightning callback raises `optuna.TrialPruned`); the sweeper, not the job,
tells the trial's final state, from the run record.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import optuna

from scalelab.sweeps.algorithms import stored_pruner
from scalelab.sweeps.heartbeat import record_heartbeat
from scalelab.sweeps.storage import make_storage

# The number of trials a sweep runs at once, which the jobs divide the machine's cores by.
PARALLEL_TRIALS_ENV = "SCALELAB_PARALLEL_TRIALS"
# One storage per URL and process: with Hydra's basic launcher, every job runs in the sweeper's process.
_STORAGES: dict[str, Any] = {}
# Any interval turns Optuna's heartbeat table on; the sweeper decides what is stale.
_JOB_HEARTBEAT_INTERVAL = 60


class TrialReporter:
    """One trial of one study, opened from its storage URL at the first report."""

    def __init__(self, study_name: str, storage: str, number: int) -> None:
        self.study_name, self.storage_url, self.number = study_name, storage, int(number)
        self._storage: Any = None
        self._trial: Optional[optuna.Trial] = None

    @property
    def trial(self) -> optuna.Trial:
        if self._trial is None:
            if self.storage_url not in _STORAGES:
                _STORAGES[self.storage_url] = make_storage(self.storage_url, heartbeat_interval=_JOB_HEARTBEAT_INTERVAL)
            self._storage = _STORAGES[self.storage_url]
            study = optuna.load_study(study_name=self.study_name, storage=self._storage,
                                      pruner=stored_pruner(self._storage, self.study_name))
            trial_id = self._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
            self._trial = optuna.Trial(study, trial_id)
        return self._trial

    def report(self, value: Any, step: int) -> bool:
        """Report `value` at `step`; True when the pruner says the trial should stop."""
        trial = self.trial
        record_heartbeat(self._storage, trial._trial_id)
        if len(trial.study.directions) > 1:
            return False  # Optuna prunes single-objective studies only
        value = float(value)
        if not math.isfinite(value):
            return False  # never hand NaN to Optuna; divergence is the run's own verdict
        trial.report(value, int(step))
        return bool(trial.should_prune())
