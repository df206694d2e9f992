"""`custom_search_space`: parameters that `params` cannot express, as in hydra-optuna-sweeper.

`custom_search_space: my_app.configure` names a function `configure(cfg, trial)` that the
sweeper calls for each trial after sampling `params`, with the sweep's config; it calls
`trial.suggest_*` for more parameters, typically ones that depend on values already sampled
(`trial.params["x"]`). `load` imports it before any trial; `overrides` turns what it suggested
into the job's overrides, `+name=value` where the job config has no such key (the function may
also name a parameter `+name` itself, as upstream's examples do).
"""
from __future__ import annotations

from typing import Any, Callable, Container, Mapping, Optional

from scalelab.hydra_private import locate
from scalelab.messages import first_line
from scalelab.sweeps.config import SweepError
from scalelab.sweeps.search_space import SWEEP_KEY_PREFIXES, format_value, key_exists


def load(dotted_path: Optional[str]) -> Optional[Callable[[Any, Any], None]]:
    """The function at `dotted_path` (None when none is set); a `SweepError` when it cannot be imported."""
    if not dotted_path:
        return None
    try:
        # Hydra's own lookup, as upstream's `get_method`, which also logs the error on several lines
        fn = locate(dotted_path)
    except Exception as e:  # noqa: BLE001 - ImportError around the module's own error, ValueError
        raise SweepError(f"custom_search_space {dotted_path!r}: cannot import it: "
                         f"{first_line(e.__cause__ or e)}") from None
    if not callable(fn):
        raise SweepError(f"custom_search_space {dotted_path!r} is a {type(fn).__name__}, not a function")
    return fn


def path(name: str) -> str:
    """The config path of a parameter name (`+w` -> `w`)."""
    return name.lstrip("+~")


def overrides(params: Mapping[str, Any], searched: Container[str], config: Any) -> list[str]:
    """Overrides for the parameters in `params` that are not in the search space `searched`."""
    out = []
    for name, value in params.items():
        if name in searched:
            continue
        known = name.startswith(SWEEP_KEY_PREFIXES) or key_exists(config, name)
        out.append(f"{name if known else '+' + name}={format_value(value)}")
    return out
