"""The error `scalelab data prepare` reports as one line: the input or option at fault, and why."""
from scalelab.errors import ScalelabError


class PrepareError(ScalelabError):
    """A class of its own: training reports a prepared folder's problem as a ConfigError on `data.dir`."""
