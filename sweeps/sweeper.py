"""The `scalelab` Hydra sweeper: Optuna ask/tell studies, one per scale of a ladder.

`hydra/sweeper=scalelab` (or a preset, `sweeps=NAME`) turns a multirun into Optuna studies:

- every command-line sweep on a key in `ladder` is a ladder axis; each combination of axis
  values is a *scale* with its own study `<study_name>/<axis=value,...>` and its own budget of
  `n_trials` (`plan`);
- `params` (and every other sweep on the command line) is the search space, sampled with
  `study.ask()`, then extended by `custom_search_space` where one is set;
- each trial is one Hydra job, handed to the configured launcher; where the job config has a
  `trial` node it also gets `trial.study_name`, `trial.storage`, `trial.number` (and
  `trial.searched` where declared), so the job reports intermediate values through
  `scalelab.sweeps.reporting.TrialReporter` and can be pruned;
- the job's `run.json`, or without one its return value, decides what is told (`outcome`);
- at the end each study's `optimization_results.yaml` is written, and the sweep exits 1 when
  more than `max_failure_rate` of the trials it finished FAILed, or all of them did and
  `allow_all_failed` is off (`results`).

Apps written for hydra-optuna-sweeper run unchanged: `hydra/sweeper=scalelab` takes its keys
(`direction` as a list, `max_failure_rate`, `custom_search_space`, `hydra/sweeper/sampler=NAME`).

`storage: null` is an in-memory study, as upstream's; otherwise several processes started with
the same command share one study, and a restarted sweep
continues where it stopped (`study`); output folders are `<hydra.sweep.dir>/<scale>/trial_<n>`.
A trial left RUNNING by a killed process does not use up the budget: once its heartbeats have
stopped for the grace period it is failed, not counted, and the sweep runs another in its place.
Ctrl-C (or SIGTERM) marks the trials in flight FAIL, not counted, and exits with status 130;
the same command then continues the sweep.

Jobs find the number of trials running at once in `SCALELAB_PARALLEL_TRIALS`, to share the
machine's cores, and the storage URL never in `sys.argv` (W&B records it) when it holds a password.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from optuna.storages import InMemoryStorage

from scalelab.messages import first_line, has_credentials, redact_text, redact_url
from scalelab.record import write_atomic
from scalelab.sweeps import algorithms, custom_space, results
from scalelab.sweeps import study as studies
from scalelab.sweeps.config import DEFAULT_SWEEP_ROOT, SweepSettings
from scalelab.sweeps.heartbeat import Heartbeat, running_numbers, wait_for_orphans
from scalelab.sweeps.interruption import INTERRUPTED_EXIT, StopSignals, interrupted_line
from scalelab.sweeps.job_overrides import overrides_for_jobs
from scalelab.sweeps.lanes import Lanes
from scalelab.sweeps.outcome import Outcome
from scalelab.sweeps.plan import LADDER_ID_KEY, Plan, Scale, make_plan, parse_command_line
from scalelab.sweeps.reporting import PARALLEL_TRIALS_ENV  # the jobs divide the cores by it
from scalelab.sweeps.search_space import format_value
from scalelab.sweeps.storage import make_storage

# We drive heartbeats ourselves (ask/tell, not Study.optimize); Optuna warns about both.
_HEARTBEAT_WARNING = ".*[Hh]eartbeat.*"
warnings.filterwarnings("ignore", message=_HEARTBEAT_WARNING)

log = logging.getLogger(__name__)

# Launchers whose launch() may run in several threads at once (each waits on its own jobs).
LANE_LAUNCHERS = ("SubmititLauncher", "LocalLauncher", "SlurmLauncher")
# Hydra's basic launcher runs the jobs of a batch one after another, in this process.
IN_PROCESS_LAUNCHER = "BasicLauncher"
IN_MEMORY_LINE = ("scalelab sweeper: storage null: in-memory studies, lost when the sweep ends (a rerun "
                  "starts over); jobs cannot reach them, so they get no trial.* overrides and no pruning")


class ScalelabSweeper(Sweeper):
    """Hydra's entry point; each keyword is a key of `ScalelabSweeperConf`.

    The public seam for a driver above it (the scaling study, `scalelab.scaling`): override
    `run_ladder(plan)`, and within it call `run_study` for a scale and `launch_runs` for runs
    outside any trial; `storage`, `sweep_dir` and `compose` are set once the sweep starts."""

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.settings = SweepSettings.from_node(**settings)
        self.hydra_context: Any = None
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.job_idx = 0
        self.custom_search_space: Optional[Callable[[Any, Any], None]] = None
        # (study name, trial number, outcome) of every trial this process told, in order
        self.told: list[tuple[str, int, Outcome]] = []
        self.signals = StopSignals()
        # (study name, trial numbers) marked FAIL by the interruption
        self.interrupted: tuple[str, list[int]] = ("", [])
        self.compose: Optional[Callable[[list[str]], DictConfig]] = None  # overrides -> job config
        self.storage: Any = None
        self.heartbeat: Optional[Heartbeat] = None
        self.ladder_id: Optional[str] = None  # kept in the storage; see `studies.ladder_id`
        self.ladder_overrides: list[str] = []  # `trial.ladder_id=...` for jobs that declare it
        self.takes_ladder_id = False

    def _keep_ladder_id(self, ladder_id: str) -> None:
        """The ladder's id, and the override that hands it to jobs that declare it (as the other
        trial.* keys: jobs cannot reach an in-memory study, so they get none)."""
        self.ladder_id = ladder_id
        self.ladder_overrides = [f"{LADDER_ID_KEY}={format_value(ladder_id)}"] if self.takes_ladder_id else []

    # ------------------------------------------------------------------ hydra interface
    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        with read_write(config), open_dict(config):
            raw_dir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("dir")
            if raw_dir is None or "${now:" in str(raw_dir):
                # A time-stamped folder cannot be found again: use a deterministic one, so
                # that the same command resumes in the same folder.
                config.hydra.sweep.dir = f"{DEFAULT_SWEEP_ROOT}/{self.settings.study_name}"
            # Keep a storage password out of every file Hydra writes (multirun.yaml, each
            # job's .hydra/hydra.yaml): jobs get the URL through the environment instead.
            if has_credentials(self.settings.storage):
                config.hydra.sweeper.storage = redact_url(self.settings.storage)
            config.hydra.overrides.hydra = overrides_for_jobs(config.hydra.overrides.hydra, self.settings.storage)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        # The settings hold the storage URL now; the raw command line must not (W&B records it).
        # In place: whoever holds the list sees the redacted one.
        sys.argv[:] = [redact_text(arg) for arg in sys.argv]

    def sweep(self, arguments: List[str]) -> Any:
        # again here: Hydra's plugin scan imports this module inside catch_warnings()
        warnings.filterwarnings("ignore", message=_HEARTBEAT_WARNING)
        try:
            with self.signals.raise_keyboard_interrupt():
                plan, storage = self._prepare(arguments)
                returns = self._run_studies(plan, storage)
        # A SweepError (bad sweep settings) goes up as it is: `scalelab train -m` prints it in one
        # line (exit 2), a plain Hydra app's own report does too (exit 1; `hydra_private`).
        except (KeyboardInterrupt, SystemExit) as e:
            if not self.signals.interrupted(e):
                raise
            print(interrupted_line(*self.interrupted), file=sys.stderr, flush=True)
            raise SystemExit(INTERRUPTED_EXIT) from None
        failed = results.failure_line(self.told, self.settings.max_failure_rate, self.settings.allow_all_failed)
        if failed:
            print(failed, file=sys.stderr, flush=True)
            raise SystemExit(results.FAILED_EXIT)
        return returns

    # ------------------------------------------------------------------ before any trial
    def _prepare(self, arguments: Sequence[str]) -> tuple[Plan, Any]:
        """The plan and the storage, with every check that can fail before a trial starts."""
        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        self.compose = lambda overrides: loader.load_sweep_config(self.config, overrides)
        plan = make_plan(parse_command_line(arguments, loader), self.settings, self.compose)
        s = self.settings
        algorithms.build("sampler", plan.sampler)  # only to fail now: each study builds its own
        algorithms.build("pruner", s.pruner)
        self.custom_search_space = custom_space.load(s.custom_search_space)
        if s.pruner is not None and plan.trial_prefix is None:
            log.warning("scalelab sweeper: the job config takes no `trial` node: its jobs cannot report "
                        "intermediate values, so the pruner never stops one")
        log.info("scalelab sweeper: %s", plan.summary())
        if s.storage is None:
            log.info(IN_MEMORY_LINE)
            storage: Any = InMemoryStorage()
        else:
            # a StorageError is a SweepError
            storage = make_storage(s.storage, heartbeat_interval=s.heartbeat_interval or None,
                                   grace_period=s.grace_period, check=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return plan, storage

    # ------------------------------------------------------------------ the studies
    def _run_studies(self, plan: Plan, storage: Any) -> list:
        """The ladder's studies, with this process's trials kept alive by heartbeats."""
        interval = self.settings.heartbeat_interval
        at_once = 1 if IN_PROCESS_LAUNCHER in _class_names(self.launcher) else self.settings.n_jobs
        os.environ[PARALLEL_TRIALS_ENV] = str(at_once)
        self.storage = storage
        self.takes_ladder_id = plan.takes_ladder_id and self.settings.storage is not None
        self._keep_ladder_id(studies.ladder_id(storage, self.settings.study_name))
        self.heartbeat = Heartbeat(storage, interval) if interval else None
        try:
            return self.run_ladder(plan)
        finally:
            if self.heartbeat is not None:
                self.heartbeat.close()

    @property
    def sweep_dir(self) -> Path:
        """The sweep's folder, absolute, so that jobs find it whatever their working directory."""
        assert self.config is not None
        return Path(str(self.config.hydra.sweep.dir)).resolve()

    def run_ladder(self, plan: Plan) -> list:
        """Each scale's study in turn; a driver above the sweeper overrides this."""
        return [batch for scale in plan.scales for batch in self.run_study(plan, scale)]

    def run_study(self, plan: Plan, scale: Scale, prepare: Optional[Callable[[optuna.Study], Plan]] = None) -> list:
        """The trials of one scale; `prepare(study)`, where given, returns the plan for this study
        (a scaling study's own search range)."""
        assert self.config is not None and self.launcher is not None
        s = self.settings
        study = studies.open_study(self.storage, scale.study_name(s.study_name), s,
                                   studies.sampler_for_scale(plan.sampler, scale.name), plan.space.distributions,
                                   self.ladder_id)
        self._keep_ladder_id(study.user_attrs[studies.LADDER_ID_ATTR])  # another worker's, if it came first
        if prepare is not None:
            plan = prepare(study)
        sweep_dir = self.sweep_dir
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._save_multirun_yaml(sweep_dir)
        if studies.budget_left(study, plan.n_trials, s.grace_period, count_running=False) <= 0:
            log.info("study %s: %d trials already done", study.study_name, plan.n_trials)
            results.write(study, sweep_dir / scale.folder)
            return []
        held = len(study.get_trials(deepcopy=False))
        if held:
            # Another worker is on this study, an earlier (killed, interrupted) run left trials, or
            # `prepare` enqueued one: a sampler seeded as at the start would sample their start-up
            # points again. Reseeded from the trials held, the sweep stays reproducible.
            seeded = studies.sampler_for_scale(plan.sampler, scale.name, held)
            if seeded is plan.sampler:  # no seed to derive from: the sampler's own entropy
                study.sampler.reseed_rng()
            else:
                study.sampler = algorithms.build("sampler", seeded)
        lanes = Lanes(self, plan, study, scale, sweep_dir, self.heartbeat)
        try:
            self._fill_budget(study, lanes)
        except (KeyboardInterrupt, SystemExit) as e:
            if self.signals.interrupted(e):
                self.interrupted = (study.study_name, lanes.interrupt())
            raise
        studies.log_best(study)
        results.write(study, sweep_dir / scale.folder)
        return lanes.returns

    def _fill_budget(self, study: optuna.Study, lanes: Lanes) -> None:
        """Trials until `n_trials` have run to their own end. While the budget is spent only by
        trials RUNNING in other processes, wait for them: a dead process's trial is failed
        without counting and its place is run here; a live worker's is left to that worker."""
        s, n_trials = self.settings, lanes.plan.n_trials
        names = _class_names(self.launcher)
        in_lanes = bool(names & set(LANE_LAUNCHERS)) and IN_PROCESS_LAUNCHER not in names
        while True:
            left = studies.budget_left(study, n_trials, s.grace_period)
            if left > 0:
                log.info("study %s: up to %d trials, %d at a time", study.study_name, left, s.n_jobs)
                lanes.run(s.n_jobs, in_lanes)
            others = running_numbers(study)  # this process's trials have all been told by now
            if not others or not s.grace_period:
                return  # nothing to wait for, or no heartbeats to tell a dead trial from a live one
            if studies.budget_left(study, n_trials, s.grace_period, count_running=False) <= 0:
                return  # spent by finished trials alone
            log.info("study %s: waiting for trial(s) %s of other processes (failed if silent for %ss)",
                     study.study_name, sorted(others), s.grace_period)
            stale = wait_for_orphans(study, others, s.grace_period, s.heartbeat_interval)
            if stale:
                log.warning("study %s: trial(s) %s had no heartbeat: marked FAIL, not counted",
                            study.study_name, stale)
            if studies.budget_left(study, n_trials, s.grace_period) <= 0:
                return

    def launch_runs(self, jobs: Sequence[tuple[str, list[str]]]) -> None:
        """Runs outside any trial (a scaling study's seed and verification runs): (subdir,
        overrides) each, `n_jobs` at a time. A folder that holds a finished run is not trained
        again (the run says so and returns), so a rerun launches them all again safely."""
        sweep_dir = self.sweep_dir
        for start in range(0, len(jobs), self.settings.n_jobs):
            batch = [[*overrides, *self.ladder_overrides, f"hydra.sweep.dir={format_value(str(sweep_dir))}",
                      f"hydra.sweep.subdir={format_value(subdir)}"]
                     for subdir, overrides in jobs[start:start + self.settings.n_jobs]]
            try:
                self.launcher.launch(batch, initial_job_idx=self.job_idx)
            except Exception as e:  # noqa: BLE001 - a failed run is recorded in its folder; go on
                log.error("scalelab sweeper: launcher: %s", first_line(e))
            self.job_idx += len(batch)

    def _save_multirun_yaml(self, sweep_dir: Path) -> None:
        path = sweep_dir / "multirun.yaml"
        if not path.exists():
            write_atomic(path, OmegaConf.to_yaml(self.config))


def _class_names(launcher: Any) -> set[str]:
    """The names of the launcher's classes. Names, not classes: Hydra's plugin scan loads its
    launcher modules a second time, so their classes are not the ones this module imports."""
    return {c.__name__ for c in type(launcher).__mro__}
