"""Hydra finds sweepers only under the `hydra_plugins` namespace; the code lives in
`scalelab.sweeps.sweeper`, this subclass only gives it an address Hydra accepts."""
from scalelab.sweeps import registration
from scalelab.sweeps.sweeper import OptunaSweeper


class ScalelabSweeper(OptunaSweeper):
    pass


# A regular install finds this module by Hydra's scan: store the configs then too.
registration.store_configs()
