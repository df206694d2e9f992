"""The sweeper's settings: the Hydra node users write, and the same as plain Python values.

`ScalelabSweeperConf` is the `hydra/sweeper=scalelab` node (the keys the README documents);
`SweepSettings` holds those values with OmegaConf containers turned into lists and dicts and
the derived defaults filled in, so that planning and result handling run without Hydra.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import OmegaConf


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


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


@dataclass
class SweepSettings:
    """`ScalelabSweeperConf`'s values as plain Python, with `direction` folded into `directions`
    and the default grace period (3 heartbeats) filled in."""

    study_name: str = "scalelab"
    storage: Optional[str] = None
    sampler: Any = None
    pruner: Any = None
    directions: List[str] = field(default_factory=lambda: ["minimize"])
    objectives: List[str] = field(default_factory=list)
    n_trials: int = 20
    n_jobs: int = 1
    params: Dict[str, Any] = field(default_factory=dict)
    heartbeat_interval: int = 10
    grace_period: Optional[int] = None

    def __post_init__(self) -> None:
        self.study_name = str(self.study_name)
        self.n_trials, self.n_jobs = int(self.n_trials), max(1, int(self.n_jobs))
        self.heartbeat_interval = int(self.heartbeat_interval or 0)
        self.grace_period = self.grace_period or (3 * self.heartbeat_interval or None)

    @classmethod
    def from_node(cls, direction: str = "minimize", directions: Any = None, **values: Any) -> "SweepSettings":
        """The settings from the keyword arguments Hydra instantiates the sweeper with."""
        plain = {key: _plain(value) for key, value in values.items()}
        plain["directions"] = [str(d) for d in (_plain(directions) or [direction])]
        plain["objectives"] = [str(p) for p in (plain.get("objectives") or [])]
        plain["params"] = plain.get("params") or {}
        return cls(**plain)
