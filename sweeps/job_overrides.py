"""The overrides jobs read of Hydra's own (`hydra.overrides.hydra`): search spaces quoted, a
storage password hidden.

`scalelab.hydra_private.allow_params_on_command_line` lets the sweeper's process take a search
space on the command line (`+hydra.sweeper.params.x=interval(0, 1)`, which Hydra refuses as a
sweep of its own configuration). Jobs compose their config again, maybe in another process
without that patch, so `overrides_for_jobs` quotes those values, exactly as a preset writes
them; it also hides a storage password, which the jobs get from the environment.
"""
from __future__ import annotations

from typing import Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from scalelab.hydra_private import PARAMS_PREFIX
from scalelab.messages import has_credentials, redact_url
from scalelab.sweeps.search_space import format_value

STORAGE_KEY = "hydra.sweeper.storage"


def _is_sweep(parser: OverridesParser, line: str) -> bool:
    try:
        return parser.parse_override(line).is_sweep_override()
    except HydraException:
        return False  # already quoted, or not for this parser: leave it as it is


def overrides_for_jobs(lines: Sequence[str], storage: Optional[str]) -> list[str]:
    """Hydra's own overrides (`hydra.overrides.hydra`) as the jobs should see them:
    `+hydra.sweeper.params.x=interval(0,1)` -> `...='interval(0,1)'`, and the storage URL
    redacted when it holds a password."""
    parser = OverridesParser.create()
    out = []
    for line in lines:
        key, _, value = line.partition("=")
        name = key.lstrip("+~")
        if name.startswith(PARAMS_PREFIX) and _is_sweep(parser, line):
            line = f"{key}={format_value(value)}"
        elif name == STORAGE_KEY and has_credentials(storage):
            line = f"{key}={format_value(redact_url(storage))}"
        out.append(line)
    return out
