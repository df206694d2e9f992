"""What a sweep command will run, decided before any study is opened or any trial starts.

From the command line's parsed overrides and the `SweepSettings`:

- a sweep (comma list, `range(...)`, `choice(...)`) on a key listed in `ladder`, or below one,
  is a ladder axis; each combination of axis values is a *scale* with its own study
  `<study_name>/<axis=value,...>`; a `params` entry on such a key is an axis too (a preset's
  default ladder), which a sweep or a plain value of that key on the command line replaces;
- any other sweep is a search dimension, added to `params` with hydra-optuna-sweeper's meaning;
- anything else is passed to every trial as it is, and a plain value for a key that `params`
  searches takes that key out of the search;
- at least one key is searched (or a `custom_search_space` suggests them): a study of one
  config would run the same trial `n_trials` times;
- the training run's config (`scalelab.conf.schema.RunConfig`) bounds the search space by its
  `RANGES`, which each run checks again;
- directions are minimize/maximize; several need as many objectives, as dotted run.json paths
  (`objectives`, each a number a trial's record can hold) or as the values the job returns;
- the sampler's config, with a grid sampler's grid filled in from the params, and the budget
  (`n_trials`, at most the grid's size);
- whether the job config has the `trial` node (study_name, storage, number) that lets a job
  report intermediate values: a plain app has none and gets no `trial.*` overrides.

`make_plan` touches no storage and launches nothing: it only composes the job config (through
the `compose` it is given) to check the search space against it. Every problem is a
`SweepError`, reported in one line.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from scalelab.conf.schema import RANGES, RunConfig
from scalelab.messages import first_line
from scalelab.record import flatten
from scalelab.sweeps import custom_space, samplers
from scalelab.sweeps.config import DEFAULT_SWEEP_ROOT, SweepError, SweepSettings
from scalelab.sweeps.objectives import check_paths
from scalelab.sweeps.search_space import SearchSpace, format_value, parse_params

log = logging.getLogger(__name__)

TRIAL_KEYS = ("trial.study_name", "trial.storage", "trial.number")
# Optional in the job config: when declared, each trial is told which config paths are searched.
SEARCHED_KEY = "trial.searched"
# Optional too: when declared, each trial and run of the sweep is told its ladder's id.
LADDER_ID_KEY = "trial.ladder_id"
_ABSENT = object()


@dataclass(frozen=True)
class Scale:
    name: str  # "" for a single scale, else "axis=value,axis=value"
    overrides: tuple[str, ...]  # the grid overrides of this scale

    def study_name(self, base: str) -> str:
        return f"{base}/{self.name}" if self.name else base

    @property
    def folder(self) -> str:
        """The scale's folder below the sweep folder ("" for a single scale)."""
        return self.name.replace("/", "_")


