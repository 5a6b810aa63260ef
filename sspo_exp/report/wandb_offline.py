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

import collections
import itertools
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

import orjson
from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2 as pb

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


#: Put after each record when many are parsed at once (:func:`_bulk`): an item named END with the value END marks
#: where one record's items end (no logged key is named so, and END is no JSON value).
END = "\x00"
_END_BLOBS = {
    name: pb.Record(**{name: cls(**{field: [pb.HistoryItem(nested_key=[END], value_json=END)] if name == "history"
                                    else [pb.SummaryItem(nested_key=[END], value_json=END)]})}).SerializeToString()
    for name, cls, field in (("history", pb.HistoryRecord, "item"), ("summary", pb.SummaryRecord, "update"))
}
_HISTORY_TAG = (pb.Record.DESCRIPTOR.fields_by_name["history"].number << 3) | 2
_SUMMARY_TAG = (pb.Record.DESCRIPTOR.fields_by_name["summary"].number << 3) | 2


def _num_len(blob: bytes) -> int:
    """Bytes taken by a serialized Record's leading ``num`` field (0 if it has none)."""
    if not blob or blob[0] != 0x08:
        return 0
    i = 1
    while i < len(blob) and blob[i] & 0x80:
        i += 1
    return i + 1


def _bulk(blobs: list[bytes], name: str, lazy: bool = False) -> tuple[list[str], list[str]] | None:
    """All items of many history (or summary) records from ONE ``ParseFromString`` of their concatenation.

    Protobuf merges the occurrences of the singular ``history``/``summary`` field of :data:`RecordView`, so
    every item of every record arrives in order in the lists ``nested_key`` and ``value_json``; an END item
    after each record marks its end. A record whose items do not line up one to one (an item with a
    multi-part ``nested_key``) is re-read alone through W&B's ``Record`` class. Returns ``(names, values)``
    with END after each record, or None when an item used ``key``, a typed value, or a summary ``remove``
    (then every record is read one by one). ``lazy``: ``values`` may be protobuf's own sequence (a value is made a
    Python string only when indexed)."""
    end_blob = _END_BLOBS[name]
    view = RecordView()
    view.ParseFromString(end_blob.join(blobs) + end_blob)
    items = getattr(view, name)
    if len(items.item.ListFields()) > 2 or items.item.key or (name == "summary" and items.other):
        return None
    names, values = list(items.item.nested_key), items.item.value_json
    if len(names) == len(values):  # (almost always) every item has one name: the lists line up
        return names, values if lazy else list(values)
    values = list(values)
    ends_n = [i for i, k in enumerate(names) if k == END]
    ends_v = [i for i, v in enumerate(values) if v == END]
    out_n: list[str] = []
    out_v: list[str] = []
    start_n = start_v = 0
    rec = pb.Record()
    for blob, en, ev in zip(blobs, ends_n, ends_v):
        if en - start_n == ev - start_v:
            out_n += names[start_n : en + 1]
            out_v += values[start_v : ev + 1]
        else:
            rec.ParseFromString(blob)
            its = rec.history.item if name == "history" else rec.summary.update
            out_n += [_name(it) for it in its] + [END]
            out_v += [it.value_json for it in its] + [END]
        start_n, start_v = en + 1, ev + 1
    return out_n, out_v


