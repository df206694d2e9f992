"""Hydra finds sweepers only under the `hydra_plugins` namespace; the code lives in
`scalelab.sweeps.sweeper` and `scalelab.scaling.sweeper`, these subclasses only give it an
address Hydra accepts.

Hydra imports this module while it scans `hydra_plugins` (before it composes any config), in
every Hydra app of an environment where scalelab is installed, editable or from a wheel: the
package `hydra_plugins` is declared in pyproject.toml so that an editable install puts this
folder on `hydra_plugins.__path__`, where the scan can list it.
"""
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins

from scalelab.scaling import settings as _scaling_settings
from scalelab.scaling import sweeper as _scaling
from scalelab.sweeps import registration
from scalelab.sweeps import sweeper as _sweeper
from scalelab.hydra_private import allow_params_on_command_line


# The base classes by their modules, not imported by name: the scan registers every plugin class
# it sees in this module's namespace, and would list them as more sweepers.
class ScalelabSweeper(_sweeper.ScalelabSweeper):
    pass


class ScalingSweeper(_scaling.ScalingSweeper):
    pass


def store_configs() -> None:
    """`hydra/sweeper=scalelab`, its samplers and the presets `sweeps=NAME`, and `hydra/sweeper=scaling`."""
    registration.store_configs()
    ConfigStore.instance().store(group="hydra/sweeper", name="scaling", node=_scaling_settings.ScalingSweeperConf,
                                 provider="scalelab")


def register() -> None:
    """What the scan does, for code that runs from a checkout that is not installed (and what
    `scalelab train` calls): the classes, the configs and search spaces on the command line.
    Any number of calls."""
    store_configs()
    plugins = Plugins.instance()
    for cls in (ScalelabSweeper, ScalingSweeper):
        plugins.register(cls)
    allow_params_on_command_line()


# What `register()` does, but for any app, which never calls it: the configs and search spaces on
# the command line (`'+hydra.sweeper.params.x=interval(0, 1)'`; the override check this patches
# runs after the scan). The classes themselves are registered by the scan; calling `register()`
# here would ask `Plugins.instance()` for the singleton that is still being built.
store_configs()
allow_params_on_command_line()
