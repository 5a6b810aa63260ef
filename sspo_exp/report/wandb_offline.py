"""Read W&B offline run directories (``wandb/offline-run-*/run-*.wandb``) with no server.

W&B keeps a run's config, history and summary only in this transaction log. Since 0.31 it has no Python reader
for it any more (``wandb/sdk/internal/datastore.py`` is gone; the Go ``wandb-core`` writes the file and ``wandb
leet inspect`` reads it). The file format is a LevelDB-style record log, the same in every release tested
(files written by wandb 0.19.11, 0.22.3 and 0.31.0: ``tests/fixtures/wandb/``, ``tests/test_wandb_versions.py``):

- a 7-byte file header ``<4sHB``: ``b":W&B"``, magic ``0xBEE1``, version 0;
- then 32 KiB blocks of chunks, each with a 7-byte header ``<IHB`` = (CRC-32 of type byte + data, length, type),
  type FULL=1 or FIRST=2 / MIDDLE=3 / LAST=4 for a record split across blocks; a block tail shorter than a
  chunk header is zero padding;
- each record is a serialized ``wandb.proto.wandb_internal_pb2.Record`` (W&B's own protobuf class; we
  use it, not a copy), with one of ``run``, ``config``, ``history``, ``summary``, ``exit``, ... set.

A run killed mid-way has no ``exit`` record and may end in a half-written chunk: we read every record up to the
last complete one whose checksum is right and report where reading stopped (``Segment.read_error``).

A file this reader does not understand (another file header, or a record W&B's installed ``Record`` class cannot
parse: a format newer or older than any tested) is read with W&B's own reader instead, with a message saying so:
``wandb leet inspect --json`` (wandb >= 0.31) or ``wandb.sdk.internal.datastore`` (older wandb).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2 as pb

from sspo_exp.report.wandb_values import (  # noqa: F401  (the record parser's helpers, read through this module)
    END, _HISTORY_TAG, _SUMMARY_TAG, RecordView, _apply_config, _apply_summaries, _apply_summary, _bulk, _history_frame,
    _history_rows, _loads_all, _loads_values, _name, _num_len, _numbers)

FILE_HEADER = struct.Struct("<4sHB")
FILE_IDENT, FILE_MAGIC, FILE_VERSION = b":W&B", 0xBEE1, 0
CHUNK_HEADER = struct.Struct("<IHB")
BLOCK_LEN = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}

#: W&B releases whose offline files this reader was tested on (fixtures in tests/fixtures/wandb/ + the installed one)
TESTED_WANDB = ("0.19.11", "0.22.3", "0.31.0")

#: A run with no exit record whose file was last written longer ago than this is "killed", else "running".
RUNNING_IDLE_SECONDS = 600.0


@dataclass
class Segment:
    """One offline-run directory: what one process (one launch of a run) wrote."""

    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    tags: tuple[str, ...] = ()
    start_time: str = ""
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  #: rows as logged (a DataFrame with ``frame=True``)
    exit_code: int | None = None
    state: str = "running"
    read_error: str | None = None
    writer: str = ""  #: the W&B version that wrote the file (its header record), when known
    reader: str = "sspo-exp"  #: who parsed it: "sspo-exp", or W&B's own reader as a fallback


class UnknownFormat(ValueError):
    """The file is not in the record format this reader understands."""


def read_records(path: str | os.PathLike) -> tuple[list[bytes], str | None]:
    """All complete records of a ``.wandb`` file, and why reading stopped early (None for a clean end)."""
    data = Path(path).read_bytes()
    if len(data) < FILE_HEADER.size:
        return [], f"file shorter than its {FILE_HEADER.size}-byte header"
    ident, magic, version = FILE_HEADER.unpack_from(data, 0)
    if (ident, magic, version) != (FILE_IDENT, FILE_MAGIC, FILE_VERSION):
        raise UnknownFormat(
            f"file header {ident!r}, magic {magic:#x}, version {version} (this reader knows {FILE_IDENT!r}, "
            f"{FILE_MAGIC:#x}, version {FILE_VERSION}: files of wandb {', '.join(TESTED_WANDB)})"
        )
    records: list[bytes] = []
    pending: list[bytes] = []
    pos, end = FILE_HEADER.size, len(data)
    unpack, head, crc32, type_crc, add = CHUNK_HEADER.unpack_from, CHUNK_HEADER.size, zlib.crc32, _TYPE_CRC, \
        records.append  # locals: this loop runs once per record (~6,000 per 2,000-step run)
    while pos < end:
        left = BLOCK_LEN - pos % BLOCK_LEN
        if left < head:  # zero padding at a block's end
            pos += left
            continue
        if end - pos < head:
            return records, f"truncated chunk header at byte {pos}"
        crc, length, kind = unpack(data, pos)
        if kind == 0 and length == 0:  # pre-allocated zeros: nothing written past here
            return records, None if not pending else f"unfinished record at byte {pos}"
        start = pos + head
        pos = start + length
        if pos > end:
            return records, f"truncated record at byte {start - head} ({end - start} of {length} bytes)"
        chunk = data[start:pos]
        seed = type_crc.get(kind)
        if seed is None or crc32(chunk, seed) != crc:
            return records, f"bad checksum or chunk type {kind} at byte {start - head}"
        if kind == FULL:
            add(chunk)
        elif kind == FIRST:
            pending = [chunk]
        elif kind == MIDDLE:
            pending.append(chunk)
        else:
            add(b"".join(pending + [chunk]))
            pending = []
    return records, (f"unfinished record at byte {pos}" if pending else None)


def read_segment(run_dir: str | os.PathLike, idle_seconds: float = RUNNING_IDLE_SECONDS,
                 fast: bool = True, frame: bool = False) -> Segment:
    """Read one ``offline-run-*`` directory (or a ``run-*.wandb`` file).

    ``fast=False`` reads every record through ``wandb_internal_pb2.Record`` (same result, ~1.8× slower).
    ``frame=True`` gives the history as one DataFrame (a row per history record, a column per key; numbers as
    float64), built column-wise: what the report reads, much faster than a dict per row.
    A file in a format this reader does not know is read with W&B's own reader (:func:`read_with_wandb`).
    """
    run_dir = Path(run_dir)
    files = [run_dir] if run_dir.is_file() else sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file (expected a W&B offline-run directory)")
    path = files[0]
    try:
        records, read_error = read_records(path)
        seg = _from_records(path, records, fast, frame)
        seg.read_error = read_error
    except UnknownFormat as e:
        seg = read_with_wandb(path, str(e), frame)
    seg.state = _state(seg.exit_code, path, idle_seconds)
    if not seg.run_id:  # the run record is the second one written; a file cut before it still names the run
        m = re.search(r"^run-(.+)\.wandb$", path.name)
        seg.run_id = m.group(1) if m else path.stem
    if not seg.start_time:
        m = re.search(r"offline-run-(\d{8}_\d{6})", str(path))
        seg.start_time = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.strptime(m.group(1), "%Y%m%d_%H%M%S")) if m else ""
        )
    return seg


def _from_records(path: Path, records: list[bytes], fast: bool, frame: bool) -> Segment:
    seg = Segment(path=path)
    config_raw: dict[str, str] = {}
    summary_raw: dict[str, str] = {}
    names: list[str] = []  # every history item's name, END after each record
    values: list[str] = []  # their JSON values
    rest = records
    if fast:
        hist, summ, rest = [], [], []
        for b in records:
            i = _num_len(b)
            # the tag byte of the first field after `num` is the record type (fields are written in field-number
            # order and the record types come right after `num`)
            kind = b[i] if i < len(b) else -1
            if kind == _HISTORY_TAG:
                hist.append(b)
            elif kind == _SUMMARY_TAG:
                summ.append(b[i:])  # without its `num`: repeated copies of one record are then equal bytes
            else:
                rest.append(b)
        if hist and (bulk := _bulk(hist, "history")) is not None:
            names, values = bulk
        else:
            rest += hist
        rest += _apply_summaries(summ, summary_raw)
    rec = pb.Record()
    for i, blob in enumerate(rest):  # W&B's own Record class (in file order within each record type)
        try:
            rec.ParseFromString(blob)
        except DecodeError as e:
            raise UnknownFormat(f"a record is not a W&B Record this wandb ({_wandb_version()}) can parse: "
                                f"{e}") from None
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            names += [_name(it) for it in rec.history.item] + [END]
            values += [it.value_json for it in rec.history.item] + [END]
        elif kind == "summary":
            _apply_summary(summary_raw, [(_name(it), it.value_json) for it in rec.summary.update],
                           [_name(it) for it in rec.summary.remove])
        elif kind == "config":
            _apply_config(config_raw, rec.config)
        elif kind == "run":
            r = rec.run
            seg.run_id, seg.project, seg.entity = r.run_id, r.project, r.entity
            seg.name, seg.group, seg.job_type, seg.tags = r.display_name, r.run_group, r.job_type, tuple(r.tags)
            seg.start_time = r.start_time.ToDatetime().isoformat() if r.HasField("start_time") else ""
            _apply_config(config_raw, r.config)
        elif kind == "exit":
            seg.exit_code = rec.exit.exit_code
        elif kind == "header" and rec.header.HasField("version_info"):
            seg.writer = rec.header.version_info.producer.split("+")[0]
    seg.config = {k: v for k, v in zip(config_raw, _loads_all(list(config_raw.values()))) if k != "_wandb"}
    seg.summary = {k: v for k, v in zip(summary_raw, _loads_all(list(summary_raw.values())))
                   if not k.startswith("_wandb")}
    seg.history = _history_frame(names, values) if frame else _history_rows(names, values)
    return seg

def _wandb_version() -> str:
    import wandb

    return wandb.__version__


def read_with_wandb(path: Path, reason: str, frame: bool = False) -> Segment:
    """Read a ``.wandb`` file with W&B's own reader (the installed wandb's), after saying why on stderr.

    wandb >= 0.31: ``wandb leet inspect --json`` (one JSON object per record); older wandb:
    ``wandb.sdk.internal.datastore`` (its Python reader) and W&B's ``Record`` class. Raises ``ValueError``
    naming the file, the reason and what to do when W&B's reader cannot read it either.
    """
    version = _wandb_version()
    print(f"sspo-exp report: {path}: W&B record format not understood by sspo-exp's reader ({reason}); "
          f"reading it with the installed wandb {version}'s own reader instead (slower)", file=sys.stderr)
    try:
        from wandb.sdk.internal import datastore  # wandb < 0.31
    except ImportError:
        datastore = None
    try:
        if datastore is not None:
            ds = datastore.DataStore()
            ds.open_for_scan(str(path))
            records = []
            while (data := ds.scan_data()) is not None:
                records.append(data)
            seg = _from_records(path, records, fast=False, frame=frame)
            seg.reader = f"wandb {version} datastore"
            return seg
        return _from_leet(path, frame)
    except Exception as e:  # noqa: BLE001 -- any failure of W&B's reader ends in one clear message
        raise ValueError(
            f"{path}: neither sspo-exp's reader ({reason}) nor the installed wandb {version}'s own reader "
            f"({type(e).__name__}: {e}) can read this file; install the wandb release that wrote it "
            f"(`wandb leet inspect {path}` names it), tested: {', '.join(TESTED_WANDB)}"
        ) from None


def _from_leet(path: Path, frame: bool) -> Segment:
    """A Segment from ``wandb leet inspect --json`` (W&B's Go reader, wandb >= 0.31)."""
    cli = shutil.which("wandb", path=str(Path(sys.executable).parent)) or shutil.which("wandb") or "wandb"
    out = subprocess.run([cli, "leet", "inspect", "--json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    seg = Segment(path=path, reader=f"wandb {_wandb_version()} leet inspect")
    config: dict = {}
    summary: dict = {}
    rows: list[dict] = []
    for line in out.splitlines():
        r = json.loads(line)
        body = r.get(r.get("type", ""), {})
        if r["type"] == "history":
            rows.append(body.get("item", {}))
        elif r["type"] == "summary":
            summary.update(body.get("update", {}))
            for k in body.get("remove", {}):
                summary.pop(k, None)
        elif r["type"] == "config":
            config.update(body.get("update", {}))
        elif r["type"] == "run":
            seg.run_id, seg.project, seg.entity = body.get("run_id", ""), body.get("project", ""), body.get("entity", "")
            seg.name, seg.group = body.get("display_name", ""), body.get("run_group", "")
            seg.job_type, seg.tags = body.get("job_type", ""), tuple(body.get("tags", ()))
            seg.start_time = body.get("start_time", "").rstrip("Z")
            config.update(body.get("config", {}).get("update", {}))
        elif r["type"] == "exit":
            seg.exit_code = body.get("exit_code", 0)
        elif r["type"] == "header":
            seg.writer = body.get("version_info", {}).get("producer", "").split("+")[0]
    seg.config = {k: v for k, v in config.items() if k != "_wandb"}
    seg.summary = {k: v for k, v in summary.items() if not k.startswith("_wandb")}
    if frame:
        import pandas as pd

        seg.history = pd.DataFrame.from_records(rows)
    else:
        seg.history = rows
    return seg


def _state(exit_code: int | None, path: Path, idle_seconds: float) -> str:
    """finished (exit 0), crashed (exit != 0), else running / killed by how long the file has been idle."""
    if exit_code is not None:
        return "finished" if exit_code == 0 else "crashed"
    idle = time.time() - path.stat().st_mtime
    return "running" if idle < idle_seconds else "killed"


def find_run_dirs(roots: list[str | os.PathLike]) -> list[Path]:
    """Every ``offline-run-*`` directory holding a ``run-*.wandb`` file under the given roots (or the roots)."""
    found: set[Path] = set()
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"--offline {root}: no such file or directory")
        if root.is_file() and root.suffix == ".wandb":
            found.add(root.parent)
            continue
        if list(root.glob("run-*.wandb")):
            found.add(root)
        found.update(p.parent for p in root.glob("**/offline-run-*/run-*.wandb"))
        found.update(p.parent for p in root.glob("**/run-*/run-*.wandb"))  # synced/online run dirs too
    return sorted(found)


def default_workers() -> int:
    """Reader processes by default: the CPUs this process may use (at most 8)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, n))


#: Fewer files than this are read in this process (starting workers would cost more than it saves).
PARALLEL_MIN_FILES = 8


def _read_for_report(run_dir: Path, idle_seconds: float) -> Segment:
    """One segment with its history normalized by step (``frames.normalize_history``), done in the worker."""
    from sspo_exp.report.frames import normalize_history  # pandas only when the report reads, not for read_segment

    seg = read_segment(run_dir, idle_seconds, frame=True)
    seg.history = normalize_history(seg.history)
    return seg


def read_offline(roots: list[str | os.PathLike], idle_seconds: float = RUNNING_IDLE_SECONDS,
                 workers: int | None = None, frame: bool = False) -> list[Segment]:
    """All segments under ``roots``, in time order (start time, then directory name).

    ``workers``: reader processes (None: :func:`default_workers`; 1: this process only). ``frame=True`` gives
    each segment's history as a DataFrame normalized by optimizer step (what the report needs; the per-file
    work, reading and normalizing, then happens in the workers).
    """
    dirs = find_run_dirs(roots)
    workers = default_workers() if workers is None else workers
    read = _read_for_report if frame else read_segment
    if workers > 1 and len(dirs) >= PARALLEL_MIN_FILES:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            segs = list(pool.map(read, dirs, [idle_seconds] * len(dirs),
                                 chunksize=max(1, len(dirs) // (8 * workers))))
    else:
        segs = [read(d, idle_seconds) for d in dirs]
    return sorted(segs, key=lambda s: (s.start_time, s.path.parent.name))
