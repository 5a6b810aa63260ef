"""The sweeps' user-facing errors (the CLIs print them as one line, exit status 2). They live below every sweeps
module, so ``pruning`` (which checks a study file's ``pruner`` block) and ``optuna_cli`` (which imports ``pruning``)
share them without importing each other."""


class SweepError(ValueError):
    """A sweep file is malformed; the message names the file, the key and what would be right."""


class SpaceError(ValueError):
    """A search-space file is malformed; the message names the key and the allowed values."""
