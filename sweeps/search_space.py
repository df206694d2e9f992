"""The `params:` search space -> Optuna distributions.

The syntax is Hydra's override grammar, as users know it from hydra-optuna-sweeper:

    optim.lr: tag(log, interval(1e-4, 1e-1))   # float, log scale
    optim.weight_decay: interval(0.0, 0.2)     # float, uniform
    model.depth: int(interval(2, 8))           # int (both ends included)
    train.batch_size: choice(16, 32, 64)       # categorical (also `16,32,64`)
    model.heads: range(2, 10, 2)               # ints 2, 4, ..., 10 (both ends included)
    optim.warmup: range(0.0, 0.1, 0.05)        # floats 0.0, 0.05, 0.1
    model.seed: shuffle(range(0, 3))           # categorical 0, 1, 2
    schedule: cosine                           # a fixed value, passed through

The meanings are hydra-optuna-sweeper's: `range(a, b[, step])` is Optuna's stepped distribution
from a to b, b included (a float one when any part is a float), not Hydra's end-exclusive list.
Checked against the composed job config: every path must exist (or be written `+path`), and
where the config is typed (a structured config), every choice and both ends of an interval
must have the key's type, so that no trial fails composing its config; where a table of ranges
is given (the training run's `RANGES`), every choice and both ends must lie in the key's range,
so that no trial fails its run's own check. `log` is the one tag a distribution takes.
Every problem is a `SearchSpaceError` with a one-line message naming the parameter.

`describe` writes a distribution back in this syntax; a study keeps its search space so, and
`space_difference` names what another sweep would change in it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException
from omegaconf import ListConfig, OmegaConf, read_write
from omegaconf.errors import ValidationError
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from scalelab.conf.schema import Range
from scalelab.messages import first_line
from scalelab.record import flatten
from scalelab.sweeps.config import SweepError

SWEEP_KEY_PREFIXES = ("+", "++", "~")
# hydra-optuna-sweeper reads `log` and ignores any other tag: a typo (`tag(lg, ...)`) or a scale
# it does not have (`tag(linear, ...)`) would search another distribution than the one meant.
TAGS = {"log"}


# A `params:` entry that is malformed, empty, or names a key that does not exist: a sweep setting.
SearchSpaceError = SweepError


@dataclass
class SearchSpace:
    distributions: dict[str, Any] = field(default_factory=dict)  # name -> optuna distribution
    keys: dict[str, str] = field(default_factory=dict)  # name -> override key (with `+` if any)
    fixed: list[str] = field(default_factory=list)  # overrides passed to every trial as they are

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """Command-line overrides for one trial's sampled `params`."""
        return [f"{self.keys[name]}={format_value(params[name])}" for name in self.distributions]

    def __bool__(self) -> bool:
        return bool(self.distributions or self.fixed)


