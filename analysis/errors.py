"""One exception for every problem the analysis can name; the CLI prints it without a traceback."""
from __future__ import annotations


class AnalysisError(ValueError):
    """Bad input to the analysis: an empty table, a missing column, a fit file of another law..."""
