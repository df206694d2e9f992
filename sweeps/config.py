"""The sweeper's settings: the `hydra/sweeper=scalelab` node users write, and the same values as
plain Python.

`SweepKeys` lists the keys once. `ScalelabSweeperConf` is the Hydra node (the keys the docs
describe, a superset of hydra-optuna-sweeper's, `direction` included); `SweepSettings` holds
the same keys with OmegaConf containers turned into lists and dicts, `direction` folded into
`directions` and the default grace period filled in, so that planning and result handling run
without Hydra.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf

from scalelab.errors import ScalelabError
from scalelab.hydra_private import OneLineInHydra

DEFAULT_STUDY_NAME = "scalelab"
# A sweep's folder is `<root>/<study_name>` unless hydra.sweep.dir says otherwise.
DEFAULT_SWEEP_ROOT = "runs/sweeps"
# The sweeper's own default; an explicit null is an in-memory study, as in hydra-optuna-sweeper.
DEFAULT_STORAGE = "sqlite:///runs/sweeps/studies.db"


class SweepError(ScalelabError, OneLineInHydra):
    """Bad sweep input: reported in one line before any trial starts, by `scalelab` (exit 2) or,
    in a plain Hydra app, by Hydra itself (exit 1), which prints a OneLineInHydra without a traceback."""


def _default_sampler() -> dict:
    return {"_target_": "optuna.samplers.TPESampler", "seed": 0}


@dataclass
class SweepKeys:
    # the ladder's name, and the prefix of each scale's study (`<study_name>/<scale>`);
    # null (as hydra-optuna-sweeper's examples allow): "scalelab"
    study_name: Optional[str] = DEFAULT_STUDY_NAME
    # Also `journal:PATH` and postgresql:// URLs; null: an in-memory study (as upstream), which
    # a rerun cannot resume and whose jobs cannot report to it.
    storage: Optional[str] = DEFAULT_STORAGE
    sampler: Any = field(default_factory=_default_sampler)
    pruner: Any = None
    # Multi-objective: e.g. [minimize, minimize] with objectives [metrics.final_val_loss, scale.C]
    directions: Optional[List[str]] = None
    # Dotted paths into run.json, one per direction; default: the final validation loss, or
    # the job's return value when it writes no run.json.
    objectives: Optional[List[str]] = None
    n_trials: int = 20  # each study's budget
    n_jobs: int = 1
    # After the sweep: exit 1 when a larger share of this process's finished trials FAILed.
    max_failure_rate: float = 0.0
    # After the sweep: exit 1 when every trial this process finished FAILed, whatever
    # max_failure_rate allows (a sweep that learned nothing), unless this says it may happen.
    allow_all_failed: bool = False
    params: Dict[str, Any] = field(default_factory=dict)
    # Keys whose command-line sweeps are ladder axes (one scale, and study, per combination);
    # `model` also covers `model.width`. A sweep on any other key is a search dimension.
    ladder: List[str] = field(default_factory=list)
    # Dotted path to `fn(cfg, trial)` that suggests more parameters (scalelab.sweeps.custom_space).
    custom_search_space: Optional[str] = None
    heartbeat_interval: int = 10
    # Seconds without a heartbeat after which a RUNNING trial is failed; default 3 beats.
    grace_period: Optional[int] = None


@dataclass
class ScalelabSweeperConf(SweepKeys):
    _target_: str = "hydra_plugins.scalelab_sweeper.ScalelabSweeper"
    _recursive_: bool = False  # sampler/pruner are built per study, from their configs
    # `hydra/sweeper/sampler=NAME` (scalelab.sweeps.samplers) replaces `sampler`: `_self_` comes
    # first so that a chosen option is merged over it; with none chosen it stays.
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"sampler": None}])
    # `minimize`, `maximize`, or a list of them, one per objective (as in hydra-optuna-sweeper)
    direction: Any = "minimize"


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _direction_names(value: Any) -> List[str]:
    """`minimize`, `[minimize, maximize]` or Direction enums (upstream's type) as a list of names."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(getattr(d, "name", d)) for d in values]


@dataclass
class SweepSettings(SweepKeys):
    """`SweepKeys` as plain Python: `directions` a list (`direction` folded in), `objectives` a
    list, `grace_period` filled in (3 heartbeats)."""

    def __post_init__(self) -> None:
        self.study_name = DEFAULT_STUDY_NAME if self.study_name is None else str(self.study_name)
        self.directions = _direction_names(self.directions or "minimize")
        self.objectives = [str(p) for p in (self.objectives or [])]
        self.params = self.params or {}
        self.ladder = [str(key) for key in (self.ladder or [])]
        self.n_trials, self.n_jobs = int(self.n_trials), int(self.n_jobs)
        self.max_failure_rate = float(self.max_failure_rate)
        self.allow_all_failed = bool(self.allow_all_failed)
        self.heartbeat_interval = int(self.heartbeat_interval or 0)
        self.grace_period = self.grace_period or (3 * self.heartbeat_interval or None)

    @classmethod
    def from_node(cls, direction: Any = "minimize", directions: Any = None, **values: Any) -> "SweepSettings":
        """The settings from the keyword arguments Hydra instantiates the sweeper with."""
        plain = {key: _plain(value) for key, value in values.items()}
        return cls(directions=_direction_names(_plain(directions) or _plain(direction)), **plain)
