"""The one base class of every error a user can fix by changing an input.

`scalelab.cli.main` is its one handler: whichever command raised it (train, its sweeps, data
prepare, the analysis), it prints `scalelab: error: <message>` on one line, exit status 2.
Each part names its own subclass where some code tells it from the others:

    ScalelabError (ValueError)
    +-- ConfigError    scalelab.platform.errors: a training run's config value; a run records it
    |                  as its error in one line, and in a sweep it fails that trial alone
    +-- SweepError     scalelab.sweeps.config: a sweep or scaling-study setting, before any trial;
    |                  SearchSpaceError (a `params:` entry) and StorageError (a storage URL) are
    |                  its names in their modules. Also a Hydra OneLineInHydra: a plain Hydra app
    |                  using the sweeper prints it as one line too (Hydra's own report, exit 1)
    +-- AnalysisError  scalelab.analysis.errors: an analysis input (a table, a fit file, ...)
    +-- PrepareError   scalelab.prepare.errors: an input or option of `scalelab data prepare`
    +-- RecordError    scalelab.record: a run record that cannot be read

Hydra's own report of bad input to `scalelab train` (an override it cannot parse or apply, a
config that does not compose, its flags) comes as a ScalelabError itself (`hydra_private.run_app`).
"""
from __future__ import annotations

USAGE_EXIT = 2  # as argparse exits on bad arguments


class ScalelabError(ValueError):
    """Bad input: the message names the setting or file at fault and what is allowed."""
