"""The schedule's settings checked against the run that will follow them (the schedule itself:
`scalelab.schedule`, shared with the analysis)."""
from __future__ import annotations

from scalelab.platform.errors import ConfigError
from scalelab.schedule import warmup_steps


def check_schedule(schedule, total_steps: int) -> None:
    """Refuse settings this run's schedule cannot follow, naming the setting (before training
    starts); the ranges of the settings themselves are `scalelab.conf.schema.RANGES`."""
    if schedule.warmup >= 1 and schedule.warmup != int(schedule.warmup):
        raise ConfigError(f"schedule.warmup={schedule.warmup} must be a whole number of steps, or a fraction below 1")
    if warmup_steps(schedule.warmup, total_steps) > total_steps:
        raise ConfigError(f"schedule.warmup={schedule.warmup:g} steps is longer than the run ({total_steps} steps)")
