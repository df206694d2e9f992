"""How far a prediction reaches beyond the runs its law was fitted to, and where it cannot be trusted.

A fit file stores the span of N, D and C (or a power law's x) it saw and its number of sizes.
A query outside is an extrapolation: the factor beyond is said with every prediction. Past
`LIMIT` x (the backtest, `benchmarks/backtest.py`, measured errors up to 9x beyond in N) a number
is refused unless forced, and then printed as unreliable, without an interval.

Two more cases have no reliable number however near they are:
- a size beyond the fitted ones with fewer than three sizes: E, A and alpha of the size term are
  three unknowns, and two sizes fix two equations;
- the curve law below its fitted tokens: the transient it leaves out (`CurveLaw.skip`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

LIMIT = 10.0
MIN_SIZES = 3


@dataclass(frozen=True)
class Beyond:
    """One axis of a query outside the fitted range."""

    axis: str
    value: float
    lo: float
    hi: float

    @property
    def factor(self) -> float:
        return self.value / self.hi if self.value > self.hi else self.lo / self.value

    def describe(self) -> str:
        side = "above" if self.value > self.hi else "below"
        return (f"{self.axis} = {self.value:.4g} is {self.factor:.3g}x {side} the fitted range "
                f"[{self.lo:.4g}, {self.hi:.4g}]")


def beyond(inputs: dict[str, Any], **query: Optional[float]) -> list[Beyond]:
    """The axes of `query` (N=..., D=..., C=..., or a power law's x) outside a fit's `inputs` ranges."""
    out = []
    for axis, value in query.items():
        span = inputs.get(f"{axis}_range") or (inputs.get("x_range") if axis == inputs.get("x") else None)
        if value is None or not span:
            continue
        lo, hi = map(float, span)
        if value > hi or value < lo:
            out.append(Beyond(axis, float(value), lo, hi))
    return out


def distrust(law: Any, **query: Optional[float]) -> str:
    """Why `law` has no reliable number at `query`, or "" where it has one."""
    outside = beyond(law.inputs_, **query)
    far = [b for b in outside if b.factor > LIMIT]
    if far:
        return f"{far[0].describe()}, more than {LIMIT:g}x"
    sizes = law.inputs_.get("sizes")
    if sizes is not None and sizes < MIN_SIZES and any(b.axis == "N" for b in outside):
        return (f"the law saw {sizes} size(s): a size beyond them needs at least {MIN_SIZES} "
                "(E, A and alpha are three unknowns)")
    if law.name == "curve" and any(b.axis == "D" and b.value < b.lo for b in outside):
        return (f"D = {query['D']:.4g} tokens lies in the transient the curve law leaves out "
                f"(it fitted points from {law.inputs_['D_range'][0]:.4g} tokens)")
    return ""
