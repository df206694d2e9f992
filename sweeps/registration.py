"""Make `hydra/sweeper=scalelab` and the presets `sweeps=NAME` known to Hydra.

Hydra's plugin scan reads `hydra_plugins` folders on disk, which misses an editable install,
so the sweeper class is registered explicitly; the presets live outside `conf/`, so each is
stored in the ConfigStore under the group `sweeps`. An app calls `register()` before Hydra
composes its config; both functions may be called any number of times.
"""
from __future__ import annotations

from importlib import resources

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import OmegaConf

from scalelab.sweeps.config import ScalelabSweeperConf
from scalelab.sweeps.hydra_patch import allow_params_on_command_line

_registered = False
_stored = False


def store_configs() -> None:
    """Put `hydra/sweeper=scalelab` and every preset `sweeps=NAME` in Hydra's ConfigStore."""
    global _stored
    if _stored:
        return
    cs = ConfigStore.instance()
    cs.store(group="hydra/sweeper", name="scalelab", node=ScalelabSweeperConf, provider="scalelab")
    for entry in sorted(resources.files("scalelab.sweeps").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            node = OmegaConf.create(entry.read_text())
            cs.store(group="sweeps", name=entry.name[: -len(".yaml")], node=node,
                     package="_global_", provider="scalelab")
    _stored = True


def register() -> None:
    """Make `hydra/sweeper=scalelab`, `sweeps=NAME` and search spaces on the command line work."""
    global _registered
    store_configs()
    if _registered:
        return
    # Here, not at the top: hydra_plugins.scalelab_sweeper imports this module.
    from hydra_plugins.scalelab_sweeper import ScalelabSweeper

    Plugins.instance().register(ScalelabSweeper)
    allow_params_on_command_line()
    _registered = True
