"""The PostgreSQL server of the `postgres` tests: scripts/postgres/start.sh writes its URL (with a random password)
to /tmp/sspo-postgres/url; $SSPO_TEST_POSTGRES_URL points the tests at another server."""

from __future__ import annotations

import os
from pathlib import Path

from sspo_exp.sweeps.storage import redact

START = "scripts/postgres/install.sh && scripts/postgres/start.sh"


def postgres_url() -> tuple[str | None, str | None]:
    """``(url, None)`` when a server answers, else ``(None, why not)``."""
    url = os.environ.get("SSPO_TEST_POSTGRES_URL")
    if not url:
        path = Path(os.environ.get("SSPO_PG_STATE", "/tmp/sspo-postgres")) / "url"
        try:
            url = path.read_text().strip()
        except OSError:
            return None, f"no {path} (start a server with {START}, or set SSPO_TEST_POSTGRES_URL)"
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install -e '.[test,postgres]')"
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except Exception as e:  # noqa: BLE001 - any reason the server is unusable is a reason to skip
        return None, f"cannot connect to {redact(url)}: {redact(str(e)).strip()[:200]} ({START})"
    return url, None


def password_of(url: str) -> str:
    from sqlalchemy.engine import make_url

    password = make_url(url).password
    assert password and len(password) >= 8, "the test server's user must have a (non-trivial) password"
    return password


def files_containing(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``secret`` (text, W&B's binary logs, pickles alike)."""
    needle = secret.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]
