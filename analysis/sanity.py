"""Checks that a loss law's table and fit mean something, shared by the laws of the loss.

A least-squares fit returns numbers for any table: a constant loss gives a law with zero
exponents, a table whose N mixes units (some rows in millions) one whose loss rises with size.
Such a law would be printed and saved as confidently as a good one, so it is refused, saying why.
"""
from __future__ import annotations

import numpy as np

from .errors import AnalysisError

SCALES = {"N": "model size N", "D": "data D", "C": "compute C"}
CAUSES = ("check N, D and C for mixed units (some rows in millions or billions, others in units) "
          "and --map for a column mapped wrong")


def require_varying(values, name: str = "loss") -> None:
    """Refuse a column that takes one value: no law can be fitted to it."""
    v = np.asarray(values, float)
    if len(v) and np.all(v == v[0]):
        raise AnalysisError(f"the {name} does not vary: every row is {v[0]:g}; a law needs runs "
                            f"whose {name} differs")


def require_loss_falls(law: str, params: dict[str, float], exponents: dict[str, str]) -> None:
    """Refuse a fitted loss law whose exponent of scale is not positive (`exponents`: parameter
    -> the column, or words, it is the exponent of), or with a parameter that is no finite number."""
    for name, value in params.items():
        if not np.isfinite(value):
            raise AnalysisError(f"the {law} fit gives {name} = {value:g}, no finite number: it ran away; "
                                "check the loss for a wild value and " + CAUSES.removeprefix("check "))
    for name, scale in exponents.items():
        if not params[name] > 0:
            raise AnalysisError(f"the {law} fit gives {name} = {params[name]:.3g}: the loss does not "
                                f"fall with {SCALES.get(scale, scale)}; {CAUSES}")
