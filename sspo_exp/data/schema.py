"""The one row schema every dataset is normalised to, and what happens to malformed rows.

A row is ``{"id": str, "question": str, "answer": str, "source": str}``:
``question`` is the problem text only (the instruction is added by :mod:`sspo_exp.data.prompts`), ``answer`` the
gold final answer as a string (checked by :func:`sspo_exp.rewards.math_reward`), ``source`` the dataset name,
``id`` unique within one load.

Validation policy, per field (``strict=False``: training data; ``strict=True``: benchmarks):

===========================  ==========================================  ==========================================
problem                      training (``strict=False``)                 benchmark (``strict=True``)
===========================  ==========================================  ==========================================
question missing / blank     skipped, counted, one warning per load      :class:`DataError` naming row and field
answer missing / blank /     skipped, counted, one warning per load      :class:`DataError` naming row and field
unparseable (GSM8K w/o ####)
answer int / float           converted to ``str`` (AIME copies store     same
                             ints; JSON numbers)
question or answer of        :class:`DataError` naming row and field     same
another type (list, dict,    (a wrong column mapping, not a bad row:
bool)                        skipping would hide it)
id missing                   ``<source>-<split>-<index>``                same
duplicate id                 :class:`DataError` naming both rows         same
more than ``max_skip_frac``  :class:`DataError` (the column mapping is   —
rows skipped                 probably wrong)
===========================  ==========================================  ==========================================

Why: a few broken rows among 100k training problems do not change an experiment, and an unverifiable row
(no gold answer) only injects zero-reward noise, so they are dropped and counted. A benchmark's Pass@1 must be
over the whole benchmark (the sample count equals its size), so nothing may be dropped there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

FIELDS = ("id", "question", "answer", "source")
MAX_SKIP_FRAC = 0.1


class DataError(ValueError):
    """A dataset cannot be used as given; the message names the dataset, row and field, and what would be right."""


class _Skip(Exception):
    def __init__(self, field: str, why: str):
        super().__init__(f"{field}: {why}")
        self.field, self.why = field, why


def first_key(raw: Mapping[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    """(key, value) of the first of ``keys`` present in ``raw`` (exact name first, then case-insensitive)."""
    for k in keys:
        if k in raw:
            return k, raw[k]
    lower = {str(k).lower(): k for k in raw}
    for k in keys:
        if k.lower() in lower:
            return lower[k.lower()], raw[lower[k.lower()]]
    return None, None


def _as_text(value: Any, field: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(
            f"{where}: field {field!r} must be a string (or a number for answers), got {type(value).__name__} "
            f"{str(value)[:80]!r}; check the dataset's column mapping"
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def normalize_rows(
    raw_rows: Iterable[Mapping[str, Any]],
    *,
    source: str,
    split: str,
    question: Callable[[Mapping[str, Any]], Any],
    answer: Callable[[Mapping[str, Any]], Any],
    row_id: Callable[[Mapping[str, Any]], Any] | None = None,
    strict: bool = False,
    max_skip_frac: float = MAX_SKIP_FRAC,
) -> list[dict[str, str]]:
    """Map raw rows to the schema under the policy above.

    ``question`` / ``answer`` / ``row_id`` take the raw row and return the raw value (``None`` = missing); an
    answer getter may raise :class:`ValueError` for an unparseable answer (e.g. GSM8K without ``####``).
    """
    rows: list[dict[str, str]] = []
    skipped: dict[str, int] = {}
    seen: dict[str, int] = {}
    total = 0
    for i, raw in enumerate(raw_rows):
        total += 1
        where = f"{source} ({split}) row {i}"
        try:
            q = question(raw)
            if q is None or (isinstance(q, str) and not q.strip()):
                raise _Skip("question", "missing or blank")
            q = _as_text(q, "question", where)
            try:
                a = answer(raw)
            except ValueError as e:
                raise _Skip("answer", str(e)) from None
            if a is None or (isinstance(a, str) and not a.strip()):
                raise _Skip("answer", "missing or blank")
            a = _as_text(a, "answer", where)
        except _Skip as s:
            if strict:
                raise DataError(f"{where}: field {s.field!r} is {s.why}; a benchmark must keep every row") from None
            skipped[s.field] = skipped.get(s.field, 0) + 1
            continue
        rid = row_id(raw) if row_id else None
        rid = f"{source}-{split}-{i}" if rid is None or str(rid).strip() == "" else str(rid).strip()
        if rid in seen:
            raise DataError(f"{where}: field 'id' = {rid!r} duplicates row {seen[rid]}; ids must be unique")
        seen[rid] = i
        rows.append({"id": rid, "question": q, "answer": a, "source": source})
    n_skipped = sum(skipped.values())
    if n_skipped:
        detail = ", ".join(f"{n} with bad {f!r}" for f, n in sorted(skipped.items()))
        log.warning("%s (%s): skipped %d of %d rows (%s)", source, split, n_skipped, total, detail)
        if n_skipped > max_skip_frac * total:
            raise DataError(
                f"{source} ({split}): {n_skipped} of {total} rows are malformed ({detail}), more than "
                f"max_skip_frac={max_skip_frac}; the file probably does not have this dataset's columns"
            )
    if not rows:
        raise DataError(f"{source} ({split}): no usable rows (read {total})")
    return rows


def validate_rows(rows: Sequence[Mapping[str, Any]], where: str = "rows") -> None:
    """Check already-normalised rows (e.g. from a generator) against the schema; raise :class:`DataError`."""
    seen: set[str] = set()
    for i, row in enumerate(rows):
        for field in FIELDS:
            value = row.get(field)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where} row {i}: field {field!r} must be a non-blank string, got {value!r:.80}")
        if row["id"] in seen:
            raise DataError(f"{where} row {i}: field 'id' = {row['id']!r} is not unique")
        seen.add(row["id"])
