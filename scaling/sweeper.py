"""`hydra/sweeper=scaling`: the sweeper, its ladder run as one scaling study."""
from __future__ import annotations

from typing import Any

from scalelab.scaling.settings import ScalingSettings, scaling_settings
from scalelab.sweeps.plan import Plan
from scalelab.sweeps.sweeper import ScalelabSweeper


class ScalingSweeper(ScalelabSweeper):
    """`ScalelabSweeper` with the keys of `ScalingSweeperConf`; `run_ladder` runs the scaling study."""

    def __init__(self, scaling: Any = None, loop: Any = None, **settings: Any) -> None:
        super().__init__(**settings)
        self.nodes = (scaling, loop)

    def run_ladder(self, plan: Plan) -> list:
        # read here, not in __init__: a bad value is then the sweep's error, reported as one
        settings: ScalingSettings = scaling_settings(*self.nodes)
        if not settings.enabled:
            return super().run_ladder(plan)
        # pandas, scipy and torch: only a scaling study fits laws and measures models, so only it
        # imports them (every Hydra app's plugin scan imports this module)
        from scalelab.scaling.driver import ScalingStudy

        return ScalingStudy(self, plan, settings).run()
