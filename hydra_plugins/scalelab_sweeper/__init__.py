"""Hydra finds sweepers only under the `hydra_plugins` namespace; the code lives in
`scalelab.platform.sweeper`, this subclass only gives it an address Hydra accepts."""
from scalelab.platform import sweeper as _sweeper


class ScalelabSweeper(_sweeper.OptunaSweeper):
    pass


# A regular install finds this module by Hydra's scan: store the configs then too.
_sweeper.store_configs()
