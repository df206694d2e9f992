"""Learning-rate schedules as a multiplier of the peak rate at each optimizer step."""
from __future__ import annotations

import math

from scalelab.platform.errors import ConfigError

SCHEDULES = ("cosine", "wsd", "constant")


def warmup_steps(warmup: float, total_steps: int) -> int:
    """`warmup` below 1 is a fraction of the steps, from 1 up a step count."""
    return int(round(warmup * total_steps)) if warmup < 1 else int(warmup)


def lr_multiplier(schedule, total_steps: int):
    """A function step -> multiplier in [min_lr_ratio, 1] for torch's LambdaLR."""
    if schedule.name not in SCHEDULES:
        raise ConfigError(f"schedule.name={schedule.name!r} is not one of: {', '.join(SCHEDULES)}")
    if schedule.warmup < 0:
        raise ConfigError(f"schedule.warmup={schedule.warmup} must be >= 0 (a fraction below 1, or a step count)")
    warmup = warmup_steps(schedule.warmup, total_steps)
    floor = schedule.min_lr_ratio
    decay_start = max(warmup, int(round((1 - schedule.decay_fraction) * total_steps)))

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule.name == "constant":
            return 1.0
        if schedule.name == "cosine":
            progress = (step - warmup) / max(1, total_steps - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if step < decay_start:  # wsd: stable at the peak, then a linear decay
            return 1.0
        progress = (step - decay_start) / max(1, total_steps - decay_start)
        return floor + (1 - floor) * (1 - min(1.0, progress))

    return multiplier
