"""Learning-rate schedules as a multiplier of the peak rate at each optimizer step: the one
definition that training follows and the analysis reads back (a run's rate at every step, for
laws of whole curves).

- warmup: linear from 1/warmup to 1 over the first `warmup` steps (a fraction of the run below 1,
  a step count from 1 up);
- cosine: from 1 down to `min_lr_ratio` at the end of the run;
- wsd (warmup-stable-decay): 1 until the last `decay_fraction` of the steps, then linear down to
  `min_lr_ratio` at the end of the run;
- constant: 1.
"""
from __future__ import annotations

import math

def warmup_steps(warmup: float, total_steps: int) -> int:
    """`warmup` below 1 is a fraction of the steps, from 1 up a step count."""
    return int(round(warmup * total_steps)) if warmup < 1 else int(warmup)


def lr_multiplier(schedule, total_steps: int):
    """A function step -> multiplier in [min_lr_ratio, 1] for torch's LambdaLR."""
    # plain values: the function runs at every step, for every parameter group, and reading a
    # config node costs more than the arithmetic
    warmup = warmup_steps(schedule.warmup, total_steps)
    name, floor = schedule.name, schedule.min_lr_ratio
    decay_start = max(warmup, int(round((1 - schedule.decay_fraction) * total_steps)))

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if name == "constant":
            return 1.0
        if name == "cosine":
            progress = (step - warmup) / max(1, total_steps - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if step < decay_start:  # wsd: stable at the peak, then a linear decay
            return 1.0
        progress = (step - decay_start) / max(1, total_steps - decay_start)
        return floor + (1 - floor) * (1 - min(1.0, progress))

    return multiplier
