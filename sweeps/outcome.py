"""What Optuna is told about a finished trial, decided from its job's result and its run record.

A job that writes a run record (`scalelab.record`: the training run, whatever way it ends) is
judged by the record, the richer signal; a job that writes none (a plain Hydra app, as with
hydra-optuna-sweeper) by its return value. `classify` is a pure function of its inputs:

- a record: completed -> COMPLETE with the final validation loss (or the `objectives` paths;
  with several directions and no `objectives`, the returned values); diverged -> COMPLETE with
  the initial loss (no progress, so the region looks bad) and status `diverged`; pruned ->
  PRUNED; failed, an unknown status or a non-finite objective -> FAIL with a one-line reason;
- no record: a finite float returned (a sequence of them, one per direction) -> COMPLETE;
  None, NaN, a non-number or a sequence of the wrong length -> FAIL with a one-line reason;
  `optuna.TrialPruned` raised -> PRUNED;
- an exception in the job, a failed launcher or an unreadable record -> FAIL with its reason.
"""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from optuna.exceptions import TrialPruned
from optuna.trial import TrialState

from scalelab.hydra_private import job_result
from scalelab.messages import first_line
from scalelab.record import get

DEFAULT_OBJECTIVE = "metrics.final_val_loss"
DIVERGED_OBJECTIVE = "metrics.initial_loss"
# How `study.read_record` says the run left no record file: then the return value decides.
MISSING_RECORD = "missing record"
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother = 40, 40


@dataclass(frozen=True)
class Outcome:
    state: TrialState
    values: Optional[list[float]] = None  # for COMPLETE only
    reason: Optional[str] = None  # why a trial FAILed
    status: Optional[str] = None  # the record's status, kept on the trial


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _number(x: Any) -> Optional[float]:
    """`x` as a float when it is a number (numpy and torch scalars too; not a bool or a string)."""
    if x is None or isinstance(x, (bool, str, bytes)):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _items(x: Any) -> Optional[list]:
    """The elements of a returned list, tuple, ListConfig or 1-d array; None for anything else."""
    if x is None or isinstance(x, (str, bytes, Mapping)):
        return None
    try:
        return list(x)
    except TypeError:  # a scalar, a 0-d array
        return None


def returned_values(returned: Any, n: int) -> tuple[Optional[list[float]], Optional[str]]:
    """The objective values in a job's return value, `n` of them, or None and what is wrong."""
    items = _items(returned)
    if n == 1 and (items is None or len(items) != 1):
        items = [returned]
    expected = "a float" if n == 1 else f"a list of {n} floats, one per direction"
    if items is None or len(items) != n:
        return None, f"expected {expected}"
    values = [_number(v) for v in items]
    if any(v is None for v in values):
        return None, f"expected {expected}"
    if not all(math.isfinite(v) for v in values):
        return None, "not finite"
    return values, None


def _from_return(returned: Any, n: int, problem: Optional[str], status: Optional[str] = None) -> Outcome:
    values, wrong = returned_values(returned, n)
    if wrong:
        where = f" ({problem})" if problem else ""
        reason = first_line(f"the job returned {_REPR.repr(returned)}: {wrong}{where}")
        return Outcome(TrialState.FAIL, reason=reason, status=status)
    return Outcome(TrialState.COMPLETE, values=values, status=status)


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
             objectives: Sequence[str] = (), problem: Optional[str] = None, n_values: int = 1) -> Outcome:
    """The outcome of one trial of a study with `n_values` directions.

    `job` is None when the launcher failed; `record` is None when the run left no readable
    record. `problem` says why either is missing (the launcher's error, "missing record PATH",
    "unreadable record: ...").
    """
    status = get(record, "status")
    if job is None:
        return Outcome(TrialState.FAIL, reason=problem or "launcher failed", status=status)
    returned = job_result(job)  # the exception itself when the job raised
    if record is None and isinstance(returned, TrialPruned):
        return Outcome(TrialState.PRUNED)  # a job without a record that stopped itself
    if job.status == JobStatus.FAILED or isinstance(returned, BaseException):
        reason = first_line(returned) if isinstance(returned, BaseException) else "job failed"
        if get(record, "error"):
            reason = first_line(str(record["error"]))  # the run's own account is clearer
        return Outcome(TrialState.FAIL, reason=reason, status=status)
    if record is None:
        if problem and not problem.startswith(MISSING_RECORD):
            return Outcome(TrialState.FAIL, reason=problem)  # a record that cannot be trusted
        return _from_return(returned, n_values, problem)
    if status == "pruned":
        return Outcome(TrialState.PRUNED, status=status)
    if status == "failed":
        return Outcome(TrialState.FAIL, reason=first_line(str(record.get("error") or "run failed")), status=status)
    if status not in ("completed", "diverged"):
        return Outcome(TrialState.FAIL, reason=f"unknown record status {status!r}", status=status)
    if n_values > 1 and not objectives:
        return _from_return(returned, n_values, None, status)  # the record holds one loss, not several
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
