"""Read W&B offline run directories (``wandb/offline-run-*/run-*.wandb``) with no server.

W&B 0.31 keeps a run's config, history and summary only in this transaction log; it has no Python reader for
it any more (``wandb/sdk/internal/datastore.py`` is gone; the Go ``wandb-core`` writes the file and ``wandb
leet inspect`` reads it). The file format is a LevelDB-style record log (pinned by ``wandb==0.31.*``):

- a 7-byte file header ``<4sHB``: ``b":W&B"``, magic ``0xBEE1``, version 0;
- then 32 KiB blocks of chunks, each with a 7-byte header ``<IHB`` = (CRC-32 of type byte + data, length, type),
  type FULL=1 or FIRST=2 / MIDDLE=3 / LAST=4 for a record split across blocks; a block tail shorter than a
  chunk header is zero padding;
- each record is a serialized ``wandb.proto.wandb_internal_pb2.Record`` (W&B's own protobuf class; we
  use it, not a copy), with one of ``run``, ``config``, ``history``, ``summary``, ``exit``, ... set.

A run killed mid-way has no ``exit`` record and may end in a half-written chunk: we read every record up to the
last complete one whose checksum is right and report where reading stopped (``Segment.read_error``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import struct
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

FILE_HEADER = struct.Struct("<4sHB")
FILE_IDENT, FILE_MAGIC, FILE_VERSION = b":W&B", 0xBEE1, 0
CHUNK_HEADER = struct.Struct("<IHB")
BLOCK_LEN = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}

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
    history: list[dict] = field(default_factory=list)
    exit_code: int | None = None
    state: str = "running"
    read_error: str | None = None


def read_records(path: str | os.PathLike) -> tuple[list[bytes], str | None]:
    """All complete records of a ``.wandb`` file, and why reading stopped early (None for a clean end)."""
    data = Path(path).read_bytes()
    if len(data) < FILE_HEADER.size:
        return [], f"file shorter than its {FILE_HEADER.size}-byte header"
    ident, magic, version = FILE_HEADER.unpack_from(data, 0)
    if (ident, magic, version) != (FILE_IDENT, FILE_MAGIC, FILE_VERSION):
        raise ValueError(
            f"{path}: not a W&B record log (header {ident!r}, magic {magic:#x}, version {version}; "
            f"expected {FILE_IDENT!r}, {FILE_MAGIC:#x}, {FILE_VERSION}); this reader is pinned to wandb 0.31"
        )
    records: list[bytes] = []
    pending: list[bytes] = []
    pos, end = FILE_HEADER.size, len(data)
    while pos < end:
        left = BLOCK_LEN - pos % BLOCK_LEN
        if left < CHUNK_HEADER.size:  # zero padding at a block's end
            pos += left
            continue
        if end - pos < CHUNK_HEADER.size:
            return records, f"truncated chunk header at byte {pos}"
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:  # pre-allocated zeros: nothing written past here
            return records, None if not pending else f"unfinished record at byte {pos}"
        start = pos + CHUNK_HEADER.size
        if start + length > end:
            return records, f"truncated record at byte {pos} ({end - start} of {length} bytes)"
        chunk = data[start : start + length]
        if kind not in _TYPE_CRC or zlib.crc32(chunk, _TYPE_CRC[kind]) != crc:
            return records, f"bad checksum or chunk type {kind} at byte {pos}"
        pos = start + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = [chunk]
        elif kind == MIDDLE:
            pending.append(chunk)
        else:
            records.append(b"".join(pending + [chunk]))
            pending = []
    return records, (f"unfinished record at byte {pos}" if pending else None)


def _view_classes():
    """A read-only view of W&B's own schema (field numbers taken from ``wandb_internal_pb2``), for speed.

    ``RecordView`` parses a Record with ``history.item`` / ``summary.update`` declared as ONE embedded message
    instead of a repeated one: protobuf merges repeated occurrences of a singular message field, so all items of
    the record arrive as parallel lists ``key``, ``nested_key``, ``value_json`` (and W&B's typed value fields),
    with no Python loop over items. When no item uses ``key`` or a typed value and the ``nested_key`` and
    ``value_json`` lists have equal length, every item had exactly one of each (what wandb-core 0.31 writes for
    logged metrics) and the lists line up item by item; any other record is read through
    ``wandb_internal_pb2.Record`` itself.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    rec, item = pb.Record.DESCRIPTOR.fields_by_name, pb.HistoryItem.DESCRIPTOR.fields
    assert pb.HistoryRecord.DESCRIPTOR.fields_by_name["item"].number == 1
    assert pb.SummaryRecord.DESCRIPTOR.fields_by_name["update"].number == 1
    assert pb.SummaryRecord.DESCRIPTOR.fields_by_name["remove"].number == 2
    for f in pb.SummaryItem.DESCRIPTOR.fields:
        assert f.number == pb.HistoryItem.DESCRIPTOR.fields_by_name[f.name].number
    fdp = descriptor_pb2.FileDescriptorProto(name="sspo_exp_wandb_view.proto", package="sspo_exp_view",
                                             syntax="proto3")
    flat = fdp.message_type.add(name="FlatItems")
    for f in item:  # HistoryItem's fields, all repeated: key, nested_key, none, ..., json, value_json
        scalar = {F.TYPE_MESSAGE: F.TYPE_BYTES, F.TYPE_ENUM: F.TYPE_INT32}.get(f.type, f.type)
        flat.field.add(name=f.name, number=f.number, type=scalar, label=F.LABEL_REPEATED)
    holder = fdp.message_type.add(name="Items")  # HistoryRecord / SummaryRecord
    holder.field.add(name="item", number=1, type=F.TYPE_MESSAGE, type_name=".sspo_exp_view.FlatItems",
                     label=F.LABEL_OPTIONAL)
    holder.field.add(name="other", number=2, type=F.TYPE_BYTES, label=F.LABEL_REPEATED)  # remove / step
    view = fdp.message_type.add(name="RecordView")
    for name in ("history", "summary"):
        view.field.add(name=name, number=rec[name].number, type=F.TYPE_MESSAGE, type_name=".sspo_exp_view.Items",
                       label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("sspo_exp_view.RecordView"))


RecordView = _view_classes()


def _flat(items) -> tuple[list[str], list[str]] | None:
    """(names, value_json) of a record's merged items when they line up one to one, else None."""
    if len(items.ListFields()) > 2 or items.key or len(items.nested_key) != len(items.value_json):
        return None  # an item used `key` or a typed value field, or an item had several nested_key parts
    return list(items.nested_key), list(items.value_json)


def _without_num(blob: bytes) -> bytes:
    """A serialized Record without its leading ``num`` field (field 1, varint), if it starts with it."""
    if not blob or blob[0] != 0x08:
        return blob
    i = 1
    while i < len(blob) and blob[i] & 0x80:
        i += 1
    return blob[i + 1 :]


def _apply_summary(summary_raw: dict[str, str], updates: list, removes: list) -> None:
    summary_raw.update(updates)
    for k in removes:
        summary_raw.pop(k, None)


def _name(item) -> str:
    return ".".join(item.nested_key) if item.nested_key else item.key


def _loads_all(values: list[str]) -> list:
    """Decode many JSON values with one parser call (much faster than one ``json.loads`` each)."""
    return json.loads("[" + ",".join(values) + "]") if values else []


def read_segment(run_dir: str | os.PathLike, idle_seconds: float = RUNNING_IDLE_SECONDS,
                 fast: bool = True) -> Segment:
    """Read one ``offline-run-*`` directory (or a ``run-*.wandb`` file).

    ``fast=False`` reads every record through ``wandb_internal_pb2.Record`` (same result, ~1.8× slower).
    """
    run_dir = Path(run_dir)
    files = [run_dir] if run_dir.is_file() else sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file (expected a W&B offline-run directory)")
    path = files[0]
    seg = Segment(path=path)
    records, seg.read_error = read_records(path)
    config_raw: dict[str, str] = {}
    summary_raw: dict[str, str] = {}
    hist_keys: list[list[str]] = []
    hist_vals: list[str] = []
    view, rec = RecordView(), pb.Record()
    seen: dict[bytes, tuple] = {}
    for blob in records:
        if fast:
            view.ParseFromString(blob)
            if view.HasField("history") and (flat := _flat(view.history.item)) is not None:
                hist_keys.append(flat[0])
                hist_vals += flat[1]
                continue
            if view.HasField("summary"):
                if not view.summary.other and (flat := _flat(view.summary.item)):
                    summary_raw.update(zip(*flat))
                    continue
                # wandb-core repeats one small summary record (the runtime) after every step: same bytes but
                # for the leading record number, so its parsed items are cached
                key = _without_num(blob)
                if (cached := seen.get(key)) is not None:
                    _apply_summary(summary_raw, *cached)
                    continue
        rec.ParseFromString(blob)  # everything else: W&B's own Record class
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            pairs = [(_name(it), it.value_json) for it in rec.history.item]
            hist_keys.append([k for k, _ in pairs])
            hist_vals += [v for _, v in pairs]
        elif kind == "summary":
            parsed = ([(_name(it), it.value_json) for it in rec.summary.update],
                      [_name(it) for it in rec.summary.remove])
            _apply_summary(summary_raw, *parsed)
            if fast and len(seen) < 256:
                seen[_without_num(blob)] = parsed
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
    seg.config = {k: v for k, v in zip(config_raw, _loads_all(list(config_raw.values()))) if k != "_wandb"}
    seg.summary = {k: v for k, v in zip(summary_raw, _loads_all(list(summary_raw.values())))
                   if not k.startswith("_wandb")}
    values = iter(_loads_all(hist_vals))
    seg.history = [{k: next(values) for k in keys} for keys in hist_keys]
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


def _apply_config(config_raw: dict[str, str], record) -> None:
    for it in record.update:
        config_raw[_name(it)] = it.value_json
    for it in record.remove:
        config_raw.pop(_name(it), None)


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


def read_offline(roots: list[str | os.PathLike], idle_seconds: float = RUNNING_IDLE_SECONDS,
                 workers: int = 1) -> list[Segment]:
    """All segments under ``roots``, in time order (start time, then directory name).

    ``workers`` > 1 reads files in parallel processes (worth it on an idle multi-core machine).
    """
    dirs = find_run_dirs(roots)
    if workers > 1 and len(dirs) > 1:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            segs = list(pool.map(read_segment, dirs, [idle_seconds] * len(dirs),
                                 chunksize=max(1, len(dirs) // (4 * workers))))
    else:
        segs = [read_segment(d, idle_seconds) for d in dirs]
    return sorted(segs, key=lambda s: (s.start_time, s.path.parent.name))
