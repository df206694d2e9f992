"""The one base class of every error a user can fix by changing an input.

Each part names its own subclass (a config value, a sweep setting, an analysis input, a prepare
input, a storage URL, a record file); all of them are `ScalelabError`, which the `scalelab`
command prints as one line, `scalelab: error: <message>`, with exit status 2.
"""
from __future__ import annotations

USAGE_EXIT = 2  # as argparse exits on bad arguments


class ScalelabError(ValueError):
    """Bad input: the message names the setting or file at fault and what is allowed."""
