"""One exception for every problem the analysis can name; the CLI prints it without a traceback."""
from __future__ import annotations

from scalelab.errors import ScalelabError


class AnalysisError(ScalelabError):
    """Bad input to the analysis: an empty table, a missing column, a fit file of another law...

    A class of its own: the analysis and the scaling study catch it to go on without one fit."""
