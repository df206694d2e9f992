"""`hydra.sweeper.scaling`: the scaling study's settings, checked by the ranges a run's are.

`hydra.sweeper.loop`, the old name of the node, is still read for one release, with a
deprecation line; its values win over the preset's.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scalelab.conf.schema import COUNT, POSITIVE, Range, out_of_range
from scalelab.sweeps.config import ScalelabSweeperConf, SweepError

log = logging.getLogger(__name__)

NODE = "scaling"
OLD_NODE = "loop"


@dataclass
class ScalingSettings:
    enabled: bool = True  # false: the ladder's studies run one after another, no laws, no target
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
    # cooldown branches of those runs (scalelab.platform.branches): the same learning rates, for
    # little more than the largest budget's compute
    branches: bool = False


ABOVE_ONE = Range(1, low_open=True)
RANGES = {f"{NODE}.{key}": allowed for key, allowed in {
    "wide_scales": Range(2, why="the lr law needs two budgets"), "floor": ABOVE_ONE, "seeds": Range(0),
    "target_C": POSITIVE, "target_ratio": ABOVE_ONE, "target_N": POSITIVE, "max_target_ratio": ABOVE_ONE,
    "verify_seeds": COUNT, "lr_scan": ABOVE_ONE, "bootstrap": Range(0),
}.items()}


# `hydra.sweeper.loop`: the same keys, each unset unless given
DeprecatedLoop = make_dataclass("DeprecatedLoop", [(f.name, Any, None) for f in fields(ScalingSettings)])


@dataclass
class ScalingSweeperConf(ScalelabSweeperConf):
    """`hydra/sweeper=scaling`: the sweeper's keys and the scaling study's."""

    _target_: str = "hydra_plugins.scalelab_sweeper.ScalingSweeper"
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    loop: Any = field(default_factory=DeprecatedLoop)  # deprecated: `scaling`


def scaling_settings(scaling: Any = None, loop: Any = None) -> ScalingSettings:
    """The settings from the sweeper's `scaling` node and the deprecated `loop` node, checked."""
    values = dict(OmegaConf.to_container(scaling, resolve=True) if OmegaConf.is_config(scaling) else scaling or {})
    old = dict(OmegaConf.to_container(loop, resolve=True) if OmegaConf.is_config(loop) else loop or {})
    old = {key: value for key, value in old.items() if value is not None}
    if old:
        log.warning("scalelab sweeper: hydra.sweeper.%s is deprecated and read for one more release; "
                    "write hydra.sweeper.%s.%s instead", OLD_NODE, NODE, next(iter(old)))
    try:  # the old node's values typed as the new node's
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ScalingSettings(**values)), old))
    except OmegaConfBaseException as e:
        raise SweepError(f"hydra.sweeper.{OLD_NODE}: {str(e).splitlines()[0]}") from None
    problems = out_of_range(OmegaConf.create({NODE: asdict(settings)}), RANGES)
    if problems:
        raise SweepError("; ".join(problems))
    return settings
