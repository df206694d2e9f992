"""The sweeper's settings: the Hydra node users write, and the same as plain Python values.

`ScalelabSweeperConf` is the `hydra/sweeper=scalelab` node (the keys the README documents, a
superset of hydra-optuna-sweeper's); `SweepSettings` holds those values with OmegaConf containers
turned into lists and dicts and the derived defaults filled in, so that planning and result
handling run without Hydra.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf

DEFAULT_STUDY_NAME = "scalelab"
# The sweeper's own default; an explicit null is an in-memory study, as in hydra-optuna-sweeper.
DEFAULT_STORAGE = "sqlite:///runs/sweeps/studies.db"


class SweepError(ValueError):
    """Bad sweep input: reported in one line before any trial starts."""


@dataclass
class ScalingLoopConf:
    """`hydra.sweeper.loop`: a ladder run as one scaling study (`sweeps=ladder`,
    `scalelab.sweeps.scaling`): scales in ascending compute, the search of each later scale
    centred on the laws fitted so far, then a prediction at a larger budget, trained and judged."""

    enabled: bool = False
    guide: bool = True  # false: every scale searches the configured range (the fixed-range baseline)
    wide_scales: int = 2  # the first scales search the configured range; the laws guide the rest
    floor: float = 2.0  # a law-guided range spans at least x/floor .. x*floor around the prediction
    seeds: int = 2  # extra seeds for each scale's best trial: the seed-to-seed spread
    target_C: Optional[float] = None  # the verification budget; null: N_opt = target_ratio x largest N
    target_ratio: float = 4.0
    target_N: Optional[float] = None  # verify this model size at target_C; null: the law's compute-optimal N
    # a target budget the laws choose is not trained beyond this many times the ladder's largest
    max_target_ratio: float = 100.0
    verify: bool = True  # train the prediction and its IsoFLOP neighbours at the target budget
    verify_seeds: int = 2
    lr_scan: float = 2.0  # the scan around the predicted lr: lr / lr_scan, lr, lr * lr_scan
    bootstrap: int = 200  # bootstrap refits behind every interval
    # µP (model.parametrization=mup): the learning rate is searched at each budget's smallest
    # width only; every wider model at that budget trains that scale's best rate, in one trial
    transfer: bool = False
    # schedule=wsd: each model size trains its largest budget only, and its smaller budgets are
    # cooldown branches of those runs (platform/branches.py): the same learning rates, for little
    # more than the largest budget's compute
    branches: bool = False


def _default_sampler() -> dict:
    return {"_target_": "optuna.samplers.TPESampler", "seed": 0}


@dataclass
class ScalelabSweeperConf:
    _target_: str = "hydra_plugins.scalelab_sweeper.ScalelabSweeper"
    _recursive_: bool = False  # sampler/pruner are built per study, from their configs
    # `hydra/sweeper/sampler=NAME` (scalelab.sweeps.samplers) replaces `sampler` below: `_self_`
    # comes first so that a chosen option is merged over it; with none chosen it stays.
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"sampler": None}])
    # null (as hydra-optuna-sweeper's examples allow): "scalelab"
    study_name: Optional[str] = DEFAULT_STUDY_NAME
    # Also `journal:PATH` and postgresql:// URLs; null: an in-memory study (as upstream), which
    # a rerun cannot resume and whose jobs cannot report to it.
    storage: Optional[str] = DEFAULT_STORAGE
    sampler: Any = field(default_factory=_default_sampler)
    pruner: Any = None
    # `minimize`, `maximize`, or a list of them, one per objective (as in hydra-optuna-sweeper)
    direction: Any = "minimize"
    # Multi-objective: e.g. [minimize, minimize] with objectives [metrics.final_val_loss, scale.C]
    directions: Optional[List[str]] = None
    # Dotted paths into run.json, one per direction; default: the final validation loss, or
    # the job's return value when it writes no run.json.
    objectives: Optional[List[str]] = None
    n_trials: int = 20
    n_jobs: int = 1
    # After the sweep: exit 1 when a larger share of this process's finished trials FAILed.
    max_failure_rate: float = 0.0
    params: Dict[str, Any] = field(default_factory=dict)
    # Keys whose command-line sweeps are ladder axes (one study per combination); `model` also
    # covers `model.width`. A sweep on any other key is a search dimension.
    ladder: List[str] = field(default_factory=list)
    # Dotted path to `fn(cfg, trial)` that suggests more parameters (scalelab.sweeps.custom_space).
    custom_search_space: Optional[str] = None
    heartbeat_interval: int = 10
    # Seconds without a heartbeat after which a RUNNING trial is failed; default 3 beats.
    grace_period: Optional[int] = None
    loop: ScalingLoopConf = field(default_factory=ScalingLoopConf)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _direction_names(value: Any) -> List[str]:
    """`minimize`, `[minimize, maximize]` or Direction enums (upstream's type) as a list of names."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(getattr(d, "name", d)) for d in values]


@dataclass
class SweepSettings:
    """`ScalelabSweeperConf`'s values as plain Python, with `direction` folded into `directions`
    and the default grace period (3 heartbeats) filled in."""

    study_name: str = DEFAULT_STUDY_NAME
    storage: Optional[str] = DEFAULT_STORAGE  # None: in memory
    sampler: Any = None
    pruner: Any = None
    directions: List[str] = field(default_factory=lambda: ["minimize"])
    objectives: List[str] = field(default_factory=list)
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 0.0
    params: Dict[str, Any] = field(default_factory=dict)
    ladder: List[str] = field(default_factory=list)
    custom_search_space: Optional[str] = None
    heartbeat_interval: int = 10
    grace_period: Optional[int] = None
    loop: ScalingLoopConf = field(default_factory=ScalingLoopConf)

    def __post_init__(self) -> None:
        self.study_name = DEFAULT_STUDY_NAME if self.study_name is None else str(self.study_name)
        self.n_trials, self.n_jobs = int(self.n_trials), max(1, int(self.n_jobs))
        self.max_failure_rate = float(self.max_failure_rate)
        self.heartbeat_interval = int(self.heartbeat_interval or 0)
        self.grace_period = self.grace_period or (3 * self.heartbeat_interval or None)

    @classmethod
    def from_node(cls, direction: Any = "minimize", directions: Any = None, **values: Any) -> "SweepSettings":
        """The settings from the keyword arguments Hydra instantiates the sweeper with."""
        plain = {key: _plain(value) for key, value in values.items()}
        plain["directions"] = _direction_names(_plain(directions) or _plain(direction))
        plain["objectives"] = [str(p) for p in (plain.get("objectives") or [])]
        plain["params"] = plain.get("params") or {}
        plain["ladder"] = [str(key) for key in (plain.get("ladder") or [])]
        plain["loop"] = ScalingLoopConf(**(plain.get("loop") or {}))
        return cls(**plain)
