"""A cached, once-per-key, crash-safe stage: ``run_stage(cache_root, stage_id, build) -> directory``.

Used by the cold start (``sspo_exp.stages.tiny``): many jobs may ask for the same stage output at once (the
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

**Processes of one launch** (``accelerate launch``, ``WORLD_SIZE > 1``) treat a missing stage by ``launch``:
``"each"`` — a single-process builder, run by whichever process gets the lock (the others wait and load it; the
tiny model); ``"together"`` — every process runs ``build`` (the SFT trainer shards across them), process 0 takes
the lock, decides for all (broadcast) and publishes; ``"cached"`` — only read, :class:`StageMissing` when absent (an
RL launch must not start a second trainer inside its own).

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

from sspo_exp.errors import ConfigError, writable_dir

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


def check_cache(stage_id: str, cache: str | os.PathLike | None = None) -> None:
    """Before torch loads (``sspo-exp train``, ``sspo-exp cold-start``): the cache (default :func:`cache_root`) must be
    writable unless ``stage_id`` is already published in it (a read-only shared cache of finished stages is fine).
    A :class:`ConfigError` naming ``SSPO_EXP_CACHE`` otherwise. Creates nothing (:func:`run_stage` does, when it
    builds; a multi-process launch that may only read the stage stops there, saying which command builds it)."""
    cache = Path(cache if cache is not None else cache_root()).expanduser()
    try:
        done = published(cache, stage_id)
    except PermissionError as err:  # behind a directory this user may not search, or a stage another user locked
        raise ConfigError(f"SSPO_EXP_CACHE={str(cache)!r}: this user cannot look into {err.filename} for the cold "
                          f"start {stage_id}; set SSPO_EXP_CACHE to a directory you can read and write") from None
    if not done:
        writable_dir(cache, "SSPO_EXP_CACHE", create=False,
                     fix=f"its cold start {stage_id} is not there yet: set SSPO_EXP_CACHE to a directory you can write")


LAUNCH_MODES = ("each", "together", "cached")


class StageMissing(ConfigError):
    """A multi-process launch asked for a stage that is not published and may not build it: the user's setup, so
    ``sspo-exp train`` ends with one line and exit status 2 (``sspo_exp.hydra_cli``), naming the command to run first."""


def _announce_wait(stage_id: str, lock_path: Path) -> None:
    """Called once when another process holds the lock (tests replace it to observe the wait)."""
    print(f"{stage_id}: another process is computing it (lock {lock_path}); waiting", flush=True)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _lock(cache: Path, stage_id: str):
    """The stage's file lock, acquired (announcing the wait when another process holds it)."""
    from filelock import FileLock, Timeout

    lock_path = cache / f"{stage_id}.lock"
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _announce_wait(stage_id, lock_path)
        lock.acquire()
    return lock


def _publish(cache: Path, stage_id: str, work: Path, key: Mapping[str, Any] | None, info: dict, start: float) -> Path:
    out = work / "out"
    if not out.is_dir():
        raise RuntimeError(f"{stage_id}: the builder returned without writing {out}")
    record = {"stage_id": stage_id, "key": key, "info": info, "seconds": round(time.time() - start, 1),
              "processes": world_size(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / STAGE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    target = cache / stage_id
    if target.exists():  # a directory without STAGE_FILE: left by something else, never by a finished build
        shutil.rmtree(target)
    os.replace(out, target)  # atomic publish
    shutil.rmtree(work, ignore_errors=True)
    return target


def run_stage(cache: str | os.PathLike, stage_id: str, build: Callable[[Path], dict[str, Any] | None],
              key: Mapping[str, Any] | None = None, launch: str = "each") -> Path:
    """The published directory of ``stage_id``; computed by ``build(work_dir)`` if absent (see the module docstring).

    ``build`` writes the result into ``work_dir / "out"`` and may return a dict of information (e.g. the checkpoint
    it resumed from) that goes into :data:`STAGE_FILE` beside ``key``. ``launch`` (``each | together | cached``) says
    what the processes of a multi-process launch do when the stage is missing (module docstring).
    """
    if launch not in LAUNCH_MODES:
        raise ValueError(f"launch={launch!r}; valid: {list(LAUNCH_MODES)}")
    cache = Path(cache).expanduser()
    done = published(cache, stage_id)
    if done:
        return done
    if world_size() > 1 and launch != "each":
        if launch == "cached":
            raise StageMissing(f"{stage_id} is not in the cache {cache} and this {world_size()}-process launch may "
                               "not build it; compute it first (sspo-exp cold-start, docs/cold_start.md)")
        return _run_stage_distributed(cache, stage_id, build, key)
    writable_dir(cache, "SSPO_EXP_CACHE")
    lock = _lock(cache, stage_id)
    try:
        done = published(cache, stage_id)  # the process we waited for has published it
        if done:
            return done
        work = cache / f"{stage_id}.partial"
        work.mkdir(exist_ok=True)
        start = time.time()
        return _publish(cache, stage_id, work, key, build(work) or {}, start)
    finally:
        lock.release()


def _run_stage_distributed(cache: Path, stage_id: str, build: Callable[[Path], dict[str, Any] | None],
                           key: Mapping[str, Any] | None) -> Path:
    """Every process of the launch builds; process 0 holds the lock, decides, publishes."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    import torch

    # joins the launch's process group (gloo on CPU-only machines: PartialState needs cpu=True to use it)
    state = PartialState(cpu=not torch.cuda.is_available())
    lock, decision = None, [None]
    if state.is_main_process:
        writable_dir(cache, "SSPO_EXP_CACHE")
        lock = _lock(cache, stage_id)
        done = published(cache, stage_id)
        decision = [str(done) if done else "build"]
    try:
        broadcast_object_list(decision)
        if decision[0] != "build":
            return Path(decision[0])
        work = cache / f"{stage_id}.partial"
        if state.is_main_process:
            work.mkdir(exist_ok=True)
        state.wait_for_everyone()
        start = time.time()
        info = build(work) or {}
        state.wait_for_everyone()
        if state.is_main_process:
            _publish(cache, stage_id, work, key, info, start)
        state.wait_for_everyone()
        return cache / stage_id
    finally:
        if lock is not None:
            lock.release()
