"""A cached, once-per-key, crash-safe stage: ``run_stage(cache_root, stage_id, build) -> directory``.

Used by the cold start (``sspo_exp.models.cold_start``): many jobs may ask for the same stage output at once (the
seeds of a SLURM multirun, the processes of one ``accelerate launch``); it is computed once, and a job killed while
computing it leaves nothing a later job could mistake for a result.

Layout under ``cache_root`` for one ``stage_id``::

    <stage_id>/           the published result (written only by one atomic rename; has STAGE_FILE)
    <stage_id>.partial/   the builder's work directory: checkpoints, and ``out/``, the result being written
    <stage_id>.lock       the file lock (``filelock``: ``flock`` on POSIX, released by the OS when its holder dies)

Protocol: a published ``<stage_id>/`` is returned at once. Otherwise the caller takes the lock (waiting, with a
message, while another process holds it), checks again (the holder may just have published), and runs
``build(work_dir)``. ``build`` writes the result into ``work_dir / "out"`` and may keep checkpoints anywhere in
``work_dir``: a builder killed mid-way leaves ``<stage_id>.partial/`` behind and the next caller, holding the
lock, gets the same ``work_dir`` to resume from. When ``build`` returns, :data:`STAGE_FILE` (the stage's meaning
and provenance) is written into ``out/``, ``out/`` is renamed to ``<stage_id>`` (atomic on one filesystem) and the
work directory is removed. A reader therefore sees either no ``<stage_id>/`` or a complete one.

The lock must be honoured by every host that shares the cache: ``flock`` works on local disks and on most cluster
filesystems (NFSv4, Lustre/GPFS with flock enabled); where it does not, set ``SSPO_EXP_CACHE`` to a per-node disk
or compute the stage once in a job the others depend on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: Written into every published stage directory: ``{"stage_id", "key", "info", "seconds", "finished_at"}``.
STAGE_FILE = "stage.json"


def cache_root() -> Path:
    """``$SSPO_EXP_CACHE`` or ``~/.cache/sspo-exp``."""
    return Path(os.environ.get("SSPO_EXP_CACHE") or Path.home() / ".cache" / "sspo-exp")


def key_hash(key: Mapping[str, Any], n: int = 16) -> str:
    """Hex digest of a JSON-able key (sorted keys; tuples as lists)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:n]


def published(cache: str | os.PathLike, stage_id: str) -> Path | None:
    """The published directory of ``stage_id`` under ``cache``, or None."""
    path = Path(cache) / stage_id
    return path if (path / STAGE_FILE).is_file() else None


def _announce_wait(stage_id: str, lock_path: Path) -> None:
    """Called once when another process holds the lock (tests replace it to observe the wait)."""
    print(f"{stage_id}: another process is computing it (lock {lock_path}); waiting", flush=True)


def run_stage(cache: str | os.PathLike, stage_id: str, build: Callable[[Path], dict[str, Any] | None],
              key: Mapping[str, Any] | None = None) -> Path:
    """The published directory of ``stage_id``; computed by ``build(work_dir)`` if absent (see the module docstring).

    ``build`` writes the result into ``work_dir / "out"`` and may return a dict of information (e.g. the checkpoint
    it resumed from) that goes into :data:`STAGE_FILE` beside ``key``.
    """
    from filelock import FileLock, Timeout

    cache = Path(cache).expanduser()
    done = published(cache, stage_id)
    if done:
        return done
    cache.mkdir(parents=True, exist_ok=True)
    lock_path = cache / f"{stage_id}.lock"
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _announce_wait(stage_id, lock_path)
        lock.acquire()
    try:
        done = published(cache, stage_id)  # the process we waited for has published it
        if done:
            return done
        work = cache / f"{stage_id}.partial"
        work.mkdir(exist_ok=True)
        start = time.time()
        info = build(work) or {}
        out = work / "out"
        if not out.is_dir():
            raise RuntimeError(f"{stage_id}: the builder returned without writing {out}")
        record = {"stage_id": stage_id, "key": key, "info": info, "seconds": round(time.time() - start, 1),
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (out / STAGE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
        target = cache / stage_id
        if target.exists():  # a directory without STAGE_FILE: left by something else, never by a finished build
            shutil.rmtree(target)
        os.replace(out, target)  # atomic publish
        shutil.rmtree(work, ignore_errors=True)
        return target
    finally:
        lock.release()
