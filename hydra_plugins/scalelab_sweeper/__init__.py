"""Hydra finds sweepers only under the `hydra_plugins` namespace; the code lives in
`scalelab.sweeps.sweeper`, this subclass only gives it an address Hydra accepts.

Hydra imports this module while it scans `hydra_plugins` (before it composes any config), in
every Hydra app of an environment where scalelab is installed, editable or from a wheel: the
package `hydra_plugins` is declared in pyproject.toml so that an editable install puts this
folder on `hydra_plugins.__path__`, where the scan can list it."""
from scalelab.sweeps import registration
from scalelab.sweeps import sweeper as _sweeper
from scalelab.sweeps.hydra_patch import allow_params_on_command_line


# The base class by its module, not imported by name: the scan registers every plugin class it
# sees in this module's namespace, and would list OptunaSweeper as a second sweeper.
class ScalelabSweeper(_sweeper.OptunaSweeper):
    pass


# What `registration.register()` does for `scalelab train`, but for any app, which never calls
# it: the configs `hydra/sweeper=scalelab` and `sweeps=NAME`, and search spaces on the command
# line (`'+hydra.sweeper.params.x=interval(0, 1)'`; the override check this patches runs after
# the scan). The class itself is registered by the scan; calling `register()` here would ask
# `Plugins.instance()` for the singleton that is still being built.
registration.store_configs()
allow_params_on_command_line()
