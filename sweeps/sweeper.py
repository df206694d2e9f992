"""The `scalelab` Hydra sweeper: Optuna ask/tell studies, one per scale of a ladder.

`hydra/sweeper=scalelab` (or a preset, `sweeps=NAME`) turns a multirun into Optuna studies:

- every comma-list (or `range(...)`) override on the command line is a grid axis; each
  combination of axis values is a *scale* with its own study `<study_name>/<axis=value,...>`
  and its own budget of `n_trials` (`plan`);
- `params` (and `interval(...)`/`choice(...)` sweeps on the command line) is the search
  space, sampled with `study.ask()`;
- each trial is one Hydra job, handed to the configured launcher with the overrides
  `trial.study_name`, `trial.storage`, `trial.number` (and `trial.searched` where the job
  config declares it), so the job reports intermediate values through
  `scalelab.sweeps.reporting.TrialReporter` and can be pruned;
- the job's `run.json` decides what is told (`outcome`).

Several processes started with the same command share one study, and a restarted sweep
continues where it stopped (`study`); output folders are `<hydra.sweep.dir>/<scale>/trial_<n>`.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from scalelab.messages import first_line, has_credentials, redact_url
from scalelab.record import FILE_NAME
from scalelab.sweeps import algorithms
from scalelab.sweeps import study as studies
from scalelab.sweeps.config import SweepError, SweepSettings
from scalelab.sweeps.heartbeat import Heartbeat, running_numbers, wait_for_orphans
from scalelab.sweeps.hydra_patch import overrides_for_jobs
from scalelab.sweeps.plan import Plan, Scale, make_plan, parse_command_line
from scalelab.sweeps.search_space import format_value
from scalelab.sweeps.storage import StorageError, make_storage, url_for_jobs

# We drive heartbeats ourselves (ask/tell, not Study.optimize); Optuna warns about both.
_HEARTBEAT_WARNING = ".*[Hh]eartbeat.*"
warnings.filterwarnings("ignore", message=_HEARTBEAT_WARNING)

log = logging.getLogger(__name__)

DEFAULT_SWEEP_ROOT = "runs/sweeps"
# Launchers whose launch() may run in several threads at once (each waits on its own jobs).
LANE_LAUNCHERS = ("SubmititLauncher", "LocalLauncher", "SlurmLauncher")


class OptunaSweeper(Sweeper):
    """Hydra's entry point; each keyword is a key of `ScalelabSweeperConf`."""

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.settings = SweepSettings.from_node(**settings)
        self.hydra_context: Any = None
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.job_idx = 0

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

    def sweep(self, arguments: List[str]) -> Any:
        # again here: Hydra's plugin scan imports this module inside catch_warnings()
        warnings.filterwarnings("ignore", message=_HEARTBEAT_WARNING)
        try:
            plan, storage = self._prepare(arguments)
            return self._run_studies(plan, storage)
        except SweepError as e:
            # One clear line, and no traceback to bury it (Hydra, too, exits through
            # SystemExit after reporting an error).
            print(f"scalelab sweeper: error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    # ------------------------------------------------------------------ before any trial
    def _prepare(self, arguments: Sequence[str]) -> tuple[Plan, Any]:
        """The plan and the storage, with every check that can fail before a trial starts."""
        assert self.config is not None and self.hydra_context is not None
        loader = self.hydra_context.config_loader
        plan = make_plan(parse_command_line(arguments, loader), self.settings,
                         lambda overrides: loader.load_sweep_config(self.config, overrides))
        s = self.settings
        algorithms.build("sampler", s.sampler)  # only to fail now: each study builds its own
        algorithms.build("pruner", s.pruner)
        try:
            storage = make_storage(s.storage, heartbeat_interval=s.heartbeat_interval or None,
                                   grace_period=s.grace_period, check=True)
        except StorageError as e:
            raise SweepError(str(e)) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return plan, storage

    # ------------------------------------------------------------------ the studies
    def _run_studies(self, plan: Plan, storage: Any) -> list:
        """One study per scale, in turn, with this process's trials kept alive by heartbeats."""
        interval = self.settings.heartbeat_interval
        heartbeat = Heartbeat(storage, interval) if interval else None
        try:
            return [batch for scale in plan.scales for batch in self._run_study(plan, storage, scale, heartbeat)]
        finally:
            if heartbeat is not None:
                heartbeat.close()

    def _run_study(self, plan: Plan, storage: Any, scale: Scale, heartbeat: Optional[Heartbeat]) -> list:
        assert self.config is not None and self.launcher is not None
        s = self.settings
        study = studies.open_study(storage, scale.study_name(s.study_name), s)
        # absolute, so that jobs find it whatever their working directory (submitit, chdir)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._save_multirun_yaml(sweep_dir)
        if studies.budget_left(study, s.n_trials, s.grace_period) <= 0:
            log.info("study %s: %d trials already done", study.study_name, s.n_trials)
            return []
        running_at_start = running_numbers(study)
        if running_at_start:
            # Another worker is on this study (or was killed): do not sample the same random
            # start-up points again.
            study.sampler.reseed_rng()
        log.info("study %s: up to %d trials, %d at a time", study.study_name, s.n_trials, s.n_jobs)
        lanes = _Lanes(self, plan, study, scale, sweep_dir, heartbeat)
        in_lanes = type(self.launcher).__name__ in LANE_LAUNCHERS and not isinstance(self.launcher, BasicLauncher)
        if s.n_jobs == 1 or not in_lanes:
            # In-process jobs (Hydra's job state is global) and joblib (one Parallel at a
            # time): batches of n_jobs trials.
            while lanes.one_batch(s.n_jobs):
                pass
        else:
            lanes.run(s.n_jobs)
        wait_for_orphans(study, running_at_start, s.grace_period, s.heartbeat_interval)
        studies.log_best(study)
        return lanes.returns

    def _save_multirun_yaml(self, sweep_dir: Path) -> None:
        path = sweep_dir / "multirun.yaml"
        if not path.exists():
            tmp = path.with_suffix(f".yaml.{os.getpid()}.tmp")
            OmegaConf.save(self.config, tmp)
            os.replace(tmp, path)


class _Lanes:
    """The trials of one study: asked for and launched in batches, or in `n` lanes that each
    refill as soon as their trial ends, so that no lane waits for a whole batch."""

    def __init__(self, sweeper: OptunaSweeper, plan: Plan, study: optuna.Study, scale: Scale,
                 sweep_dir: Path, heartbeat: Optional[Heartbeat]) -> None:
        self.sweeper, self.plan, self.study, self.scale = sweeper, plan, study, scale
        self.sweep_dir, self.heartbeat = sweep_dir, heartbeat
        self.storage_arg = url_for_jobs(sweeper.settings.storage)
        self.lock = threading.Lock()
        self.returns: list = []

    def run(self, n: int) -> None:
        def lane() -> None:
            while self.one_batch(1):
                pass

        threads = [threading.Thread(target=lane, name=f"scalelab-lane-{i}") for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _ask(self) -> tuple[optuna.Trial, List[str], Path]:
        """A new trial, its job overrides and its run folder."""
        trial = self.study.ask(fixed_distributions=self.plan.space.distributions)
        subdir = studies.new_subdir(self.sweep_dir, self.scale, trial.number)
        run_dir = (self.sweep_dir / subdir).resolve()
        overrides = self.plan.job_overrides(self.scale, trial.params) + [
            f"trial.study_name={format_value(self.study.study_name)}",
            f"trial.storage={self.storage_arg}",
            f"trial.number={trial.number}",
            f"hydra.sweep.dir={format_value(str(self.sweep_dir))}",
            f"hydra.sweep.subdir={format_value(str(subdir))}",
        ]
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("record", str(run_dir / FILE_NAME))
        if self.scale.name:
            trial.set_user_attr("scale", self.scale.name)
        if self.heartbeat is not None:
            self.heartbeat.add(trial._trial_id)
        return trial, overrides, run_dir

    def one_batch(self, k: int) -> bool:
        """Launch up to `k` trials and tell their results; False once the budget is spent."""
        settings = self.sweeper.settings
        with self.lock:
            left = studies.budget_left(self.study, settings.n_trials, settings.grace_period)
            if left <= 0:
                return False
            batch = [self._ask() for _ in range(min(k, left))]
            first_idx = self.sweeper.job_idx
            self.sweeper.job_idx += len(batch)
        launcher_error = None
        try:
            results = list(self.sweeper.launcher.launch([b[1] for b in batch], initial_job_idx=first_idx))
        except Exception as e:  # noqa: BLE001 - the launcher itself failed: FAIL, go on
            launcher_error = f"launcher: {first_line(e)}"
            log.error("study %s: %s", self.study.study_name, launcher_error)
            results = [None] * len(batch)
        for (trial, _, run_dir), job in zip(batch, results):
            try:
                studies.finish_trial(self.study, trial, job, run_dir, self.plan.objectives, launcher_error)
            finally:
                if self.heartbeat is not None:
                    self.heartbeat.discard(trial._trial_id)
        with self.lock:
            self.returns.append(results)
        return True
