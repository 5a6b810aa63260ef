"""The project's user-facing error: a bad config value, reported as one line naming the field (exit status 2)."""

from __future__ import annotations

import os
from pathlib import Path


class ConfigError(ValueError):
    """The config cannot run as given: a value is invalid (the message names the field, the value and what would be
    right), or a prerequisite it needs is missing (the message names the command that makes it)."""


def writable_dir(path: str | os.PathLike, field: str, create: bool = True, fix: str | None = None) -> Path:
    """``path``, created with its parents if missing; a :class:`ConfigError` naming ``field`` (``output_root``,
    ``SSPO_EXP_CACHE``, ``--out``) when it cannot be created or written (a mistyped mount, a read-only disk), instead
    of the ``OSError`` traceback of whatever would have written there first. ``path`` is taken as given (``~`` is
    not expanded): the caller passes the path it will write. ``create=False``: only check, creating nothing (the
    nearest existing directory on the way must be writable), for a command that may still stop before it writes.
    ``fix``: what to do, when not "set <field> to a directory you can write"."""
    path, fix = Path(path), fix or f"set {field} to a directory you can write"
    if not create:
        there = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
        if there.exists() and not there.is_dir():
            raise ConfigError(f"{field}={str(path)!r}: cannot create this directory ({there} is not a directory); "
                              f"{fix}")
        if not os.access(there, os.W_OK | os.X_OK):
            raise ConfigError(f"{field}={str(path)!r}: cannot create this directory ({there} is not writable); {fix}")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{field}={str(path)!r}: cannot create this directory ({err.strerror or err}); "
                          f"{fix}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{field}={str(path)!r}: this directory is not writable; {fix}")
    return path
