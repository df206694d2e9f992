"""The trials of one study, run in lanes or batches through the sweeper's Hydra launcher.

`Lanes` asks the study for trials, turns each into a Hydra job (its overrides, its run folder,
its `trial.*` bookkeeping), launches them and tells each one's outcome; an interruption marks
those in flight FAIL, not counted.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, List, Optional

import optuna
from optuna.trial import TrialState

from scalelab.messages import first_line
from scalelab.record import FILE_NAME
from scalelab.sweeps import study as studies
from scalelab.sweeps.heartbeat import Heartbeat
from scalelab.sweeps.outcome import Outcome
from scalelab.sweeps.plan import Plan, Scale
from scalelab.sweeps.search_space import format_value
from scalelab.sweeps.storage import url_for_jobs

log = logging.getLogger(__name__)


class Lanes:
    """The trials of one study: asked for and launched in batches, or in `n` lanes that each
    refill as soon as their trial ends, so that no lane waits for a whole batch."""

    def __init__(self, sweeper: Any, plan: Plan, study: optuna.Study, scale: Scale,
                 sweep_dir: Path, heartbeat: Optional[Heartbeat]) -> None:
        self.sweeper, self.plan, self.study, self.scale = sweeper, plan, study, scale
        self.sweep_dir, self.heartbeat = sweep_dir, heartbeat
        storage_url = sweeper.settings.storage
        # An in-memory study lives in this process only: its jobs cannot report to it.
        self.trial_prefix = plan.trial_prefix if storage_url is not None else None
        self.storage_arg = url_for_jobs(storage_url) if self.trial_prefix is not None else ""
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.in_flight: dict[int, optuna.Trial] = {}  # by trial number: asked, not yet told
        self.returns: list = []

    def run(self, n: int, in_lanes: bool) -> None:
        """Trials until the budget is spent: `n` lanes in threads, or batches of `n` in this thread
        (in-process jobs: Hydra's job state is global; joblib: one Parallel at a time)."""
        if n == 1 or not in_lanes:
            while self.one_batch(n):
                pass
            return

        def lane() -> None:
            while self.one_batch(1):
                pass

        # daemons: an interrupted sweep exits without waiting for the jobs its lanes wait on
        threads = [threading.Thread(target=lane, name=f"scalelab-lane-{i}", daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def interrupt(self) -> list[int]:
        """Stop asking for trials, and mark those in flight FAIL as interrupted (not counted)."""
        self.stopped.set()
        with self.lock:
            trials = list(self.in_flight.values())
            self.in_flight.clear()
        if self.heartbeat is not None:
            for trial in trials:
                self.heartbeat.discard(trial._trial_id)
        return studies.fail_interrupted(self.study, trials)

    def _ask(self) -> Optional[tuple[optuna.Trial, List[str], Path]]:
        """A new trial, its job overrides and its run folder; None when `custom_search_space`
        failed on it (the trial is then FAIL, with the error as its reason)."""
        trial = self.study.ask(fixed_distributions=self.plan.space.distributions)
        self.in_flight[trial.number] = trial  # from here on, an interruption marks it
        custom = self.sweeper.custom_search_space
        if custom is not None:
            try:
                custom(self.sweeper.config, trial)
            except Exception as e:  # noqa: BLE001 - the user's function: this trial fails, the sweep goes on
                self.in_flight.pop(trial.number, None)
                self._tell(trial, Outcome(TrialState.FAIL, reason=f"custom_search_space: {first_line(e)}"))
                return None
        subdir = studies.new_subdir(self.sweep_dir, self.scale, trial.number)
        run_dir = (self.sweep_dir / subdir).resolve()
        overrides = self.plan.job_overrides(self.scale, trial.params)
        if self.trial_prefix is not None:
            p = self.trial_prefix
            overrides += [f"{p}trial.study_name={format_value(self.study.study_name)}",
                          f"{p}trial.storage={self.storage_arg}", f"{p}trial.number={trial.number}",
                          *self.sweeper.ladder_overrides]
        overrides += [f"hydra.sweep.dir={format_value(str(self.sweep_dir))}",
                      f"hydra.sweep.subdir={format_value(str(subdir))}"]
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("record", str(run_dir / FILE_NAME))
        if self.scale.name:
            trial.set_user_attr("scale", self.scale.name)
        if self.heartbeat is not None:
            self.heartbeat.add(trial._trial_id)
        return trial, overrides, run_dir

    def _tell(self, trial: optuna.Trial, outcome: Outcome) -> None:
        studies.tell(self.study, trial, outcome)
        log.info("study %s: trial %d %s (%s)", self.study.study_name, trial.number, outcome.state.name, outcome.reason)
        self.sweeper.told.append((self.study.study_name, trial.number, outcome))

    def one_batch(self, k: int) -> bool:
        """Launch up to `k` trials and tell their results; False once the budget is spent."""
        settings = self.sweeper.settings
        with self.lock:
            if self.stopped.is_set():
                return False
            left = studies.budget_left(self.study, self.plan.n_trials, settings.grace_period)
            if left <= 0:
                return False
            batch = [b for b in (self._ask() for _ in range(min(k, left))) if b is not None]
            if not batch:
                return True
            first_idx = self.sweeper.job_idx
            self.sweeper.job_idx += len(batch)
        launcher_error = None
        try:
            launched = list(self.sweeper.launcher.launch([b[1] for b in batch], initial_job_idx=first_idx))
        except Exception as e:  # noqa: BLE001 - the launcher itself failed: FAIL, go on
            launcher_error = f"launcher: {first_line(e)}"
            log.error("study %s: %s", self.study.study_name, launcher_error)
            launched = [None] * len(batch)
        with self.lock:  # not while `interrupt` marks the same trials
            if self.stopped.is_set():
                return False
            for (trial, _, run_dir), job in zip(batch, launched):
                try:
                    outcome = studies.finish_trial(self.study, trial, job, run_dir, self.plan.objectives,
                                                   launcher_error, len(self.plan.directions))
                    self.sweeper.told.append((self.study.study_name, trial.number, outcome))
                finally:
                    self.in_flight.pop(trial.number, None)
                    if self.heartbeat is not None:
                        self.heartbeat.discard(trial._trial_id)
            self.returns.append(launched)
        return True
