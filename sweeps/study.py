"""One study of a sweep, in the storage that several sweep processes may share.

The budget is counted in the storage (finished and running trials), so several processes
started with the same command share the work and a restarted sweep continues where it
stopped; a trial's output folder is new by construction, never one an earlier trial wrote.
A trial failed because its process went away (stale, or interrupted: `fail_interrupted`) is
not counted, so `n_trials` is always the number of trials that ran to their own end.
A grid sampler stops its study once every point has run (`GridSampler` calls `Study.stop`,
which only works inside `Study.optimize`): here the budget, at most the grid's size, ends it.
A study keeps the search space it was made with (its user attribute `search_space`), so that a
sweep of another space under the same name is refused, not mixed into its trials.
Every study of a ladder keeps the ladder's id (`LADDER_ID_ATTR`, `<study_name>-<8 hex>`), made when
the sweep opens its first study: two sweeps of one name (in two storages) are told apart in W&B,
and a resumed or shared sweep keeps the id it finds.
"""
from __future__ import annotations

import logging
import secrets
import zlib
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import optuna
from hydra.core.utils import JobReturn
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from scalelab.messages import first_line
from scalelab.record import FILE_NAME, RecordError, read
from scalelab.sweeps import algorithms
from scalelab.sweeps.config import SweepError, SweepSettings
from scalelab.sweeps.heartbeat import UNCOUNTED_ATTR, fail_stale_trials, fail_uncounted
from scalelab.sweeps.outcome import MISSING_RECORD, Outcome, classify
from scalelab.sweeps.plan import Scale
from scalelab.sweeps.search_space import describe, space_difference

log = logging.getLogger(__name__)

# Trials that use up the budget: all but those still waiting to be asked for, and FAILs that
# carry UNCOUNTED_ATTR.
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_IN_FLIGHT = (TrialState.RUNNING,)
INTERRUPTED_REASON = "interrupted"
SEARCH_SPACE_ATTR = "search_space"
LADDER_ID_ATTR = "ladder_id"


def sampler_for_scale(sampler: Any, scale_name: str, trials_before: int = 0) -> Any:
    """The sampler config of one scale of a ladder: its seed offset by a stable hash of the
    scale's name. With one seed for every scale, each study samples the same start-up points,
    every scale's best learning rate is the same sampled value, and no lr*(N) can be fitted. A
    single scale (no name) keeps the seed as given.

    A study that already holds `trials_before` trials (a resumed or shared one, or one that
    starts from an enqueued prediction) gets a seed derived from that count too: the seed as
    given would sample the start-up points it holds again, and OS entropy would make the sweep
    irreproducible."""
    if not isinstance(sampler, Mapping) or not isinstance(sampler.get("seed"), int):
        return sampler
    key = scale_name if not trials_before else f"{scale_name}#{trials_before}"
    if not key:
        return sampler
    return {**sampler, "seed": (sampler["seed"] + zlib.crc32(key.encode())) % 2**32}


