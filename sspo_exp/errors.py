"""The project's user-facing error: a bad config value, reported as one line naming the field (exit status 2)."""

from __future__ import annotations

import os
from pathlib import Path


class ConfigError(ValueError):
    """The config cannot run as given: a value is invalid (the message names the field, the value and what would be
    right), or a prerequisite it needs is missing (the message names the command that makes it)."""


def writable_dir(path: str | os.PathLike, field: str, create: bool = True, fix: str | None = None,
                 given: str | None = None) -> Path:
    """``path``, created with its parents if missing; a :class:`ConfigError` naming ``field`` (``output_root``,
    ``SSPO_EXP_CACHE``, ``--out``) when it cannot be created or written (a mistyped mount, a read-only disk), instead
    of the ``OSError`` traceback of whatever would have written there first. ``path`` is taken as given (``~`` is
    not expanded): the caller passes the path it will write. ``create=False``: only check, creating nothing (the
    nearest existing directory on the way must be writable), for a command that may still stop before it writes.
    ``fix``: what to do, when not "set <field> to a directory you can write"; ``given``: the value the user wrote when
    ``path`` is its directory (a file's), shown instead of ``path``."""
    path, fix = Path(path), fix or f"set {field} to a directory you can write"
    what = f"its directory {path}" if given else "this directory"
    head = f"{field}={given or str(path)!r}"
    if not create:  # os.path: False, not a PermissionError, for a path behind a directory this user may not search
        there = next((p for p in (path, *path.parents) if os.path.exists(p)), Path("."))
        if not os.path.isdir(there):
            raise ConfigError(f"{head}: cannot create {what} ({there} is not a directory); {fix}")
        if not os.access(there, os.W_OK | os.X_OK):
            state = f"{what} is not writable" if there == path else f"cannot create {what} ({there} is not writable)"
            raise ConfigError(f"{head}: {state}; {fix}")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{head}: cannot create {what} ({err.strerror or err}); {fix}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{head}: {what} is not writable; {fix}")
    return path
