"""The `scalelab` Hydra sweeper: Optuna 5 ask/tell studies, one per scale of a ladder.

`hydra/sweeper=scalelab` (or a preset, `sweeps=NAME`) turns a multirun into Optuna studies:

- every comma-list (or `range(...)`) override on the command line is a grid axis; each
  combination of axis values is a *scale* with its own study `<study_name>/<axis=value,...>`
  and its own budget of `n_trials`;
- `params` (and `interval(...)`/`choice(...)` sweeps on the command line) is the search
  space, sampled with `study.ask()`;
- each trial is one Hydra job, handed to the configured launcher with the overrides
  `trial.study_name`, `trial.storage`, `trial.number`, so the job reports intermediate values
  (`scalelab.platform.pruning.TrialCallback`) and can be pruned;
- the job's `run.json` decides what is told: completed -> final validation loss; diverged ->
  initial loss (no progress) and user attr status=diverged; pruned -> PRUNED; failed, an
  exception, a crash, a missing record or a non-finite value -> FAIL with a reason.

The budget is counted in the storage (finished + running trials), so several processes
started with the same command share one study, and a restarted sweep continues where it
stopped: output folders are `<hydra.sweep.dir>/<scale>/trial_<number>`, never reused.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.plugins.sweeper import Sweeper

# We drive heartbeats ourselves (ask/tell, not Study.optimize); Optuna warns about both.
warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")

log = logging.getLogger(__name__)

DEFAULT_SWEEP_ROOT = "runs/sweeps"
STORAGE_ENV = "SCALELAB_OPTUNA_STORAGE"
# Launchers whose launch() may run in several threads at once (each waits on its own jobs).
LANE_LAUNCHERS = ("SubmititLauncher", "LocalLauncher", "SlurmLauncher")
RECORD = "run.json"


class SweepError(ValueError):
    """Bad sweep input: reported in one line before any trial starts."""


@dataclass
class ScalelabSweeperConf:
    _target_: str = "hydra_plugins.scalelab_sweeper.ScalelabSweeper"
    _recursive_: bool = False  # sampler/pruner are built per study, from their configs
    study_name: str = "scalelab"
    # None: sqlite:///runs/sweeps/studies.db. Also `journal:PATH` and postgresql:// URLs.
    storage: Optional[str] = None
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    )
    pruner: Any = None
    direction: str = "minimize"
    # Multi-objective: e.g. [minimize, minimize] with objectives [metrics.final_val_loss, scale.C]
    directions: Optional[List[str]] = None
    # Dotted paths into run.json, one per direction; default: the final validation loss.
    objectives: Optional[List[str]] = None
    n_trials: int = 20
    n_jobs: int = 1
    params: Dict[str, Any] = field(default_factory=dict)
    heartbeat_interval: int = 10
    # Seconds without a heartbeat after which a RUNNING trial is failed; default 3 beats.
    grace_period: Optional[int] = None


@dataclass
class Scale:
    name: str  # "" for a single scale, else "axis=value,axis=value"
    overrides: List[str]  # the grid overrides of this scale


def _first_line(e: BaseException) -> str:
    from scalelab.platform.storage import redact_url

    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    return redact_url(f"{type(e).__name__}: {line}" if line else type(e).__name__)


def _redact_text(text: str) -> str:
    from scalelab.platform.storage import redact_url

    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: redact_url(m.group(0)), text)


def _as_typed(override: Any, values: List[str]) -> List[str]:
    """The axis values as the user typed them (`1e6`, not `1000000.0`) for study and folder
    names, when the override is a plain comma list; Hydra's own strings otherwise."""
    raw = (override.input_line or "").split("=", 1)[-1]
    tokens = [t.strip() for t in raw.split(",")]
    if any(c in raw for c in "[]{}()'\"\\$") or len(tokens) != len(values) or not all(tokens):
        return values
    return tokens


