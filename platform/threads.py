"""CPU threads per training process.

torch starts one thread per core in every process. Processes that share the cores (trials a
sweep runs in parallel, data-parallel ranks on one machine) then oversubscribe them, and every
one of them slows down many times over. So each process takes its share: the cores it may use,
divided by the processes that share them. `trainer.threads` sets the number outright, and so
does OMP_NUM_THREADS in the environment when `trainer.threads` is unset.
"""
from __future__ import annotations

import os

from scalelab.sweeps.reporting import PARALLEL_TRIALS_ENV  # set by the sweeper: the trials running at once


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if value >= 1 else None


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_count(setting: int | None, processes_per_run: int = 1) -> int:
    """The threads one process of a run should use (see the module docstring)."""
    if setting:
        return int(setting)
    explicit = _positive_int(os.environ.get("OMP_NUM_THREADS"))
    if explicit:
        return explicit
    sharing = max(1, processes_per_run) * (_positive_int(os.environ.get(PARALLEL_TRIALS_ENV)) or 1)
    return max(1, available_cores() // sharing)
