"""Decoding the values inside W&B's offline records fast (``sspo_exp.report.wandb_offline`` reads the records).

A read-only view of W&B's own ``Record`` schema (:data:`RecordView`) parses a history or summary record's items as
parallel lists; many records are parsed at once (:func:`_bulk`, with an :data:`END` marker between records); their
JSON values are decoded with one parser call, numbers straight into arrays (:func:`_numbers`).
"""

from __future__ import annotations

import collections
import itertools
import json

import orjson
from wandb.proto import wandb_internal_pb2 as pb

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


def _apply_config(config_raw: dict[str, str], record) -> None:
    for it in record.update:
        config_raw[_name(it)] = it.value_json
    for it in record.remove:
        config_raw.pop(_name(it), None)
