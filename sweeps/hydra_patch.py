"""Where the sweeper bends Hydra: search spaces on the command line, and what jobs are shown.

Hydra refuses sweep syntax in any `hydra.*` override ("Sweeping over Hydra's configuration is
not supported"), but `+hydra.sweeper.params.x=interval(0, 1)` describes a search space, not
a sweep. `allow_params_on_command_line` patches Hydra's (private) config loader to keep such
a value as a string, exactly as if it had been written in a preset. Jobs compose their config
again, maybe in another process without the patch, so `overrides_for_jobs` quotes those
values in the overrides that jobs read, and also hides a storage password there.
"""
from __future__ import annotations

from typing import Optional, Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException

from scalelab.messages import has_credentials, redact_url
from scalelab.sweeps.search_space import format_value

PARAMS_PREFIX = "hydra.sweeper.params."
STORAGE_KEY = "hydra.sweeper.storage"


def allow_params_on_command_line() -> None:
    """Let `'+hydra.sweeper.params.optim.lr=tag(log, interval(1e-4, 1e-1))'` through (idempotent)."""
    original = ConfigLoaderImpl.validate_sweep_overrides_legal
    if getattr(original, "_scalelab", False):
        return

    def validate(overrides, run_mode, from_shell):  # type: ignore[no-untyped-def]
        for o in overrides:
            if o.key_or_group.startswith(PARAMS_PREFIX) and o.is_sweep_override() and o.input_line:
                o.value_type = ValueType.ELEMENT
                o._value = o.input_line.split("=", 1)[1]
        return original(overrides=overrides, run_mode=run_mode, from_shell=from_shell)

    validate._scalelab = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.validate_sweep_overrides_legal = staticmethod(validate)  # type: ignore[method-assign]


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