def best_completed(study: optuna.Study) -> Optional[optuna.trial.FrozenTrial]:
    """The study's completed trial of the lowest value (one objective), None before any."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(done, key=lambda t: t.value) if done else None


def ladder_id(storage: Any, ladder: str) -> str:
    """The id of the ladder `ladder`: the one a study of it already keeps (a resumed or shared
    sweep), else a new one, kept by the first study `open_study` opens (no study is made here:
    a ladder's studies are the scales it searches)."""
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name == ladder or summary.study_name.startswith(f"{ladder}/"):
            if summary.user_attrs.get(LADDER_ID_ATTR):
                return summary.user_attrs[LADDER_ID_ATTR]
    return f"{ladder}-{secrets.token_hex(4)}"


def open_study(storage: Any, name: str, settings: SweepSettings, sampler: Any,
               space: Mapping[str, BaseDistribution], ladder: Optional[str] = None) -> optuna.Study:
    """Create the study `name`, or load it with the same directions and search `space`, with a
    new sampler from its config `sampler` (`Plan.sampler`), and leave the pruner's config on it
    for the jobs; it keeps the id `ladder` of its ladder where it has none."""
    directions = [d.lower() for d in settings.directions]
    study = optuna.create_study(
        storage=storage, study_name=name, sampler=algorithms.build("sampler", sampler),
        pruner=algorithms.build("pruner", settings.pruner), directions=directions, load_if_exists=True,
    )
    existing = [d.name.lower() for d in study.directions]
    if existing != directions:
        raise SweepError(f"study {name!r} exists with directions {existing}, not {directions}")
    keep_search_space(study, space)
    algorithms.leave_pruner_config(study, settings.pruner)
    if ladder is not None and LADDER_ID_ATTR not in study.user_attrs:
        study.set_user_attr(LADDER_ID_ATTR, ladder)
    return study


def keep_search_space(study: optuna.Study, space: Mapping[str, BaseDistribution]) -> None:
    """Store `space` on `study`, or refuse it where the study holds trials of another space. A
    study made before it kept its space (no attribute) takes this one."""
    now = {name: describe(distribution) for name, distribution in space.items()}
    before = study.user_attrs.get(SEARCH_SPACE_ATTR)
    if before is not None and before != now and study.get_trials(deepcopy=False):
        raise SweepError(f"study {study.study_name!r} holds trials of another search space: "
                         f"{'; '.join(space_difference(before, now))}; give this sweep another "
                         "hydra.sweeper.study_name, or search the study's own space to continue it")
    if before != now:
        study.set_user_attr(SEARCH_SPACE_ATTR, now)


def budget_left(study: optuna.Study, n_trials: int, grace_period: Optional[float],
                count_running: bool = True) -> int:
    """Trials still to start. Trials of killed processes are failed first, and do not count;
    with `count_running=False`, only finished trials count."""
    stale = fail_stale_trials(study, grace_period)
    if stale:
        log.warning("study %s: trials %s had no heartbeat: marked FAIL, not counted", study.study_name, stale)
    states = _FINISHED + _IN_FLIGHT if count_running else _FINISHED
    used = [t for t in study.get_trials(deepcopy=False, states=states)
            # only a FAIL: the attribute may be left on a trial its own process finished meanwhile
            if not (t.state == TrialState.FAIL and t.system_attrs.get(UNCOUNTED_ATTR))]
    return n_trials - len(used)


def fail_interrupted(study: optuna.Study, trials: Sequence[optuna.Trial]) -> list[int]:
    """Mark this process's `trials`, cut short by an interruption, FAIL and not counted; return
    the numbers of those that were still running."""
    return [t.number for t in trials if fail_uncounted(study._storage, t._trial_id, INTERRUPTED_REASON)]


def new_subdir(sweep_dir: Path, scale: Scale, number: int) -> Path:
    """`<scale>/trial_<number>` below `sweep_dir`, with a suffix if that folder exists (the
    storage was reset, say): an earlier run's record is never overwritten."""
    base = Path(scale.folder)
    subdir, suffix = base / f"trial_{number}", 1
    while (sweep_dir / subdir).exists():
        suffix += 1
        subdir = base / f"trial_{number}.{suffix}"
    return subdir


def read_record(run_dir: Path) -> tuple[Optional[dict], Optional[str]]:
    """The run record in `run_dir`, or None and why it is not there."""
    path = run_dir / FILE_NAME
    if not path.is_file():
        return None, f"{MISSING_RECORD} {path}"
    try:
        return read(path), None
    except RecordError as e:
        return None, f"unreadable record: {first_line(e)}"


def tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> None:
    """Tell `study` the `outcome` of `trial`, with its status and reason as user attributes."""
    if outcome.status:
        trial.set_user_attr("status", outcome.status)
    if outcome.reason:
        trial.set_user_attr("fail_reason", outcome.reason[:500])
    try:
        if outcome.state == TrialState.COMPLETE:
            study.tell(trial, outcome.values, skip_if_finished=True)
        else:
            study.tell(trial, state=outcome.state, skip_if_finished=True)
    except RuntimeError:
        # GridSampler.after_trial calls Study.stop once the grid is done, which raises outside
        # Study.optimize; the trial's state is stored by then, and the budget ends the study.
        if not isinstance(study.sampler, optuna.samplers.GridSampler):
            raise


def finish_trial(study: optuna.Study, trial: optuna.Trial, job: Optional[JobReturn], run_dir: Path,
                 objectives: Sequence[str], launcher_error: Optional[str] = None, n_values: int = 1) -> Outcome:
    """Tell `study` how `trial` ended, from its job and its run record, and log one line."""
    record, problem = (None, launcher_error) if job is None else read_record(run_dir)
    outcome = classify(job, record, objectives, problem, n_values)
    tell(study, trial, outcome)
    values = outcome.values
    shown = values if values is None or len(values) > 1 else values[0]
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    tail = f" -> {shown}" if shown is not None else (f" ({outcome.reason})" if outcome.reason else "")
    log.info("study %s: trial %d %s %s%s", study.study_name, trial.number, outcome.state.name, params, tail)
    return outcome


def log_best(study: optuna.Study) -> None:
    try:
        if len(study.directions) == 1:
            best = study.best_trial
            log.info("study %s: best value %.6g with %s", study.study_name, best.value, best.params)
        else:
            log.info("study %s: %d Pareto-optimal trials", study.study_name, len(study.best_trials))
    except ValueError:
        log.info("study %s: no completed trial", study.study_name)
