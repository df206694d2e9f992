"""The `scalelab` Hydra sweeper: Optuna 5 ask/tell studies, one per scale of a ladder."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.plugins.sweeper import Sweeper

log = logging.getLogger(__name__)


@dataclass
class ScalelabSweeperConf:
    _target_: str = "hydra_plugins.scalelab_sweeper.ScalelabSweeper"
    study_name: str = "scalelab"
    storage: Optional[str] = None
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
    pruner: Any = None
    direction: str = "minimize"
    directions: Optional[List[str]] = None
    objectives: Optional[List[str]] = None
    n_trials: int = 20
    n_jobs: int = 1
    params: Optional[Dict[str, Any]] = None
    heartbeat_interval: int = 10
    grace_period: Optional[int] = None


class OptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs

    def setup(self, *, hydra_context, task_function, config) -> None:
        raise NotImplementedError

    def sweep(self, arguments: List[str]) -> Any:
        raise NotImplementedError


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
    _registered = True
