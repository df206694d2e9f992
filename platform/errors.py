"""Errors a user can fix: the message names the setting and what is allowed."""
from scalelab.errors import ScalelabError


class ConfigError(ScalelabError):
    """A bad value of the training run's config. `train` records it as the run's error in one
    line (any other exception with its traceback), and in a sweep it fails that trial alone."""
