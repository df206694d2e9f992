"""What Optuna is told about a finished trial, decided from its job's result and its run record.

The record (`scalelab.record`), not the job's return value, is the truth: a run that ends in
any way writes one. `classify` is a pure function of its inputs:

- completed -> COMPLETE with the final validation loss (or the `objectives` paths);
- diverged -> COMPLETE with the initial loss (no progress, so the region looks bad) and
  status `diverged`;
- pruned -> PRUNED;
- failed, an exception in the job, a failed launcher, a missing or unreadable record, an
  unknown status or a non-finite objective -> FAIL, with a one-line reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from scalelab.messages import first_line
from scalelab.record import get

DEFAULT_OBJECTIVE = "metrics.final_val_loss"
DIVERGED_OBJECTIVE = "metrics.initial_loss"


@dataclass(frozen=True)
class Outcome:
    state: TrialState
    values: Optional[list[float]] = None  # for COMPLETE only
    reason: Optional[str] = None  # why a trial FAILed
    status: Optional[str] = None  # the record's status, kept on the trial


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def objective_values(record: Mapping[str, Any], objectives: Sequence[str], status: str,
                     returned: Any = None) -> list[Any]:
    """The values to tell for a completed or diverged run (maybe None or non-finite)."""
    if status == "diverged":
        return [get(record, DIVERGED_OBJECTIVE)] + [get(record, p) for p in objectives[1:]]
    if objectives:
        return [get(record, p) for p in objectives]
    value = get(record, DEFAULT_OBJECTIVE)
    if value is None and _finite(returned):
        value = float(returned)  # an app that returns its loss but does not record it
    return [value]


def classify(job: Optional[JobReturn], record: Optional[Mapping[str, Any]],
             objectives: Sequence[str] = (), problem: Optional[str] = None) -> Outcome:
    """The outcome of one trial.

    `job` is None when the launcher failed; `record` is None when the run left no readable
    record. `problem` says why either is missing (the launcher's error, "missing record PATH").
    """
    status = get(record, "status")
    if job is None:
        return Outcome(TrialState.FAIL, reason=problem or "launcher failed", status=status)
    returned = job._return_value  # the exception itself when the job raised
    if job.status == JobStatus.FAILED or isinstance(returned, BaseException):
        reason = first_line(returned) if isinstance(returned, BaseException) else "job failed"
        if get(record, "error"):
            reason = first_line(str(record["error"]))  # the run's own account is clearer
        return Outcome(TrialState.FAIL, reason=reason, status=status)
    if record is None:
        return Outcome(TrialState.FAIL, reason=problem or "missing record")
    if status == "pruned":
        return Outcome(TrialState.PRUNED, status=status)
    if status == "failed":
        return Outcome(TrialState.FAIL, reason=first_line(str(record.get("error") or "run failed")), status=status)
    if status not in ("completed", "diverged"):
        return Outcome(TrialState.FAIL, reason=f"unknown record status {status!r}", status=status)
    values = objective_values(record, objectives, status, returned)
    bad = [v for v in values if not _finite(v)]
    if bad:
        names = list(objectives) or [DEFAULT_OBJECTIVE]
        if status == "diverged":
            names[0] = DIVERGED_OBJECTIVE
        shown = ", ".join(f"{n}={v}" for n, v in zip(names, values) if not _finite(v))
        return Outcome(TrialState.FAIL, reason=f"non-finite or missing objective {shown} (status {status})",
                       status=status)
    return Outcome(TrialState.COMPLETE, values=[float(v) for v in values], status=status)