def _get(record: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _safe_dirname(scale: str) -> str:
    return scale.replace("/", "_").replace(os.sep, "_") or "_"


class _Heartbeat:
    """Beats for the trials this process has in flight (jobs may beat too, via the callback)."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.storage, self.interval = storage, max(0.2, float(interval))
        self.trial_ids: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="scalelab-heartbeat", daemon=True)
        self.thread.start()

    def add(self, trial_id: int) -> None:
        from scalelab.platform.storage import record_heartbeat

        with self.lock:
            self.trial_ids.add(trial_id)
        record_heartbeat(self.storage, trial_id)

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.trial_ids.discard(trial_id)

    def _run(self) -> None:
        from scalelab.platform.storage import record_heartbeat

        while not self.stop.wait(self.interval):
            with self.lock:
                ids = list(self.trial_ids)
            for trial_id in ids:
                try:
                    record_heartbeat(self.storage, trial_id)
                except Exception:  # noqa: BLE001 - a missed beat is not fatal
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        study_name: str = "scalelab",
        storage: Optional[str] = None,
        sampler: Any = None,
        pruner: Any = None,
        direction: str = "minimize",
        directions: Optional[Sequence[str]] = None,
        objectives: Optional[Sequence[str]] = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        params: Optional[Dict[str, Any]] = None,
        heartbeat_interval: int = 10,
        grace_period: Optional[int] = None,
    ) -> None:
        super().__init__()
        from omegaconf import OmegaConf

        def plain(x: Any) -> Any:
            return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x

        self.study_name = str(study_name)
        self.storage_url = storage
        self.sampler_cfg = plain(sampler)
        self.pruner_cfg = plain(pruner)
        self.directions = list(plain(directions) or [direction])
        self.objectives = list(plain(objectives) or [])
        self.n_trials = int(n_trials)
        self.n_jobs = max(1, int(n_jobs))
        self.params = plain(params) or {}
        self.heartbeat_interval = int(heartbeat_interval or 0)
        self.grace_period = grace_period or (3 * self.heartbeat_interval or None)
        self.hydra_context = None
        self.config = None
        self.launcher = None
        self.job_idx = 0
        self.sweep_dir: Optional[Path] = None

    # ------------------------------------------------------------------ hydra interface
    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins
        from omegaconf import OmegaConf, open_dict, read_write

        self.hydra_context = hydra_context
        self.config = config
        with read_write(config), open_dict(config):
            raw_dir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("dir")
            if raw_dir is None or "${now:" in str(raw_dir):
                # A time-stamped folder cannot be found again: use a deterministic one, so
                # that the same command resumes in the same folder.
                config.hydra.sweep.dir = f"{DEFAULT_SWEEP_ROOT}/{self.study_name}"
            self._hide_credentials(config)
            self._quote_params_overrides(config)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    @staticmethod
    def _quote_params_overrides(config) -> None:
        """`+hydra.sweeper.params.x=interval(0,1)` -> `...='interval(0,1)'` for the jobs, which
        compose their config again, maybe in another process without our parser patch."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from scalelab.platform.search_space import format_value

        parser = OverridesParser.create()
        quoted = []
        for line in config.hydra.overrides.hydra:
            key, _, value = line.partition("=")
            if key.lstrip("+~").startswith("hydra.sweeper.params."):
                try:
                    if parser.parse_override(line).is_sweep_override():
                        line = f"{key}={format_value(value)}"
                except Exception:  # noqa: BLE001 - already a plain value
                    pass
            quoted.append(line)
        config.hydra.overrides.hydra = quoted

    def _hide_credentials(self, config) -> None:
        """Keep a storage password out of every file Hydra writes (multirun.yaml, each job's
        `.hydra/hydra.yaml`, which Hydra resolves): the sweeper holds the URL, the Hydra node
        shows it redacted, and jobs get it through an environment variable."""
        from scalelab.platform.search_space import format_value
        from scalelab.platform.storage import has_credentials, redact_url

        if not has_credentials(self.storage_url):
            return
        os.environ[STORAGE_ENV] = self.storage_url
        shown = redact_url(self.storage_url)
        config.hydra.sweeper.storage = shown
        config.hydra.overrides.hydra = [
            f"{o.split('=', 1)[0]}={format_value(shown)}"
            if o.lstrip("+").startswith("hydra.sweeper.storage=") else o
            for o in config.hydra.overrides.hydra
        ]

    def sweep(self, arguments: List[str]) -> Any:
        # again here: Hydra's plugin scan imports this module inside catch_warnings()
        warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")
        try:
            plan = self._plan(arguments)
        except SweepError as e:
            # One clear line before any trial starts, and no traceback to bury it (Hydra, too,
            # exits through SystemExit after reporting an error).
            print(f"scalelab sweeper: error: {e}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        returns: List[Sequence[Any]] = []
        heartbeat = _Heartbeat(plan["storage"], self.heartbeat_interval) if self.heartbeat_interval else None
        try:
            for scale in plan["scales"]:
                returns.extend(self._run_study(plan, scale, heartbeat))
        finally:
            if heartbeat is not None:
                heartbeat.close()
        return returns

    # ------------------------------------------------------------------ planning / validation
    def _plan(self, arguments: List[str]) -> dict:
        import optuna
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.core.override_parser.types import IntervalSweep
        from hydra.errors import HydraException
        from omegaconf import OmegaConf

        from scalelab.platform import storage as storage_mod
        from scalelab.platform.search_space import SearchSpaceError, parse_params

        assert self.config is not None and self.hydra_context is not None
        if self.n_trials < 1:
            raise SweepError(f"n_trials must be at least 1, got {self.n_trials}")
        for d in self.directions:
            if str(d).lower() not in ("minimize", "maximize"):
                raise SweepError(f"direction must be 'minimize' or 'maximize', got {d!r}")
        if len(self.directions) > 1 and len(self.objectives) != len(self.directions):
            raise SweepError(
                f"{len(self.directions)} directions need as many `objectives` (dotted paths in "
                f"run.json, e.g. [metrics.final_val_loss, scale.C]), got {self.objectives}"
            )
        if self.objectives and len(self.objectives) != len(self.directions):
            raise SweepError(f"objectives {self.objectives} do not match directions {self.directions}")

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        try:
            overrides = parser.parse_overrides(list(arguments))
        except HydraException as e:
            raise SweepError(f"cannot parse the command line: {_first_line(e)}") from None
        axes: list[list[str]] = []
        axis_names: list[list[str]] = []
        fixed: list[str] = []
        search_from_cli: dict[str, str] = {}
        for o in overrides:
            key = o.get_key_element()
            if not o.is_sweep_override():
                fixed.append(o.input_line or f"{key}={o.get_value_element_as_str()}")
            elif isinstance(o.value(), IntervalSweep) or (
                o.is_discrete_sweep() and not getattr(o.value(), "simple_form", True)
                and o.value_type is not None and o.value_type.name == "CHOICE_SWEEP"
            ):
                # interval(...) / choice(...) on the command line: a search dimension.
                search_from_cli[key] = o.input_line.split("=", 1)[1] if o.input_line else ""
            else:
                values = list(o.sweep_string_iterator())
                axes.append([f"{key}={v}" for v in values])
                axis_names.append([f"{o.key_or_group}={v}" for v in _as_typed(o, values)])

        # The composed config of one job, to check every parameter path exists.
        try:
            probe = self.hydra_context.config_loader.load_sweep_config(
                self.config, fixed + [a[0] for a in axes]
            )
        except Exception as e:  # noqa: BLE001
            raise SweepError(f"the job config does not compose: {_first_line(e)}") from None
        params = dict(self.params)
        params.update(search_from_cli)
        try:
            space = parse_params(params, probe)
        except SearchSpaceError as e:
            raise SweepError(str(e)) from None
        if not space.distributions:
            log.warning("scalelab sweeper: empty search space; every trial runs the same config")
        for path in ("trial.study_name", "trial.storage", "trial.number"):
            if OmegaConf.select(probe, path, default="<absent>") == "<absent>":
                raise SweepError(
                    f"the job config has no `{path}` key: the training config must declare a "
                    "`trial` node {study_name, storage, number} (all null)"
                )

        # Built once here only to fail early; each study gets its own instances.
        self._instantiate("sampler", self.sampler_cfg)
        self._instantiate("pruner", self.pruner_cfg)
        try:
            storage = storage_mod.make_storage(
                self.storage_url,
                heartbeat_interval=self.heartbeat_interval or None,
                grace_period=self.grace_period,
                check=True,
            )
        except storage_mod.StorageError as e:
            raise SweepError(str(e)) from None

        scales: list[Scale] = []
        for combo, names in zip(itertools.product(*axes), itertools.product(*axis_names)):
            scales.append(Scale(name=",".join(names), overrides=list(combo)))
        if not scales:
            scales = [Scale(name="", overrides=[])]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return {"storage": storage, "space": space, "fixed": fixed, "scales": scales}

    def _instantiate(self, what: str, cfg: Any) -> Any:
        from hydra.utils import instantiate

        if cfg is None:
            return None
        if isinstance(cfg, str):
            cfg = {"_target_": cfg}
        if not isinstance(cfg, dict) or "_target_" not in cfg:
            raise SweepError(f"{what} must be null or a mapping with `_target_`, got {cfg!r}")
        try:
            obj = instantiate(cfg)
        except Exception as e:  # noqa: BLE001
            cause = e.__cause__ or e
            raise SweepError(
                f"cannot create {what} {cfg['_target_']!r}: {_first_line(cause)}"
            ) from None
        import optuna

        base = optuna.samplers.BaseSampler if what == "sampler" else optuna.pruners.BasePruner
        if not isinstance(obj, base):
            raise SweepError(f"{what} {cfg['_target_']!r} is not an Optuna {what}")
        return obj

    # ------------------------------------------------------------------ one study
    def _study(self, plan: dict, scale: Scale):
        import optuna

        name = f"{self.study_name}/{scale.name}" if scale.name else self.study_name
        sampler = self._instantiate("sampler", self.sampler_cfg)
        pruner = self._instantiate("pruner", self.pruner_cfg) or optuna.pruners.NopPruner()
        if isinstance(self.pruner_cfg, str):
            self.pruner_cfg = {"_target_": self.pruner_cfg}
        study = optuna.create_study(
            storage=plan["storage"],
            study_name=name,
            sampler=sampler,
            pruner=pruner,
            directions=[d.lower() for d in self.directions],
            load_if_exists=True,
        )
        from scalelab.platform.pruning import PRUNER_ATTR

        if study.user_attrs.get(PRUNER_ATTR) != self.pruner_cfg:
            study.set_user_attr(PRUNER_ATTR, self.pruner_cfg)
        if [d.name.lower() for d in study.directions] != [d.lower() for d in self.directions]:
            raise SweepError(
                f"study {name!r} exists with directions "
                f"{[d.name.lower() for d in study.directions]}, not {self.directions}"
            )
        return study

    def _budget_left(self, study) -> int:
        from optuna.trial import TrialState

        from scalelab.platform.storage import fail_stale_trials

        stale = fail_stale_trials(study, self.grace_period)
        if stale:
            log.warning("study %s: trials %s had no heartbeat: marked FAIL", study.study_name, stale)
        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                   TrialState.RUNNING, TrialState.WAITING)
        return self.n_trials - len(study.get_trials(deepcopy=False, states=counted))

    def _storage_for_jobs(self) -> str:
        from scalelab.platform.storage import has_credentials, resolve_url

        url = resolve_url(self.storage_url)
        if has_credentials(url):
            os.environ[STORAGE_ENV] = url
            return "${oc.env:" + STORAGE_ENV + "}"
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            path = url[len("sqlite:///"):]
            if path and path != ":memory:":
                url = "sqlite:///" + os.path.abspath(path)
        elif url.startswith("journal:") or "://" not in url:
            path = url[len("journal:"):] if url.startswith("journal:") else url
            url = "journal:" + os.path.abspath(path)
        from scalelab.platform.search_space import format_value

        return format_value(url)

    def _prepare_trial(self, plan: dict, scale: Scale, study, sweep_dir: Path, storage_arg: str):
        """Ask for a trial and build its job overrides; the run folder is new by construction."""
        space = plan["space"]
        trial = study.ask(fixed_distributions=space.distributions)
        scale_dir = Path(_safe_dirname(scale.name)) if scale.name else Path()
        subdir = scale_dir / f"trial_{trial.number}"
        suffix = 1
        while (sweep_dir / subdir).exists():  # e.g. the storage was reset: never overwrite
            suffix += 1
            subdir = scale_dir / f"trial_{trial.number}.{suffix}"
        run_dir = (sweep_dir / subdir).resolve()
        from scalelab.platform.search_space import format_value

        sampled = space.overrides(trial.params)
        overrides = (
            list(scale.overrides) + list(plan["fixed"]) + list(space.fixed) + sampled + [
                f"trial.study_name={format_value(study.study_name)}",
                f"trial.storage={storage_arg}",
                f"trial.number={trial.number}",
                f"hydra.sweep.dir={format_value(str(sweep_dir))}",
                f"hydra.sweep.subdir={format_value(str(subdir))}",
            ]
        )
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("record", str(run_dir / RECORD))
        if scale.name:
            trial.set_user_attr("scale", scale.name)
        return trial, overrides, run_dir

    def _run_study(self, plan: dict, scale: Scale, heartbeat: Optional[_Heartbeat]) -> list:
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        assert self.config is not None and self.launcher is not None
        study = self._study(plan, scale)
        # absolute, so that jobs find it whatever their working directory (submitit, chdir)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._save_multirun_yaml(sweep_dir)
        storage_arg = self._storage_for_jobs()
        if self._budget_left(study) <= 0:
            log.info("study %s: %d trials already done", study.study_name, self.n_trials)
            return []
        from optuna.trial import TrialState

        running_at_start = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        if running_at_start:
            # Another worker is on this study (or was killed): do not sample the same random
            # start-up points again.
            study.sampler.reseed_rng()
        log.info("study %s: up to %d trials, %d at a time", study.study_name, self.n_trials, self.n_jobs)
        lock = threading.Lock()
        returns: list = []

        def one_batch(k: int) -> bool:
            with lock:
                left = self._budget_left(study)
                if left <= 0:
                    return False
                batch = []
                for _ in range(min(k, left)):
                    trial, overrides, run_dir = self._prepare_trial(plan, scale, study, sweep_dir, storage_arg)
                    if heartbeat is not None:
                        heartbeat.add(trial._trial_id)
                    batch.append((trial, overrides, run_dir))
                first_idx = self.job_idx
                self.job_idx += len(batch)
            try:
                results = self.launcher.launch([b[1] for b in batch], initial_job_idx=first_idx)
                results = list(results)
            except Exception as e:  # noqa: BLE001 - the launcher itself failed: FAIL, go on
                reason = f"launcher: {_first_line(e)}"
                log.error("study %s: %s", study.study_name, reason)
                results = [None] * len(batch)
                for b in batch:
                    b[0].set_user_attr("error", reason)
            for (trial, _, run_dir), ret in zip(batch, results):
                try:
                    self._tell(study, trial, ret, run_dir)
                finally:
                    if heartbeat is not None:
                        heartbeat.discard(trial._trial_id)
            with lock:
                returns.append(results)
            return True

        lanes = type(self.launcher).__name__ in LANE_LAUNCHERS
        if self.n_jobs == 1 or not lanes or isinstance(self.launcher, BasicLauncher):
            # In-process jobs (Hydra's job state is global) and joblib (one Parallel at a
            # time): batches of n_jobs trials.
            while one_batch(self.n_jobs):
                pass
        else:
            # Parallel launchers: n_jobs lanes, each refills as soon as its trial ends, so no
            # lane waits for a whole batch.
            def lane() -> None:
                while one_batch(1):
                    pass

            threads = [threading.Thread(target=lane, name=f"scalelab-lane-{i}") for i in range(self.n_jobs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self._settle(study, running_at_start)
        self._log_best(study)
        return returns

    def _settle(self, study, numbers: set) -> None:
        """Trials that were RUNNING when we started may be orphans of a killed sweep: wait
        until each has finished elsewhere or, without a heartbeat for the grace period, is
        failed, so that a resumed sweep does not end with trials left RUNNING."""
        from optuna.trial import TrialState

        from scalelab.platform.storage import fail_stale_trials

        if not numbers or not self.grace_period:
            return
        deadline = time.time() + self.grace_period + max(1, self.heartbeat_interval)
        while time.time() < deadline:
            fail_stale_trials(study, self.grace_period)
            running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
            if not running & numbers:
                return
            time.sleep(min(1.0, max(0.2, self.heartbeat_interval / 2)))

    # ------------------------------------------------------------------ results
    def _tell(self, study, trial, ret: Any, run_dir: Path) -> None:
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        record_path = run_dir / RECORD
        record = None
        if record_path.is_file():
            try:
                record = json.loads(record_path.read_text())
            except (OSError, ValueError) as e:
                record = None
                trial.set_user_attr("error", f"unreadable record: {_first_line(e)}")
        status = (record or {}).get("status")
        state, values, reason = TrialState.FAIL, None, None
        if ret is None:
            reason = trial.user_attrs.get("error", "launcher failed")
        elif ret.status == JobStatus.FAILED or isinstance(getattr(ret, "_return_value", None), BaseException):
            exc = getattr(ret, "_return_value", None)
            reason = _first_line(exc) if isinstance(exc, BaseException) else "job failed"
            if record and record.get("error"):
                reason = _redact_text(str(record["error"]).strip().splitlines()[0])
        elif record is None:
            reason = f"missing record {record_path}"
        elif status == "pruned":
            state = TrialState.PRUNED
        elif status == "failed":
            reason = _redact_text(str(record.get("error") or "run failed").strip().splitlines()[0])
        elif status in ("completed", "diverged"):
            values = self._objectives(record, getattr(ret, "_return_value", None), status)
            bad = [v for v in values if not _finite(v)]
            if bad:
                reason = f"non-finite objective {bad} (status {status})"
                values = None
            else:
                state = TrialState.COMPLETE
        else:
            reason = f"unknown record status {status!r}"
        if status:
            trial.set_user_attr("status", status)
        if reason:
            trial.set_user_attr("fail_reason", reason[:500])
        if state == TrialState.COMPLETE:
            study.tell(trial, values, skip_if_finished=True)
        else:
            study.tell(trial, state=state, skip_if_finished=True)
        shown = values if values is None or len(values) > 1 else values[0]
        log.info(
            "study %s: trial %d %s %s%s", study.study_name, trial.number, state.name,
            " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()),
            f" -> {shown}" if shown is not None else (f" ({reason})" if reason else ""),
        )

    def _objectives(self, record: dict, returned: Any, status: str) -> list:
        if status == "diverged":
            # No progress: the loss at the start stands for the run, so the region looks bad.
            initial = _get(record, "metrics.initial_loss")
            if self.objectives:
                return [initial] + [_get(record, p) for p in self.objectives[1:]]
            return [initial]
        if self.objectives:
            return [_get(record, p) for p in self.objectives]
        value = _get(record, "metrics.final_val_loss")
        if value is None and _finite(returned):
            value = float(returned)
        return [value]

    def _log_best(self, study) -> None:
        try:
            if len(self.directions) == 1:
                best = study.best_trial
                log.info("study %s: best value %.6g with %s", study.study_name, best.value, best.params)
            else:
                log.info("study %s: %d Pareto-optimal trials", study.study_name, len(study.best_trials))
        except ValueError:
            log.info("study %s: no completed trial", study.study_name)

    def _save_multirun_yaml(self, sweep_dir: Path) -> None:
        from omegaconf import OmegaConf

        path = sweep_dir / "multirun.yaml"
        if not path.exists():
            tmp = path.with_suffix(f".yaml.{os.getpid()}.tmp")
            OmegaConf.save(self.config, tmp)
            os.replace(tmp, path)


_registered = False
_stored = False


def store_configs() -> None:
    """Put `hydra/sweeper=scalelab` and every preset `sweeps=NAME` in Hydra's ConfigStore."""
    global _stored
    if _stored:
        return
    from importlib import resources

    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    cs = ConfigStore.instance()
    cs.store(group="hydra/sweeper", name="scalelab", node=ScalelabSweeperConf, provider="scalelab")
    for entry in sorted(resources.files("scalelab.sweeps").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            node = OmegaConf.create(entry.read_text())
            cs.store(group="sweeps", name=entry.name[: -len(".yaml")], node=node,
                     package="_global_", provider="scalelab")
    _stored = True


def _allow_params_on_command_line() -> None:
    """Let `'+hydra.sweeper.params.optim.lr=tag(log, interval(1e-4, 1e-1))'` through.

    Hydra refuses sweep syntax in any `hydra.*` override ("Sweeping over Hydra's configuration
    is not supported"); for our `params` the text is a search-space description, not a sweep,
    so it is kept as a string, exactly as if it had been written in a preset.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.types import ValueType

    original = ConfigLoaderImpl.validate_sweep_overrides_legal
    if getattr(original, "_scalelab", False):
        return

    def validate(overrides, run_mode, from_shell):
        for o in overrides:
            if (
                o.key_or_group.startswith("hydra.sweeper.params.")
                and o.is_sweep_override()
                and o.input_line
            ):
                o.value_type = ValueType.ELEMENT
                o._value = o.input_line.split("=", 1)[1]
        return original(overrides=overrides, run_mode=run_mode, from_shell=from_shell)

    validate._scalelab = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.validate_sweep_overrides_legal = staticmethod(validate)  # type: ignore[method-assign]


def register_with_hydra() -> None:
    """Make `hydra/sweeper=scalelab` and `sweeps=NAME` available (idempotent).

    Hydra's plugin scan reads `hydra_plugins` folders on disk, which misses editable installs,
    so the sweeper class is registered explicitly; the presets in `scalelab.sweeps` live
    outside `conf/`, so each is stored in the ConfigStore under the group `sweeps`.
    """
    global _registered
    store_configs()
    if _registered:
        return
    from hydra.core.plugins import Plugins

    from hydra_plugins.scalelab_sweeper import ScalelabSweeper

    Plugins.instance().register(ScalelabSweeper)
    _allow_params_on_command_line()
    _registered = True
