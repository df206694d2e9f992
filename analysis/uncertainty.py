"""A prediction's interval from every source of its error, or the plain statement that none holds.

A bootstrap of one law's parameters knows only how its data scatter. Four sources, each as a
relative half-width of a 95% interval, added in quadrature (in log loss):

- `fit`: the chosen law's bootstrap over whole runs (half the log width of its interval);
- `forms`: the spread of the candidate laws' predictions, the largest distance from the chosen
  one (which law is right is itself unknown);
- `seed`: 1.96 seed-to-seed standard deviations (the run that checks the prediction is one draw);
- `floor`: the backtest's error at the target's distance (`benchmarks/backtest.py`), what the
  laws missed by on runs they did not see.

Where the forms disagree by more than the other three together allow, or the target lies where
the law cannot be trusted (`scalelab.analysis.reach`), there is no reliable prediction:
`reliable` is false and `why` says so; the number is kept for the record only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

Z95 = 1.96


@dataclass
class Interval:
    loss: float
    lo: float
    hi: float
    parts: dict[str, float] = field(default_factory=dict)  # relative half-widths by source
    reliable: bool = True
    why: str = ""

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.loss

    def holds(self, measured: float) -> bool:
        return self.lo <= measured <= self.hi

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "width": self.width}


def combine(loss: float, fit_interval: tuple[float, float], forms: dict[str, float] | None = None,
            seed_sd: float = float("nan"), floor: float = 0.0, distrust: str = "") -> Interval:
    """The interval of `loss` from its sources (module docstring); `forms` maps each candidate
    law to its prediction of the same quantity; `distrust` is why the law has no reliable number
    at the target, if it has none."""
    lo, hi = fit_interval
    parts = {"fit": 0.5 * math.log(hi / lo) if 0 < lo <= hi else float("nan")}
    spread = [abs(math.log(v / loss)) for v in (forms or {}).values() if v and v > 0 and math.isfinite(v)]
    parts["forms"] = max(spread, default=0.0)
    parts["seed"] = Z95 * seed_sd if math.isfinite(seed_sd) else 0.0
    parts["floor"] = floor
    known = [v for v in parts.values() if math.isfinite(v)]
    half = math.sqrt(sum(v * v for v in known))
    rest = math.sqrt(sum(v * v for k, v in parts.items() if k != "forms" and math.isfinite(v)))
    reliable, why = True, ""
    if distrust:
        reliable, why = False, f"no reliable prediction: {distrust}"
    elif not math.isfinite(parts["fit"]):
        reliable, why = False, "the law's bootstrap gave no interval"
    elif parts["forms"] > rest:
        worst = max(forms, key=lambda k: abs(math.log(forms[k] / loss)))
        reliable, why = False, (f"no reliable prediction: the candidate laws disagree by {100 * parts['forms']:.1f}% "
                                f"({worst}: {forms[worst]:.4g}), more than the other sources allow "
                                f"(+-{100 * rest:.1f}%)")
    return Interval(loss, loss * math.exp(-half), loss * math.exp(half), parts, reliable, why)
