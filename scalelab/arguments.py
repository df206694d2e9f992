"""argparse types for the numbers a command can use: a refusal says what is allowed."""
from __future__ import annotations

import argparse
import math


def number(kind: type, ok, allowed: str):
    """An argparse type: `kind(text)` where `ok` holds of it."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not ok(value):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return parse


count = number(int, lambda v: v >= 0, "a whole number >= 0")
positive = number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
level = number(float, lambda v: 0 < v < 1, "a level strictly between 0 and 1 (0.95 for 95%)")
