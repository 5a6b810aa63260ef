"""The project's user-facing error: a bad config value, reported as one line naming the field (exit status 2)."""

from __future__ import annotations

import os
from pathlib import Path


class ConfigError(ValueError):
    """The config cannot run as given: a value is invalid (the message names the field, the value and what would be
    right), or a prerequisite it needs is missing (the message names the command that makes it)."""


def writable_dir(path: str | os.PathLike, field: str) -> Path:
    """``path``, created with its parents if missing; a :class:`ConfigError` naming ``field`` (``output_root``,
    ``SSPO_EXP_CACHE``) when it cannot be created or written (a mistyped mount, a read-only disk), instead of the
    ``OSError`` traceback of whatever would have written there first."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{field}={str(path)!r}: cannot create this directory ({err.strerror or err}); set {field} "
                          "to a directory you can write") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{field}={str(path)!r}: this directory is not writable; set {field} to a directory you "
                          "can write")
    return path