def _apply_summaries(bodies: list[bytes], summary_raw: dict[str, str]) -> list[bytes]:
    """Apply many summary records, given in file order without their leading ``num`` field (a Record all the
    same); returns the records left to read one by one (all of them when some use ``key``, a typed value or
    ``remove``).

    wandb-core repeats one small record after every step: of identical records only the last is applied (applying
    updates in order gives the same summary without the earlier copies), and it is read alone through W&B's
    ``Record`` class; the others are parsed at once (:func:`_bulk`)."""
    seen = collections.Counter(bodies)
    last = {body: i for i, body in enumerate(bodies)}  # each distinct record's last position
    order = sorted(last.items(), key=lambda kv: kv[1])
    bulk = _bulk([body for body, i in order if seen[body] == 1], "summary", lazy=True)
    if bulk is None:
        return [body for body, _ in order]
    names, values = bulk
    ends = list(itertools.compress(itertools.count(), map(END.__eq__, names)))  # where each record's items end
    done, rec = 0, pb.Record()  # records of the bulk applied so far
    for once, run in itertools.groupby(order, key=lambda kv: seen[kv[0]] == 1):
        if once:  # consecutive records read in bulk: applying them in order = each key's last value, keys in
            n = sum(1 for _ in run)  # order of first appearance (only those values are made Python strings)
            start, stop = ends[done - 1] + 1 if done else 0, ends[done + n - 1]
            last_at = dict(zip(names[start:stop], range(start, stop)))
            last_at.pop(END, None)
            summary_raw.update((k, values[i]) for k, i in last_at.items())
            done += n
            continue
        for _, i in run:
            rec.ParseFromString(bodies[i])
            _apply_summary(summary_raw, [(_name(it), it.value_json) for it in rec.summary.update],
                           [_name(it) for it in rec.summary.remove])
    return []


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


def _loads_values(values: list[str]) -> list:
    """JSON values of history items with END markers among them (decoded as None): one parser call."""
    return json.loads("[" + ",".join(values).replace(END, "null") + "]") if values else []


def _history_rows(names: list[str], values: list[str]) -> list[dict]:
    """One dict per history record (``names``/``values``: items with END after each record)."""
    rows, row = [], {}
    for k, v in zip(names, _loads_values(values)):
        if k == END:
            rows.append(row)
            row = {}
        else:
            row[k] = v
    return rows


def _numbers(values: list[str]):
    """The JSON values (END markers -> NaN) as one float64 array, or None when one is not a number.

    Parsed by orjson (about 5x faster than ``json`` on a run's ~40,000 numbers; doubles correctly rounded, as
    ``json``'s: ``tests/test_report_speed.py``); values orjson rejects (``NaN``/``Infinity``, which W&B writes
    for non-finite floats, or a number out of range) are parsed by ``json``, as before."""
    import numpy as np

    text = "[" + ",".join(values).replace(END, "null") + "]"
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = json.loads(text)
    try:
        return np.array(parsed, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _history_frame(names: list[str], values: list[str]):
    """The history as a DataFrame, one row per record: numbers go into one float64 matrix at once (JSON null ->
    NaN, true/false -> 1/0); a run with a text or structured value somewhere is built row by row instead."""
    import numpy as np
    import pandas as pd

    if not names:
        return pd.DataFrame()
    numbers = _numbers(values)
    if numbers is None:
        return pd.DataFrame.from_records(_history_rows(names, values))
    codes, uniques = pd.factorize(np.array(names, dtype=object))  # codes in order of first appearance
    uniques = list(uniques)
    end = uniques.index(END)  # every record ends with an END item (not `uniques == END`: NumPy drops a NUL)
    is_end = codes == end
    rows = np.cumsum(is_end) - is_end  # the record each item belongs to
    keep = ~is_end
    columns = [k for k in uniques if k != END]
    col = codes - (codes > end)  # column of each kept item (END's code taken out)
    wide = np.full((int(is_end.sum()), len(columns)), np.nan)
    wide[rows[keep], col[keep]] = numbers[keep]
    return pd.DataFrame(wide, columns=columns)


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


def default_workers() -> int:
    """Reader processes by default: the CPUs this process may use (at most 8)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, n))


#: Fewer files than this are read in this process (starting workers would cost more than it saves).
PARALLEL_MIN_FILES = 8


def _read_for_report(run_dir: Path, idle_seconds: float) -> Segment:
    """One segment with its history normalized by step (``frames.normalize_history``), done in the worker."""
    from sspo_exp.report.frames import normalize_history

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
