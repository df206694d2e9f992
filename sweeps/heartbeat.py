"""Heartbeats: how a sweep tells trials that are alive from trials whose process was killed.

The sweeper beats for every trial it has in flight (`Heartbeat`, a thread), and a job beats
at each report. `RDBStorage` keeps beats in Optuna's own heartbeat table; the journal storage
has none, so there the last beat is a trial system attribute. A RUNNING trial without a beat
for `grace_period` seconds is failed with a reason (`fail_stale_trials`), so that a restarted
sweep neither waits for it forever nor counts it as work in progress.

A trial whose process went away (failed as stale here, or interrupted by the sweeper's own
Ctrl-C) did not fail because of its configuration: it carries `UNCOUNTED_ATTR` and does not use
up the study's budget (`fail_uncounted`), so the same command run again still completes it; a
grid sampler's point that such a trial held is left unvisited, so it runs again too.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import TrialState

HEARTBEAT_ATTR = "scalelab:heartbeat"
# A trial system attribute: this FAIL is the process's, not the trial's, and does not use up
# the budget. Its value says why (the trial's `fail_reason`).
UNCOUNTED_ATTR = "scalelab:uncounted"
STALE_REASON = "stale: no heartbeat (process killed?)"
# GridSampler marks each trial with its point and grid; a finished trial whose grid is the
# sampler's own counts as that point visited.
_GRID_ID, _GRID_SPACE = "grid_id", "search_space"


def record_heartbeat(storage: Any, trial_id: int) -> None:
    """Tell the storage that ``trial_id`` is alive (Optuna's heartbeat, or our attribute)."""
    if isinstance(storage, BaseHeartbeat):
        if is_heartbeat_enabled(storage):
            storage.record_heartbeat(trial_id)
        return
    try:
        storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # the trial finished meanwhile


def running_numbers(study: optuna.Study) -> set[int]:
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}


def fail_stale_trials(study: optuna.Study, grace_period: float | None = None) -> list[int]:
    """Mark RUNNING trials without a recent heartbeat FAIL, with the reason; return their numbers.

    Same rule as ``optuna.storages.fail_stale_trials``, which cannot leave a reason, since a
    finished trial takes no attributes: ``RDBStorage`` finds the stale trials from its
    heartbeat table, the journal storage from our heartbeat attribute.
    """
    storage = study._storage
    if isinstance(storage, BaseHeartbeat):
        if not is_heartbeat_enabled(storage):
            return []
        stale_ids = list(storage._get_stale_trial_ids(study._study_id))
    elif grace_period:
        now = time.time()
        stale_ids = [
            t._trial_id
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.system_attrs.get(HEARTBEAT_ATTR) is not None
            and now - float(t.system_attrs[HEARTBEAT_ATTR]) > grace_period
        ]
    else:
        return []
    return [storage.get_trial_number_from_id(i) for i in stale_ids if fail_uncounted(storage, i, STALE_REASON)]


def fail_uncounted(storage: Any, trial_id: int, reason: str) -> bool:
    """Mark a RUNNING trial FAIL with `reason`, as one that does not use up the budget; False when
    it had finished already (its own process, or another sweep, got there first)."""
    try:
        # the attribute first: a trial that is FAIL without it would count
        storage.set_trial_system_attr(trial_id, UNCOUNTED_ATTR, reason)
        if _GRID_ID in storage.get_trial_system_attrs(trial_id):
            storage.set_trial_system_attr(trial_id, _GRID_SPACE, {})  # no grid's: its point is not visited
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        return bool(storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def wait_for_orphans(study: optuna.Study, numbers: set[int], grace_period: float | None,
                     interval: float) -> list[int]:
    """Wait until each trial in `numbers` (RUNNING in other processes: maybe orphans of a killed
    sweep) has finished elsewhere or, without a heartbeat for the grace period, is failed; a
    trial still beating after that is left to its live process. The numbers of those failed."""
    failed: list[int] = []
    if not numbers or not grace_period:
        return failed
    deadline = time.time() + grace_period + max(1, interval)
    while time.time() < deadline:
        failed += fail_stale_trials(study, grace_period)
        if not running_numbers(study) & numbers:
            break
        time.sleep(min(1.0, max(0.2, interval / 2)))
    return failed


class Heartbeat:
    """A thread that beats for the trials this process has in flight."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.storage, self.interval = storage, max(0.2, float(interval))
        self.trial_ids: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="scalelab-heartbeat", daemon=True)
        self.thread.start()

    def add(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.add(trial_id)
        record_heartbeat(self.storage, trial_id)

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.discard(trial_id)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with self.lock:
                ids = list(self.trial_ids)
            for trial_id in ids:
                try:
                    record_heartbeat(self.storage, trial_id)
                except Exception:  # noqa: BLE001 - a missed beat is not fatal; the next may pass
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
