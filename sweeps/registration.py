"""Make `hydra/sweeper=scalelab` and the presets `sweeps=NAME` known to Hydra.

In an installed scalelab (a wheel or an editable install), Hydra's plugin scan imports
`hydra_plugins.scalelab_sweeper`, which calls `store_configs()`: any Hydra app then finds
`hydra/sweeper=scalelab` and its sampler group with nothing but the override. The presets live
outside `conf/`, so each is stored in the ConfigStore under the group `sweeps`. Any number of
calls.

A preset's `hydra.sweeper.sampler` is stored as an option of the sampler group, under the
preset's name, and the preset chooses it: a sampler named on the command line
(`sweeps=ladder hydra/sweeper/sampler=random`) then replaces the preset's whole, where values
set in the preset itself (TPE's `n_startup_trials`) would not fit another sampler's config.
"""
from __future__ import annotations

from importlib import resources

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from scalelab.sweeps import samplers
from scalelab.sweeps.config import ScalelabSweeperConf

_stored = False


def store_configs() -> None:
    """Put `hydra/sweeper=scalelab`, its `hydra/sweeper/sampler=NAME` options and every preset
    `sweeps=NAME` in Hydra's ConfigStore."""
    global _stored
    if _stored:
        return
    cs = ConfigStore.instance()
    cs.store(group="hydra/sweeper", name="scalelab", node=ScalelabSweeperConf, provider="scalelab")
    for name, node in samplers.OPTIONS.items():
        cs.store(group=samplers.GROUP, name=name, node=node, provider="scalelab")
    for entry in sorted(resources.files("scalelab.sweeps").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            name, node = entry.name[: -len(".yaml")], OmegaConf.create(entry.read_text())
            sampler = OmegaConf.select(node, "hydra.sweeper.sampler")
            if sampler is not None:
                cs.store(group=samplers.GROUP, name=name, node=sampler, provider="scalelab")
                del node.hydra.sweeper["sampler"]
                node.defaults.append({f"override /{samplers.GROUP}": name})
            cs.store(group="sweeps", name=name, node=node, package="_global_", provider="scalelab")
    _stored = True
