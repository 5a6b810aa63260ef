"""Where an Optuna study lives: a journal file, SQLite, or a PostgreSQL server — and keeping its password secret.

``--storage S`` (or ``$SSPO_OPTUNA_STORAGE``; default ``runs/optuna/<study>.journal``):

- a file path → Optuna's ``JournalFileBackend`` (append-only; concurrent workers on a shared filesystem);
- ``sqlite:///study.db`` → ``RDBStorage`` on SQLite (one machine);
- ``postgresql://user:pw@host:5432/db`` → ``RDBStorage`` on PostgreSQL through the driver of the ``postgres`` extra
  (``pip install 'sspo-exp[postgres]'``: psycopg 3). A plain ``postgresql://`` URL uses psycopg 3 when it is
  installed (``postgresql+psycopg://``), else psycopg2; ``postgresql+psycopg2://`` / ``+psycopg://`` pick one.
  A password can stay out of the URL: libpq reads ``PGPASSWORD`` and ``~/.pgpass``.

On an RDB storage every running trial sends a heartbeat (``heartbeat_interval`` seconds, the study file's
``heartbeat`` block); a trial whose heartbeat is older than ``grace_period`` — its worker was killed — is marked FAIL
by the next trial that starts in any worker (Optuna's ``fail_stale_trials``), so the study goes on.

A password in the URL is never printed or written by us: messages show :func:`redact`-ed URLs, worker jobs get the
URL through their environment (``SSPO_OPTUNA_STORAGE``), not through submitit's pickled arguments, and the CLI
removes it from ``sys.argv`` (which W&B records as the run's command line).
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from pathlib import Path

from sspo_exp.errors import ConfigError, writable_dir

#: Environment variable holding the storage when ``--storage`` is absent; also how worker jobs receive it.
STORAGE_ENV = "SSPO_OPTUNA_STORAGE"
#: Install hint for a PostgreSQL URL without its driver.
POSTGRES_HINT = "pip install 'sspo-exp[postgres]'"
#: SQLAlchemy dialect suffix -> the module it imports.
DRIVERS = {"psycopg": "psycopg", "psycopg2": "psycopg2"}

_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s]*:)(?P<pw>[^@\s]*)(?=@)")
_QUERY_PW = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&\s]*)", re.IGNORECASE)


class StorageError(ValueError):
    """A storage cannot be used (unknown scheme, missing driver); the message says what to do."""


def redact(text: str) -> str:
    """``text`` with every URL password (``scheme://user:PW@``, ``?password=PW``) replaced by ``***``."""
    text = _USERINFO.sub(lambda m: m["head"] + "***", str(text))
    return _QUERY_PW.sub(lambda m: m["head"] + "***", text)


def is_url(storage: str) -> bool:
    return "://" in storage


def resolve(storage: str | None, study: str) -> str:
    """``--storage`` if given, else ``$SSPO_OPTUNA_STORAGE``, else ``runs/optuna/<study>.journal``."""
    return storage or os.environ.get(STORAGE_ENV) or str(Path("runs") / "optuna" / f"{study}.journal")


def sqlalchemy_url(storage: str) -> str:
    """The SQLAlchemy URL for an RDB storage, with the PostgreSQL driver made explicit and installed.

    Checked before anything heavy is imported (only ``importlib.util.find_spec``), so a missing driver is a clear
    one-line error, not an ImportError traceback from inside SQLAlchemy.
    """
    scheme, rest = storage.split("://", 1)
    dialect, _, driver = scheme.partition("+")
    if dialect in ("postgres", "postgresql"):
        if not driver:  # the installed driver, psycopg 3 first
            driver = next((d for d in DRIVERS if importlib.util.find_spec(DRIVERS[d]) is not None), "psycopg")
        if driver not in DRIVERS:
            raise StorageError(f"--storage {redact(storage)}: PostgreSQL driver {driver!r} is not supported; use "
                               f"postgresql:// (psycopg 3, {POSTGRES_HINT}) or postgresql+psycopg2://")  # fmt: skip
        if importlib.util.find_spec(DRIVERS[driver]) is None:
            raise StorageError(f"--storage {redact(storage)}: the PostgreSQL driver {DRIVERS[driver]!r} is not "
                               f"installed; install it with: {POSTGRES_HINT}")  # fmt: skip
        return f"postgresql+{driver}://{rest}"
    if dialect == "sqlite":
        return storage
    raise StorageError(f"--storage {redact(storage)}: unknown URL scheme {scheme!r}; use a journal file path, "
                       f"sqlite:///FILE or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB ({POSTGRES_HINT})")  # fmt: skip


def check(storage: str, write: bool = True) -> None:
    """Raise now if ``storage`` cannot be opened: :class:`StorageError` for want of a driver or a known scheme, a
    :class:`~sspo_exp.errors.ConfigError` when a journal file's directory cannot be created or written (``write``;
    reading a study, ``optuna show``, needs neither)."""
    if is_url(storage):
        sqlalchemy_url(storage)
    elif write:
        writable_dir(Path(storage).expanduser().resolve().parent, "--storage", given=storage,
                     fix="name a journal file in a directory you can write (or a database URL)")
    elif not os.path.isfile(Path(storage).expanduser()):  # reading: nothing to create (open_storage would)
        raise ConfigError(f"--storage={storage!r}: no journal file there; create the study first (sspo-exp optuna "
                          "create SPACE.yaml --storage ...)")


def open_storage(storage: str, heartbeat: dict | None = None):
    """An Optuna storage: RDB for a URL (with heartbeats when ``heartbeat`` = ``{interval, grace_period}``),
    else a journal file (created with its directory)."""
    import optuna

    if is_url(storage):
        url = sqlalchemy_url(storage)
        kwargs = {}
        if url.startswith("postgresql"):  # a long trial may outlive an idle connection (server or firewall timeout)
            kwargs["engine_kwargs"] = {"pool_pre_ping": True}
        if heartbeat:
            kwargs.update(heartbeat_interval=int(heartbeat["interval"]), grace_period=int(heartbeat["grace_period"]))
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's API since 2.9; we test them
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors may quote the URL: say it redacted, once
            raise StorageError(f"--storage {redact(storage)}: cannot open: {redact(_first_line(e))}") from None
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