def format_value(value: Any) -> str:
    """A Python value as a Hydra override value that parses back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _as_override_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, ListConfig)):
        return "choice(" + ",".join(format_value(v) for v in value) + ")"
    return format_value(value)


def distribution_for(name: str, override: Override) -> BaseDistribution:
    """The Optuna distribution for one parsed sweep override (interval, choice, range)."""
    value = override.value()
    tags = getattr(value, "tags", set())
    unknown = sorted(tags - TAGS)
    if unknown:
        raise SearchSpaceError(f"params.{name}: unknown tag {', '.join(unknown)}: the one tag a distribution "
                               "takes is log, as in tag(log, interval(a, b))")
    log = "log" in tags
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if not low < high:
            raise SearchSpaceError(
                f"params.{name}: interval({low}, {high}) is empty or inverted (need low < high)"
            )
        if log and low <= 0:
            raise SearchSpaceError(
                f"params.{name}: log scale needs a positive range, got interval({low}, {high})"
            )
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    if isinstance(value, RangeSweep):
        return _range_distribution(name, override, value, log)
    if isinstance(value, ChoiceSweep):
        if log:
            raise SearchSpaceError(f"params.{name}: log scale does not apply to choice()")
        choices = list(value.list)
        if not choices:
            raise SearchSpaceError(f"params.{name}: choice() is empty")
        bad = [c for c in choices if not (c is None or isinstance(c, (bool, int, float, str)))]
        if bad:
            raise SearchSpaceError(f"params.{name}: choice() values must be scalars, got {bad!r}")
        return CategoricalDistribution(choices)
    raise SearchSpaceError(f"params.{name}: unsupported sweep {value!r}")


def _range_distribution(name: str, override: Override, value: RangeSweep, log: bool) -> BaseDistribution:
    """`range(a, b[, step])` as hydra-optuna-sweeper reads it: a stepped distribution from a to b,
    b included (Optuna's `high`), a float one when any part is a float; `shuffle(range(...))` is a
    categorical of Hydra's points."""
    start, stop, step = value.start, value.stop, value.step
    text = f"range({start}, {stop}, {step})"
    if value.shuffle:
        # Sorted: a shared or resumed study must see the same choices in the same order.
        values = sorted(override.sweep_iterator())
        if not values:
            raise SearchSpaceError(f"params.{name}: shuffle({text}) is empty")
        if log:
            raise SearchSpaceError(f"params.{name}: log scale does not apply to shuffle(range(...))")
        return CategoricalDistribution(values)
    if not step or step < 0:
        raise SearchSpaceError(f"params.{name}: {text} needs a positive step")
    if start > stop:
        raise SearchSpaceError(f"params.{name}: {text} is empty (start > end; the end is included)")
    if log and start <= 0:
        raise SearchSpaceError(f"params.{name}: log scale needs a positive range, got {text}")
    if any(isinstance(v, float) for v in (start, stop, step)):
        if log:
            raise SearchSpaceError(f"params.{name}: log scale is not supported on a float range()")
        return FloatDistribution(float(start), float(stop), step=float(step))
    if log and step != 1:
        raise SearchSpaceError(f"params.{name}: log scale needs step 1 in range()")
    return IntDistribution(int(start), int(stop), step=int(step), log=log)


def describe(distribution: BaseDistribution) -> str:
    """`distribution` in the `params:` syntax that gives it, e.g. `tag(log, interval(0.0001, 0.03))`."""
    if isinstance(distribution, CategoricalDistribution):
        return "choice(" + ", ".join(format_value(c) for c in distribution.choices) + ")"
    low, high, step = distribution.low, distribution.high, distribution.step
    if isinstance(distribution, IntDistribution):
        text = f"int(interval({low}, {high}))" if step == 1 else f"range({low}, {high}, {step})"
    else:
        text = f"interval({low!r}, {high!r})" if step is None else f"range({low!r}, {high!r}, {step!r})"
    return f"tag(log, {text})" if distribution.log else text


def space_difference(before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """What differs between two search spaces written by `describe` (name -> text), one phrase each."""
    out = [f"{name} was {before[name]}, is now {now[name]}" for name in before
           if name in now and before[name] != now[name]]
    out += [f"{name} was searched as {before[name]}, is not now" for name in before if name not in now]
    out += [f"{name} is searched now as {now[name]}, was not" for name in now if name not in before]
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_range(name: str, path: str, distribution: BaseDistribution, allowed: Range) -> None:
    """Refuse a choice or an interval end outside the values `path` means something for: the
    sampler would send trials there, and each would fail its run's check of the same range."""
    if isinstance(distribution, CategoricalDistribution):
        values = [c for c in distribution.choices if _is_number(c)]
    else:
        values = [distribution.low, distribution.high]
    for value in values:
        if not allowed.admits(value):
            raise SearchSpaceError(f"params.{name}: {describe(distribution)} includes {value!r}, but {path} "
                                   f"must be {allowed}")


def _is_group(config: Any, key: str) -> bool:
    """Whether `key` picks a config group option (`model=gpt_s`) rather than a value."""
    choices = OmegaConf.select(config, "hydra.runtime.choices", default=None)
    return choices is not None and key in choices


def key_exists(config: Any, key: str) -> bool:
    if config is None:
        return True
    if _is_group(config, key):
        return True
    if "/" in key:  # a config group such as optim/schedule, and not one of this config
        return False
    sentinel = object()
    return OmegaConf.select(config, key, default=sentinel, throw_on_missing=False) is not sentinel


def _type_name(config: Any, path: str) -> Optional[str]:
    """The declared type of the value at `path` (`int`, `ScheduleName`, `List[float]`)."""
    parent, _, last = path.rpartition(".")
    container = OmegaConf.select(config, parent) if parent else config
    try:
        ref = container._get_node(last)._metadata.ref_type
    except (AttributeError, KeyError, TypeError, ValueError):
        return None  # a list element or another node without metadata of its own
    return ref.__name__ if isinstance(ref, type) else str(ref).replace("typing.", "")


def check_types(name: str, path: str, distribution: BaseDistribution, config: Any) -> None:
    """Refuse a choice or an interval end that the typed job config would not take at `path`.

    `config` is a copy that this changes: each value is set as a trial's override would set it,
    and a structured config raises a ValidationError for a value of the wrong type."""
    if isinstance(distribution, CategoricalDistribution):
        values, what = list(distribution.choices), "choice"
    else:
        values, what = [distribution.low, distribution.high], "interval bound"
    for value in values:
        try:
            with read_write(config):
                OmegaConf.update(config, path, value, merge=True)
        except ValidationError as e:
            expected = _type_name(config, path) or "the config's type"
            hint = ("; an int needs int(interval(...))"
                    if expected == "int" and isinstance(distribution, FloatDistribution) else "")
            detail = str(e).strip().splitlines()[0]
            raise SearchSpaceError(f"params.{name}: {what} {value!r} is not a valid {expected} for "
                                   f"{path} ({detail}){hint}") from None


def parse_params(params: Mapping[str, Any] | None, config: Any = None,
                 ranges: Optional[Mapping[str, Range]] = None) -> SearchSpace:
    """Parse and check `hydra.sweeper.params` against the composed job config `config` and the
    values each of its keys means something for, `ranges` (config path -> Range)."""
    parser = OverridesParser.create()
    space = SearchSpace()
    typed = copy.deepcopy(config)  # check_types sets values in it
    for key, raw in flatten(params).items():
        text = _as_override_text(raw)
        try:
            override = parser.parse_override(f"{key}={text}")
        except HydraException as e:
            raise SearchSpaceError(f"params.{key}: cannot parse {text!r}: {first_line(str(e))}") from None
        name = override.key_or_group
        is_add = key.startswith(SWEEP_KEY_PREFIXES)
        if override.package is not None:
            name = f"{name}@{override.package}"
        if not is_add and not key_exists(config, override.key_or_group):
            raise SearchSpaceError(
                f"params.{key}: unknown parameter path '{override.key_or_group}' "
                f"(not in the composed job config; a new key is written `+{override.key_or_group}` in params)"
            )
        if override.is_sweep_override():
            space.distributions[name] = distribution_for(name, override)
            space.keys[name] = key
            if typed is not None and not is_add and not _is_group(typed, override.key_or_group):
                check_types(name, override.key_or_group, space.distributions[name], typed)
            if not is_add and override.key_or_group in (ranges or {}):
                check_range(name, override.key_or_group, space.distributions[name], ranges[override.key_or_group])
        else:
            space.fixed.append(f"{key}={override.get_value_element_as_str()}")
    return space
