"""Errors a user can fix: the message names the setting and what is allowed."""
from scalelab.errors import ScalelabError


class ConfigError(ScalelabError):
    """A bad value of the training run's config. `train` records it as the run's error in one
    line (any other exception with its traceback), and in a sweep it fails that trial alone."""


class RunFolderError(ConfigError):
    """A run folder (`hydra.run.dir`) that cannot take the run: not a folder, not writable, held by
    another run, or holding a checkpoint that cannot be read. The message names the path and what
    to do."""