@dataclass
class Plan:
    scales: list[Scale]
    axes: list[str]  # the ladder's swept keys, in command-line order
    fixed: list[str]  # command-line overrides passed to every trial as they are
    space: SearchSpace
    directions: list[str]  # lower case
    objectives: list[str]  # dotted run.json paths; empty: the final validation loss or the return value
    searched: Optional[list[str]]  # for `trial.searched`; None when the job config lacks it
    # how `trial.*` reaches a job: "" into its declared node, "+" as new keys of a plain config
    # (the job may read cfg.trial.number), None where its config takes neither
    trial_prefix: Optional[str] = ""
    sampler: Any = None  # the sampler's config, a grid's search space filled in
    n_trials: int = 20  # each study's budget
    job_config: Optional[DictConfig] = None  # composed for the first scale: which keys exist

    @property
    def reports(self) -> bool:
        """Whether the job config declares the `trial` node (a scalelab-style job)."""
        return self.trial_prefix == ""

    @property
    def takes_ladder_id(self) -> bool:
        """Whether the job config declares `trial.ladder_id`."""
        return self.reports and self.job_config is not None and _declared(self.job_config, LADDER_ID_KEY)

    def summary(self) -> str:
        """The sweep's size in one line, e.g. `6 studies (model.width x train.tokens) x 12 trials`."""
        n = len(self.scales)
        studies = f"{n} studies ({' x '.join(self.axes)})" if self.axes else f"{n} study"
        return f"{studies} x {self.n_trials} trial{'s' if self.n_trials != 1 else ''}"

    def job_overrides(self, scale: Scale, params: Mapping[str, Any]) -> list[str]:
        """One trial's overrides for its job, before the `trial.*` bookkeeping: the scale, the
        fixed values, the sampled `params` (those a `custom_search_space` suggested too), and
        the searched paths where the config takes them."""
        extra = custom_space.overrides(params, self.space.distributions, self.job_config)
        out = [*scale.overrides, *self.fixed, *self.space.fixed, *self.space.overrides(params), *extra]
        if self.searched is not None:
            searched = [*self.searched, *(custom_space.path(n) for n in params if n not in self.space.distributions)]
            out.append(f"{SEARCHED_KEY}=[{','.join(format_value(n) for n in searched)}]")
        return out


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merged_overrides(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """`base` overrides with those of the keys `extra` sets replaced by `extra`."""
    keys = {_key(o) for o in extra}
    return [o for o in base if _key(o) not in keys] + list(extra)


def parse_command_line(arguments: Sequence[str], config_loader: Any = None) -> list[Override]:
    parser = OverridesParser.create(config_loader=config_loader)
    try:
        return parser.parse_overrides(list(arguments))
    except HydraException as e:
        raise SweepError(f"cannot parse the command line: {first_line(e)}") from None


def check_study_name(name: str) -> None:
    """The study's name is also its folder, `runs/sweeps/<study_name>`: a relative path that stays there."""
    if not name.strip():
        raise SweepError(f"study_name is empty: it names the study and its folder {DEFAULT_SWEEP_ROOT}/<study_name>")
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise SweepError(f"study_name {name!r} leaves {DEFAULT_SWEEP_ROOT}/: it names the study and its folder "
                         f"{DEFAULT_SWEEP_ROOT}/<study_name>, a relative path without '.', '..' or empty parts")


def check_settings(settings: SweepSettings) -> None:
    check_study_name(settings.study_name)
    if settings.n_trials < 1:
        raise SweepError(f"n_trials must be at least 1, got {settings.n_trials}")
    if settings.n_jobs < 1:
        raise SweepError(f"n_jobs (the trials handed to the launcher at once) must be at least 1, "
                         f"got {settings.n_jobs}")
    # a killed sweep's trials are told from live ones by their heartbeats
    if settings.heartbeat_interval < 1:
        raise SweepError(f"heartbeat_interval must be at least 1 (seconds), got {settings.heartbeat_interval}")
    if settings.grace_period < 1:
        raise SweepError(f"grace_period must be at least 1 (seconds), got {settings.grace_period}")
    if not 0.0 <= settings.max_failure_rate <= 1.0:
        raise SweepError(f"max_failure_rate must be between 0.0 and 1.0, got {settings.max_failure_rate}")
    directions, objectives = settings.directions, settings.objectives
    for d in directions:
        if str(d).lower() not in ("minimize", "maximize"):
            raise SweepError(f"direction must be 'minimize' or 'maximize', got {d!r}")
    if objectives and len(objectives) != len(directions):
        raise SweepError(f"objectives {objectives} do not match directions {directions}")


def check_objectives(settings: SweepSettings, reports: bool) -> None:
    """A job with the `trial` node writes a run record, whose one loss cannot be several
    objectives: it needs `objectives` paths. A plain app returns its values instead."""
    directions, objectives = settings.directions, settings.objectives
    if reports and len(directions) > 1 and not objectives:
        raise SweepError(
            f"{len(directions)} directions need as many `objectives` (dotted paths in "
            f"run.json, e.g. [metrics.final_val_loss, scale.C]), got {objectives}"
        )


def check_searched(space: SearchSpace, settings: SweepSettings, fixed_params: Sequence[str], ladder: bool) -> None:
    """Refuse a search of no key: each study would run one config `n_trials` times. `fixed_params`:
    the `params` keys a plain value on the command line took out of the search."""
    if space.distributions or settings.custom_search_space:
        return
    why = (f"the command line fixes {', '.join(fixed_params)}, which params would search" if fixed_params
           else "params is empty and the command line sweeps no key off the ladder")
    key = fixed_params[0] if fixed_params else "KEY"
    raise SweepError(f"no key is searched ({why}), so every trial of {'each' if ladder else 'the'} study would run "
                     f"the same config; search one with a sweep on the command line ('{key}=interval(a, b)', "
                     f"'{key}=choice(x, y)') or in hydra.sweeper.params")


def _as_typed(override: Override, values: list[str]) -> list[str]:
    """The axis values as the user typed them (`1e6`, not `1000000.0`) for study and folder
    names, when the override is a plain comma list; Hydra's own strings otherwise."""
    raw = (override.input_line or "").split("=", 1)[-1]
    tokens = [t.strip() for t in raw.split(",")]
    if any(c in raw for c in "[]{}()'\"\\$") or len(tokens) != len(values) or not all(tokens):
        return values
    return tokens


def _bare(key: str) -> str:
    return key.lstrip("+~")


def on_ladder(key: str, ladder: Sequence[str]) -> bool:
    """Whether `key` is a ladder entry or below one: `model` covers `model` and `model.width`."""
    return any(key == entry or key.startswith((entry + ".", entry + "/")) for entry in ladder)


def split_overrides(overrides: Sequence[Override], ladder: Sequence[str] = ()
                    ) -> tuple[list[Scale], list[str], list[str], dict[str, str]]:
    """The command line as (scales, ladder axes, fixed overrides, search dimensions by key)."""
    axes: list[list[str]] = []
    axis_keys: list[str] = []
    axis_names: list[list[str]] = []
    fixed: list[str] = []
    dimensions: dict[str, str] = {}
    for o in overrides:
        key = o.get_key_element()
        if not o.is_sweep_override():
            fixed.append(o.input_line or f"{key}={o.get_value_element_as_str()}")
        elif not on_ladder(o.key_or_group, ladder):
            dimensions[key] = o.input_line.split("=", 1)[1] if o.input_line else ""
        elif isinstance(o.value(), IntervalSweep):
            raise SweepError(f"ladder axis {o.key_or_group}: interval(...) has no list of values; "
                             "give a comma list, range(...) or choice(...)")
        else:
            values = list(o.sweep_string_iterator())
            axes.append([f"{key}={v}" for v in values])
            axis_keys.append(o.key_or_group)
            axis_names.append([f"{o.key_or_group}={v}" for v in _as_typed(o, values)])
    scales = [Scale(",".join(names), tuple(combo))
              for combo, names in zip(itertools.product(*axes), itertools.product(*axis_names))]
    return scales or [Scale("", ())], axis_keys, fixed, dimensions


def search_params(params: Mapping[str, Any], ladder: Sequence[str], overrides: Sequence[Override]
                  ) -> tuple[dict[str, Any], list[str]]:
    """(`params` to search, `params` that are ladder axes as overrides): the keys the command line
    gives are left out of both (a plain value wins, as upstream; a command-line axis replaces a
    `params` one)."""
    given = {_bare(o.key_or_group) for o in overrides}
    searched, axes = {}, []
    for key, value in params.items():
        bare = _bare(key)
        if bare in given:
            continue
        if on_ladder(bare, ladder):
            axes.append(f"{key}={value}")
        else:
            searched[key] = value
    return searched, axes


def _declared(job_config: DictConfig, path: str) -> bool:
    return OmegaConf.select(job_config, path, default=_ABSENT) is not _ABSENT


def reports_trials(job_config: DictConfig) -> bool:
    """Whether the job config has the `trial` node the sweeper fills in (all of it, or none:
    a plain app, whose jobs then get no `trial.*` overrides)."""
    declared = [path for path in TRIAL_KEYS if _declared(job_config, path)]
    if declared and len(declared) < len(TRIAL_KEYS):
        missing = next(path for path in TRIAL_KEYS if path not in declared)
        raise SweepError(
            f"the job config has no `{missing}` key: a job config with a `trial` node must declare "
            "all of {study_name, storage, number} (all null)"
        )
    return bool(declared)


def accepts_trial_keys(compose: Callable[[list[str]], DictConfig], overrides: list[str]) -> bool:
    """Whether a job config without a `trial` node takes one as new keys (`+trial.number=0`): a
    plain YAML config does, a structured config without that field does not."""
    try:
        compose([*overrides, *(f"+{path}=null" for path in TRIAL_KEYS)])
    except Exception:  # noqa: BLE001 - Hydra's composition errors have many types
        return False
    return True


def searched_paths(job_config: DictConfig, space: SearchSpace) -> Optional[list[str]]:
    """The searched paths, where the job config declares `trial.searched`."""
    return list(space.distributions) if _declared(job_config, SEARCHED_KEY) else None


def make_plan(overrides: Sequence[Override], settings: SweepSettings,
              compose: Callable[[list[str]], DictConfig]) -> Plan:
    """The plan for `overrides` (the sweep's command line); `compose(overrides)` is the job
    config for those overrides, used to check every parameter path exists."""
    check_settings(settings)
    params, ladder_params = search_params(flatten(settings.params), settings.ladder, overrides)
    fixed_params = [key for key in flatten(settings.params)
                    if key not in params and not on_ladder(_bare(key), settings.ladder)]
    overrides = [*parse_command_line(ladder_params), *overrides]
    scales, axes, fixed, dimensions = split_overrides(overrides, settings.ladder)
    try:
        job_config = compose(fixed + list(scales[0].overrides))
    except Exception as e:  # noqa: BLE001 - Hydra's composition errors have many types
        raise SweepError(f"the job config does not compose: {first_line(e)}") from None
    # The training run's own config: its ranges bound the search, its record's nulls the objectives.
    training = OmegaConf.get_type(job_config) is RunConfig
    # a SearchSpaceError is a SweepError
    space = parse_params({**params, **dimensions}, job_config, RANGES if training else None)
    reports = reports_trials(job_config)
    trial_prefix = "" if reports else ("+" if accepts_trial_keys(compose, fixed + list(scales[0].overrides))
                                       else None)
    check_objectives(settings, reports)
    check_paths(settings.objectives, job_config, list(space.distributions), training)
    sampler = samplers.resolve(settings.sampler, space.distributions)
    check_searched(space, settings, fixed_params, bool(axes))
    n_trials = settings.n_trials
    size = samplers.grid_size(sampler)
    if size is not None and size < n_trials:
        log.info("scalelab sweeper: a grid of %d points: n_trials %d -> %d", size, n_trials, size)
        n_trials = size
    return Plan(scales, axes, fixed, space, [d.lower() for d in settings.directions], list(settings.objectives),
                searched_paths(job_config, space) if reports else None, trial_prefix, sampler, n_trials,
                job_config)
